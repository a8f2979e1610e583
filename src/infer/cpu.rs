//! CPU backend on tract-onnx. A plan is optimised per batch size on first
//! use and kept; batch size 1 is what the daemon sends (on 2 cores tract
//! gains nothing from larger batches: see README "Benchmarks").

use super::{Backend, InferError};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use tract_onnx::prelude::*;

type Plan = Arc<TypedRunnableModel>;

pub struct CpuBackend {
    model: InferenceModel,
    source: String,
    sample: [usize; 3],
    outputs: usize,
    plans: HashMap<usize, Plan>,
}

impl CpuBackend {
    /// Loads an ONNX file whose input is `[N, sample...]`.
    pub fn load(path: &Path, sample: [usize; 3]) -> Result<Self, InferError> {
        let load = |reason: String| InferError::Load {
            path: path.display().to_string(),
            reason,
        };
        let model = tract_onnx::onnx()
            .model_for_path(path)
            .map_err(|e| load(format!("{e:#}")))?;
        Self::new(model, path.display().to_string(), sample)
    }

    /// Loads an ONNX model held in memory.
    pub fn from_bytes(bytes: &[u8], sample: [usize; 3]) -> Result<Self, InferError> {
        let model = tract_onnx::onnx()
            .model_for_read(&mut std::io::Cursor::new(bytes))
            .map_err(|e| InferError::Load {
                path: "(memory)".into(),
                reason: format!("{e:#}"),
            })?;
        Self::new(model, "(memory)".into(), sample)
    }

    fn new(model: InferenceModel, source: String, sample: [usize; 3]) -> Result<Self, InferError> {
        let mut me = Self {
            model,
            source,
            sample,
            outputs: 0,
            plans: HashMap::new(),
        };
        let plan = me.plan(1)?;
        let out = plan.model().output_fact(0).map_err(|e| me.load_err(e))?;
        let shape = out
            .shape
            .as_concrete()
            .ok_or_else(|| me.load_err(anyhow::anyhow!("output shape is not concrete")))?;
        me.outputs = shape.iter().skip(1).product();
        Ok(me)
    }

    fn load_err(&self, e: impl std::fmt::Display) -> InferError {
        InferError::Load {
            path: self.source.clone(),
            reason: format!("{e:#}"),
        }
    }

    fn plan(&mut self, n: usize) -> Result<Plan, InferError> {
        if let Some(p) = self.plans.get(&n) {
            return Ok(p.clone());
        }
        let [c, h, w] = self.sample;
        let plan = self
            .model
            .clone()
            .with_input_fact(0, f32::fact([n, c, h, w]).into())
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(|e| self.load_err(format!("{e:#} (input [{n},{c},{h},{w}])")))?;
        self.plans.insert(n, plan.clone());
        Ok(plan)
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
        let want = n * c * h * w;
        if input.len() != want || n == 0 {
            return Err(InferError::Shape {
                got: input.len(),
                n,
                want,
            });
        }
        let plan = self.plan(n)?;
        let tensor = Tensor::from_shape(&[n, c, h, w], input)
            .map_err(|e| InferError::Run(format!("{e:#}")))?;
        let out = plan
            .run(tvec!(tensor.into_tvalue()))
            .map_err(|e| InferError::Run(format!("{e:#}")))?;
        let run_err = |e: TractError| InferError::Run(format!("{e:#}"));
        let view = out[0].try_as_plain_ram().map_err(run_err)?;
        Ok(view.as_slice::<f32>().map_err(run_err)?.to_vec())
    }

    fn outputs(&self) -> usize {
        self.outputs
    }
}
