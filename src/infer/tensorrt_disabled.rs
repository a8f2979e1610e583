//! TensorRT backend, built without the `tensorrt` feature: every call says
//! how to get a build that has it.

use super::{Backend, InferError};
use crate::bundle::Bundle;

pub struct TensorRtBackend {
    _private: (),
}

fn unavailable() -> InferError {
    InferError::Unavailable {
        backend: "tensorrt",
        reason: "this binary was built without the `tensorrt` feature".into(),
        fix: "use model.backend = \"cpu\" (or \"auto\"), or build with `cargo build --release --features tensorrt` on a machine with TensorRT".into(),
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
