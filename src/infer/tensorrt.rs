//! TensorRT backend: a stub in this version. Without the `tensorrt`
//! feature it says how to get a build that has it; with the feature it says
//! that the engine runner (the GPU issue's work) has not landed yet. Either
//! way the probe fails and `auto` passes over it.

use super::{Backend, BatchLimits, InferError, Slot};
use crate::bundle::Bundle;

pub struct TensorRtBackend {
    _private: (),
}

fn unavailable() -> InferError {
    let (reason, fix) = if cfg!(feature = "tensorrt") {
        (
            "the TensorRT engine runner is not part of this version yet",
            "use model.backend = \"onnxruntime\" or \"cpu\" (or \"auto\", which falls back to them)",
        )
    } else {
        (
            "this binary was built without the `tensorrt` feature",
            "use model.backend = \"onnxruntime\" or \"cpu\" (or \"auto\"), or build with `cargo build --release --features tensorrt` on a machine with TensorRT",
        )
    };
    InferError::Unavailable {
        backend: "tensorrt",
        reason: reason.into(),
        fix: fix.into(),
    }
}

/// Whether TensorRT can run here (before any engine loads).
pub fn probe() -> Result<String, InferError> {
    Err(unavailable())
}

/// Builds (or finds in the cache) the TensorRT engine for `bundle` and
/// returns its path: what `stylecam build-engine` and the engine oneshot
/// unit run. The builder is the TensorRT issue's work; until it lands this
/// says so.
pub fn build_engine(_bundle: &Bundle) -> Result<std::path::PathBuf, InferError> {
    Err(unavailable())
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
    fn limits(&self) -> BatchLimits {
        BatchLimits {
            max: 1,
            preferred: 1,
            fixed: true,
        }
    }
    fn sample_len(&self) -> usize {
        0
    }
    fn classes(&self) -> usize {
        0
    }
    fn slot(&mut self, _i: usize) -> Slot<'_> {
        unreachable!("a TensorRtBackend is never constructed in this version")
    }
    fn run(&mut self, _n: usize) -> Result<&[f32], InferError> {
        Err(unavailable())
    }
}
