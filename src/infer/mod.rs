//! Inference: a [`Backend`] turns a batch of preprocessed frames into
//! per-class probabilities.
//!
//! Backends: [`cpu::CpuBackend`] (tract-onnx, always built) and TensorRT
//! (a stub with a clear error until the GPU issue lands, with or without the
//! `tensorrt` feature).
//! [`select`] picks one by the config's name: `auto` = TensorRT when built
//! and usable, else CPU.

pub mod cpu;
pub mod tensorrt;

use crate::bundle::Bundle;

#[derive(Debug, thiserror::Error)]
pub enum InferError {
    #[error("backend {backend} is not usable here: {reason}. Fix: {fix}")]
    Unavailable {
        backend: &'static str,
        reason: String,
        fix: String,
    },
    #[error("cannot load model {path}: {reason}")]
    Load { path: String, reason: String },
    #[error("inference failed: {0}")]
    Run(String),
    #[error("input has {got} values but a batch of {n} needs {want}")]
    Shape { got: usize, n: usize, want: usize },
}

/// A way to run the bundle's model.
pub trait Backend: Send {
    /// Short name for logs and metrics (`cpu`, `tensorrt`).
    fn name(&self) -> &'static str;
    /// Whether the backend can run here; the error says how to fix it.
    fn check(&self) -> Result<(), InferError>;
    /// Runs `n` samples laid out back to back (each `[3,H,W]` f32) and
    /// returns `n × outputs` values.
    fn infer(&mut self, input: &[f32], n: usize) -> Result<Vec<f32>, InferError>;
    /// Values per sample in the output.
    fn outputs(&self) -> usize;
}

/// Opens the backend the config names for this bundle.
pub fn select(name: &str, bundle: &Bundle) -> Result<Box<dyn Backend>, InferError> {
    let spec = &bundle.manifest.input;
    let shape = [3, spec.height as usize, spec.width as usize];
    let cpu = || -> Result<Box<dyn Backend>, InferError> {
        Ok(Box::new(cpu::CpuBackend::load(&bundle.onnx_path(), shape)?))
    };
    match name {
        "cpu" => cpu(),
        "tensorrt" => {
            let trt = tensorrt::TensorRtBackend::load(bundle)?;
            trt.check()?;
            Ok(Box::new(trt))
        }
        "auto" => {
            match tensorrt::TensorRtBackend::load(bundle).and_then(|t| t.check().map(|_| t)) {
                Ok(t) => Ok(Box::new(t)),
                Err(e) => {
                    log::info!("model.backend = auto: using cpu ({e})");
                    cpu()
                }
            }
        }
        other => Err(InferError::Unavailable {
            backend: "unknown",
            reason: format!("no backend named {other:?}"),
            fix: "set model.backend to auto, cpu or tensorrt".into(),
        }),
    }
}
