//! The edge-first cascade as a [`Backend`]: frames are written into the
//! edge model's slots; `run` runs the edge model on the batch, keeps the
//! rows its rule accepts ([`CascadeRule`]) and runs the ensemble on the
//! others only (their inputs copied across), so the pipeline sees one
//! backend with the ensemble's output contract.

use super::{check_batch, Backend, BatchLimits, InferError, Slot};
use crate::styles::cascade::CascadeRule;

pub struct CascadeBackend {
    edge: Box<dyn Backend>,
    full: Box<dyn Backend>,
    rule: CascadeRule,
    thresholds: Vec<f32>,
    out: Vec<f32>,
    staging: Vec<f32>,
    escalated: u64,
}

impl CascadeBackend {
    /// `edge` and `full` take the same input and give the same classes;
    /// `thresholds`: the bundle's first-stage thresholds.
    pub fn new(
        edge: Box<dyn Backend>,
        full: Box<dyn Backend>,
        rule: CascadeRule,
        thresholds: Vec<f32>,
    ) -> Result<Self, InferError> {
        let load = |reason: String| InferError::Load {
            path: "[cascade]".into(),
            reason,
        };
        if edge.sample_len() != full.sample_len() || edge.classes() != full.classes() {
            return Err(load(format!(
                "the edge model takes {} values and gives {} classes, the ensemble {} and {}",
                edge.sample_len(),
                edge.classes(),
                full.sample_len(),
                full.classes()
            )));
        }
        rule.check(full.classes()).map_err(load)?;
        Ok(Self {
            edge,
            full,
            rule,
            thresholds,
            out: vec![],
            staging: vec![],
            escalated: 0,
        })
    }
}

impl Backend for CascadeBackend {
    fn name(&self) -> &'static str {
        self.full.name()
    }

    fn limits(&self) -> BatchLimits {
        let (e, f) = (self.edge.limits(), self.full.limits());
        BatchLimits {
            max: e.max.min(f.max),
            preferred: e.preferred.min(f.preferred),
            fixed: e.fixed || f.fixed,
        }
    }

    fn sample_len(&self) -> usize {
        self.full.sample_len()
    }

    fn classes(&self) -> usize {
        self.full.classes()
    }

    fn slots(&mut self, i: usize, n: usize) -> Slot<'_> {
        self.edge.slots(i, n)
    }

    fn run(&mut self, n: usize) -> Result<&[f32], InferError> {
        check_batch(n, self.limits())?;
        let c = self.classes();
        self.out.clear();
        self.out.extend_from_slice(self.edge.run(n)?);
        let escalate: Vec<usize> = (0..n)
            .filter(|&i| {
                !self
                    .rule
                    .accepts(&self.out[i * c..(i + 1) * c], &self.thresholds)
            })
            .collect();
        if escalate.is_empty() {
            return Ok(&self.out);
        }
        for (k, &i) in escalate.iter().enumerate() {
            match self.edge.slot(i) {
                Slot::Host(s) => {
                    self.staging.clear();
                    self.staging.extend_from_slice(s);
                }
                Slot::Device(_) => {
                    return Err(InferError::Run(
                        "the cascade copies escalated inputs through host memory; a backend with device-memory slots cannot run a [cascade] bundle in this version (set model.cascade = false)".into(),
                    ))
                }
            }
            self.full.write(k, &self.staging)?;
        }
        let full = self.full.run(escalate.len())?;
        for (k, &i) in escalate.iter().enumerate() {
            self.out[i * c..(i + 1) * c].copy_from_slice(&full[k * c..(k + 1) * c]);
        }
        self.escalated += escalate.len() as u64;
        Ok(&self.out)
    }

    fn escalated(&self) -> u64 {
        self.escalated
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::Bundle;
    use crate::infer::cpu::CpuBackend;

    fn demo() -> (Bundle, Vec<f32>) {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo-bundle");
        let bundle = Bundle::load(&dir).unwrap();
        let per = 3 * 224 * 224;
        // Four different inputs.
        let x: Vec<f32> = (0..4 * per)
            .map(|i| ((i % 997) as f32 / 997.0 - 0.5) * (1 + i / per) as f32)
            .collect();
        (bundle, x)
    }

    fn cascade(bundle: &Bundle, margins: f32, thresholds: Vec<f32>) -> CascadeBackend {
        let c = bundle.manifest.classes.len();
        CascadeBackend::new(
            Box::new(CpuBackend::open(bundle).unwrap()),
            Box::new(CpuBackend::open(bundle).unwrap()),
            CascadeRule {
                margins: vec![margins; c],
            },
            thresholds,
        )
        .unwrap()
    }

    /// Margin 0 accepts every edge row, margin 1 escalates every row; the
    /// output is the ensemble's contract either way, row for row.
    #[test]
    fn rows_stand_or_escalate_by_the_rule() {
        let (bundle, x) = demo();
        let c = bundle.manifest.classes.len();
        let want = CpuBackend::open(&bundle).unwrap().infer(&x, 4).unwrap();
        let mut none = cascade(&bundle, 0.0, vec![0.5; c]);
        let got = none.infer(&x, 4).unwrap();
        assert_eq!(none.escalated(), 0);
        let mut all = cascade(&bundle, 1.0, vec![0.5; c]);
        let got_all = all.infer(&x, 4).unwrap();
        assert_eq!(all.escalated(), 4);
        for (a, b) in want.iter().zip(got.iter().chain(&got_all)) {
            assert!((a - b).abs() < 1e-6);
        }
        // A threshold right at row 0's first probability escalates that
        // row only (margins just above 0).
        let mut t = vec![-1.0; c];
        t[0] = want[0];
        let mut one = cascade(&bundle, 1e-9, t);
        one.infer(&x, 4).unwrap();
        assert_eq!(one.escalated(), 1);
    }
}
