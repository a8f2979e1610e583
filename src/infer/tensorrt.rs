//! TensorRT backend: a stub in this version. Without the `tensorrt`
//! feature it says how to get a build that has it; with the feature it says
//! that the engine runner (the GPU issue's work) has not landed yet. Either
//! way `auto` falls back to the CPU backend.

use super::{Backend, InferError};
use crate::bundle::Bundle;

pub struct TensorRtBackend {
    _private: (),
}

fn unavailable() -> InferError {
    let (reason, fix) = if cfg!(feature = "tensorrt") {
        (
            "the TensorRT engine runner is not part of this version yet",
            "use model.backend = \"cpu\" (or \"auto\", which falls back to it)",
        )
    } else {
        (
            "this binary was built without the `tensorrt` feature",
            "use model.backend = \"cpu\" (or \"auto\"), or build with `cargo build --release --features tensorrt` on a machine with TensorRT",
        )
    };
    InferError::Unavailable {
        backend: "tensorrt",
        reason: reason.into(),
        fix: fix.into(),
    }
}

impl TensorRtBackend {
    pub fn load(_bundle: &Bundle) -> Result<Self, InferError> {
        Err(unavailable())
    }
}

impl Backend for TensorRtBackend {
    fn name(&self) -> &'static str {
        "tensorrt"
    }
    fn check(&self) -> Result<(), InferError> {
        Err(unavailable())
    }
    fn infer(&mut self, _input: &[f32], _n: usize) -> Result<Vec<f32>, InferError> {
        Err(unavailable())
    }
    fn outputs(&self) -> usize {
        0
    }
}
