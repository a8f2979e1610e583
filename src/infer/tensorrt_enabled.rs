//! TensorRT backend with the `tensorrt` feature. The engine build and the
//! C++ shim are the GPU issue's work; until they land this build says so
//! instead of pretending to run.

use super::{Backend, InferError};
use crate::bundle::Bundle;

pub struct TensorRtBackend {
    _private: (),
}

fn not_yet() -> InferError {
    InferError::Unavailable {
        backend: "tensorrt",
        reason: "the TensorRT engine runner is not part of this version yet".into(),
        fix: "use model.backend = \"cpu\" (or \"auto\", which falls back to it)".into(),
    }
}

impl TensorRtBackend {
    pub fn load(_bundle: &Bundle) -> Result<Self, InferError> {
        Err(not_yet())
    }
}

impl Backend for TensorRtBackend {
    fn name(&self) -> &'static str {
        "tensorrt"
    }
    fn check(&self) -> Result<(), InferError> {
        Err(not_yet())
    }
    fn infer(&mut self, _input: &[f32], _n: usize) -> Result<Vec<f32>, InferError> {
        Err(not_yet())
    }
    fn outputs(&self) -> usize {
        0
    }
}
