//! CPU backend on tract-onnx. One plan, optimised for batch 1, runs the
//! samples of a batch one after another: on 2 cores tract is ~3x slower
//! per frame at batch 4 than at batch 1 (`cargo bench --bench pipeline`).

use super::{Backend, InferError};
use std::path::Path;
use std::sync::Arc;
use tract_onnx::prelude::*;

pub struct CpuBackend {
    plan: Arc<TypedRunnableModel>,
    sample: [usize; 3],
    outputs: usize,
}

impl CpuBackend {
    /// Loads an ONNX file whose input is `[N, sample...]`.
    pub fn load(path: &Path, sample: [usize; 3]) -> Result<Self, InferError> {
        let load = |e: TractError| InferError::Load {
            path: path.display().to_string(),
            reason: format!("{e:#}"),
        };
        let model = tract_onnx::onnx().model_for_path(path).map_err(load)?;
        Self::new(model, sample).map_err(load)
    }

    /// Loads an ONNX model held in memory.
    pub fn from_bytes(bytes: &[u8], sample: [usize; 3]) -> Result<Self, InferError> {
        let load = |e: TractError| InferError::Load {
            path: "(memory)".into(),
            reason: format!("{e:#}"),
        };
        let model = tract_onnx::onnx()
            .model_for_read(&mut std::io::Cursor::new(bytes))
            .map_err(load)?;
        Self::new(model, sample).map_err(load)
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
        let outputs = shape.iter().skip(1).product();
        Ok(Self {
            plan,
            sample,
            outputs,
        })
    }
}

impl Backend for CpuBackend {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn check(&self) -> Result<(), InferError> {
        Ok(())
    }

    fn infer(&mut self, input: &[f32], n: usize) -> Result<Vec<f32>, InferError> {
        let [c, h, w] = self.sample;
        let per = c * h * w;
        if input.len() != n * per || n == 0 {
            return Err(InferError::Shape {
                got: input.len(),
                n,
                want: n * per,
            });
        }
        let run_err = |e: TractError| InferError::Run(format!("{e:#}"));
        let mut probs = Vec::with_capacity(n * self.outputs);
        for sample in input.chunks_exact(per) {
            let tensor = Tensor::from_shape(&[1, c, h, w], sample).map_err(run_err)?;
            let out = self
                .plan
                .run(tvec!(tensor.into_tvalue()))
                .map_err(run_err)?;
            let view = out[0].try_as_plain_ram().map_err(run_err)?;
            probs.extend_from_slice(view.as_slice::<f32>().map_err(run_err)?);
        }
        Ok(probs)
    }

    fn outputs(&self) -> usize {
        self.outputs
    }
}
