//! A second kind of model on the same backends: one input tensor of a fixed
//! shape in, every output out (the person detector of people mode, whose
//! outputs are boxes and scores, not `[N, classes]` probabilities).
//!
//! Backends: `cpu` (tract), `onnxruntime`, and `tensorrt` with the
//! detector's own engine from the engine cache (`stylecam build-engine`
//! builds it beside the classifier's, batch 1). `auto` takes the first of
//! tensorrt (where it runs and the engine is cached), onnxruntime, tract
//! that loads, and says in the log why it passed over the others.

use super::{BackendKind, InferError, Options};
use crate::bundle::Bundle;
use std::path::Path;

/// One output tensor, f32, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// A loaded graph with one input of a fixed shape.
pub trait Graph: Send {
    /// `cpu`, `onnxruntime` or `tensorrt`.
    fn name(&self) -> &'static str;
    /// Runs `input` (the input shape's values, row-major); every output.
    fn run(&mut self, input: &[f32]) -> Result<Vec<Tensor>, InferError>;
}

/// Loads `bundle`'s person detector (its `[detector]` ONNX, input `shape`)
/// on the backend `opts` names.
pub fn open_detector(
    bundle: &Bundle,
    shape: &[usize],
    opts: &Options,
) -> Result<Box<dyn Graph>, InferError> {
    let onnx = bundle
        .manifest
        .detector
        .as_ref()
        .map(|d| bundle.dir.join(&d.onnx))
        .ok_or_else(|| InferError::Load {
            path: bundle.dir.display().to_string(),
            reason: "the bundle has no [detector]".into(),
        })?;
    match opts.kind {
        BackendKind::Cpu | BackendKind::Onnxruntime => open(&onnx, shape, opts),
        BackendKind::Tensorrt => super::tensorrt::open_detector(bundle, shape, opts),
        BackendKind::Auto => {
            let trt = Options {
                kind: BackendKind::Tensorrt,
                ..opts.clone()
            };
            match super::probe(&trt)
                .and_then(|_| super::tensorrt::open_detector(bundle, shape, &trt))
            {
                Ok(g) => return Ok(g),
                Err(e) => log::info!("detector, model.backend = auto: not tensorrt ({e})"),
            }
            let ort = Options {
                kind: BackendKind::Onnxruntime,
                ..opts.clone()
            };
            match super::probe(&ort).and_then(|_| open(&onnx, shape, &ort)) {
                Ok(g) => Ok(g),
                Err(e) => {
                    log::info!(
                        "detector {}: onnxruntime is not usable ({e}); it runs on tract (cpu)",
                        onnx.display()
                    );
                    Ok(Box::new(tract::TractGraph::load(&onnx, shape)?))
                }
            }
        }
    }
}

/// Loads the ONNX at `path` for input `shape` on tract (`cpu`) or
/// onnxruntime, as `opts` names (`cpu` for any other kind).
fn open(path: &Path, shape: &[usize], opts: &Options) -> Result<Box<dyn Graph>, InferError> {
    match opts.kind {
        BackendKind::Onnxruntime => Ok(Box::new(super::onnxruntime::OrtGraph::load(
            path,
            shape,
            opts.threads,
            opts.onnxruntime_library.as_deref(),
        )?)),
        _ => Ok(Box::new(tract::TractGraph::load(path, shape)?)),
    }
}

mod tract {
    use super::{Graph, InferError};
    use std::path::Path;
    use std::sync::Arc;
    use tract_onnx::prelude::*;

    pub struct TractGraph {
        plan: Arc<TypedRunnableModel>,
        shape: Vec<usize>,
    }

    impl TractGraph {
        pub fn load(path: &Path, shape: &[usize]) -> Result<Self, InferError> {
            let load = |e: TractError| InferError::Load {
                path: path.display().to_string(),
                reason: format!("{e:#}"),
            };
            let plan = tract_onnx::onnx()
                .model_for_path(path)
                .and_then(|m| m.with_input_fact(0, f32::fact(shape).into()))
                .and_then(|m| m.into_optimized())
                .and_then(|m| m.into_runnable())
                .map_err(load)?;
            Ok(Self {
                plan,
                shape: shape.to_vec(),
            })
        }
    }

    impl Graph for TractGraph {
        fn name(&self) -> &'static str {
            "cpu"
        }

        fn run(&mut self, input: &[f32]) -> Result<Vec<super::Tensor>, InferError> {
            let run_err = |e: TractError| InferError::Run(format!("{e:#}"));
            let want: usize = self.shape.iter().product();
            if input.len() != want {
                return Err(InferError::Shape {
                    slot: 0,
                    got: input.len(),
                    want,
                });
            }
            let tensor =
                tract_onnx::prelude::Tensor::from_shape(&self.shape, input).map_err(run_err)?;
            let outs = self
                .plan
                .run(tvec!(tensor.into_tvalue()))
                .map_err(run_err)?;
            outs.iter()
                .map(|o| {
                    let o = o.cast_to::<f32>().map_err(run_err)?;
                    let view = o.try_as_plain_ram().map_err(run_err)?;
                    Ok(super::Tensor {
                        shape: o.shape().to_vec(),
                        data: view.as_slice::<f32>().map_err(run_err)?.to_vec(),
                    })
                })
                .collect()
        }
    }
}
