//! CPU backend on tract-onnx. One plan, optimised for batch 1, runs the
//! samples of a batch one after another: on 2 cores tract is ~3x slower
//! per frame at batch 4 than at batch 1 (`cargo bench --bench pipeline`).

use super::{check_batch, Backend, BatchLimits, HostInput, InferError, Slot};
use crate::bundle::onnx::{fmt_shape, io_shapes};
use crate::bundle::Bundle;
use std::path::Path;
use std::sync::Arc;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::DimLike;

/// Slots in the input buffer: the config's largest `model.max_batch`.
const MAX_BATCH: usize = 64;

pub struct CpuBackend {
    plan: Arc<TypedRunnableModel>,
    sample: [usize; 3],
    classes: usize,
    input: HostInput,
    output: Vec<f32>,
}

impl CpuBackend {
    /// Loads the bundle's ONNX for its input size.
    pub fn open(bundle: &Bundle) -> Result<Self, InferError> {
        let spec = &bundle.manifest.input;
        Self::load(
            &bundle.onnx_path(),
            [3, spec.height as usize, spec.width as usize],
        )
    }

    /// Loads an ONNX file whose input is `[N, sample...]`.
    pub fn load(path: &Path, sample: [usize; 3]) -> Result<Self, InferError> {
        let bytes = std::fs::read(path).map_err(|e| InferError::Load {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::from_named_bytes(&bytes, sample, &path.display().to_string())
    }

    /// Loads an ONNX model held in memory.
    pub fn from_bytes(bytes: &[u8], sample: [usize; 3]) -> Result<Self, InferError> {
        Self::from_named_bytes(bytes, sample, "(memory)")
    }

    fn from_named_bytes(bytes: &[u8], sample: [usize; 3], name: &str) -> Result<Self, InferError> {
        let load = |reason: String| InferError::Load {
            path: name.into(),
            reason,
        };
        // The model's own input dims, where fixed, must be the bundle's.
        let io = io_shapes(bytes).map_err(load)?;
        let fits = io.input.len() == 4
            && io.input[1..]
                .iter()
                .zip(sample)
                .all(|(d, want)| d.is_none_or(|d| d as usize == want));
        if !fits {
            return Err(load(format!(
                "input {} has shape {}, the bundle says [N,{},{},{}]",
                io.input_name,
                fmt_shape(&io.input),
                sample[0],
                sample[1],
                sample[2]
            )));
        }
        let model = tract_onnx::onnx()
            .model_for_read(&mut std::io::Cursor::new(bytes))
            .map_err(|e| load(format!("{e:#}")))?;
        Self::new(model, sample).map_err(|e| load(format!("{e:#}")))
    }

    fn new(model: InferenceModel, sample: [usize; 3]) -> TractResult<Self> {
        let [c, h, w] = sample;
        let plan = model
            .with_input_fact(0, f32::fact([1, c, h, w]).into())
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(|e| e.context(format!("input [1,{c},{h},{w}]")))?;
        let out = plan.model().output_fact(0)?;
        let shape = out
            .shape
            .as_concrete()
            .ok_or_else(|| anyhow::anyhow!("output shape is not concrete"))?;
        let classes = shape.iter().skip(1).product();
        Ok(Self {
            plan,
            sample,
            classes,
            input: HostInput::new(c * h * w, MAX_BATCH),
            output: vec![],
        })
    }
}

impl Backend for CpuBackend {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn limits(&self) -> BatchLimits {
        BatchLimits {
            max: MAX_BATCH,
            preferred: 1,
            fixed: false,
        }
    }

    fn sample_len(&self) -> usize {
        self.sample.iter().product()
    }

    fn classes(&self) -> usize {
        self.classes
    }

    fn slots(&mut self, i: usize, n: usize) -> Slot<'_> {
        self.input.slots(i, n)
    }

    fn run(&mut self, n: usize) -> Result<&[f32], InferError> {
        check_batch(n, self.limits())?;
        let [c, h, w] = self.sample;
        let run_err = |e: TractError| InferError::Run(format!("{e:#}"));
        self.output.clear();
        for sample in self.input.first(n).chunks_exact(c * h * w) {
            let tensor = Tensor::from_shape(&[1, c, h, w], sample).map_err(run_err)?;
            let out = self
                .plan
                .run(tvec!(tensor.into_tvalue()))
                .map_err(run_err)?;
            let view = out[0].try_as_plain_ram().map_err(run_err)?;
            let probs = view.as_slice::<f32>().map_err(run_err)?;
            if probs.len() != self.classes {
                return Err(InferError::Run(format!(
                    "the model returned {} values for one sample, expected {}",
                    probs.len(),
                    self.classes
                )));
            }
            self.output.extend_from_slice(probs);
        }
        Ok(&self.output)
    }
}

/// Floating-point operations (2 per multiply-add) of one sample through
/// the ONNX model `bytes` with input `[1, sample…]`, as tract's cost model
/// counts them on the decluttered graph (convolutions, matrix products).
pub fn flops_per_sample(bytes: &[u8], sample: [usize; 3]) -> Result<u64, InferError> {
    let load = |e: TractError| InferError::Load {
        path: "(memory)".into(),
        reason: format!("{e:#}"),
    };
    let [c, h, w] = sample;
    let model = tract_onnx::onnx()
        .model_for_read(&mut std::io::Cursor::new(bytes))
        .and_then(|m| m.with_input_fact(0, f32::fact([1, c, h, w]).into()))
        .and_then(|m| m.into_typed())
        .and_then(|m| m.into_decluttered())
        .map_err(load)?;
    let mut total = 0u64;
    for node in model.nodes() {
        let inputs = model.node_input_facts(node.id).map_err(load)?;
        for (cost, n) in node.op.cost(&inputs).map_err(load)? {
            if matches!(cost, tract_onnx::tract_core::ops::Cost::FMA(_)) {
                total += 2 * n.to_usize().map_err(|e| InferError::Load {
                    path: "(memory)".into(),
                    reason: e.to_string(),
                })? as u64;
            }
        }
    }
    Ok(total)
}
