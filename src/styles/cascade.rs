//! The edge-first cascade's rule and its fit.
//!
//! A bundle may carry a small edge model in front of the full ensemble
//! (`[cascade]` in `bundle.toml`). For each frame the edge model runs
//! first; its probabilities `e` are accepted when every class is further
//! than its margin from its first-stage threshold, `|e_c − t_c| > m_c` for
//! all `c`; otherwise the frame escalates to the ensemble. [`fit`] chooses
//! the margins on validation predictions of both stages so that macro F2
//! of the cascade stays within `epsilon` of the ensemble alone, with as few
//! escalations as it finds.

use super::metrics::macro_f2;
use super::DecisionParams;
use serde::{Deserialize, Serialize};

/// `[cascade]`'s rule: one margin per class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CascadeRule {
    #[serde(serialize_with = "crate::short_float::seq")]
    pub margins: Vec<f32>,
}

impl CascadeRule {
    /// Whether the edge model's `edge` probabilities stand (no escalation).
    pub fn accepts(&self, edge: &[f32], thresholds: &[f32]) -> bool {
        edge.iter()
            .zip(thresholds)
            .zip(&self.margins)
            .all(|((e, t), m)| (e - t).abs() > *m)
    }

    pub fn check(&self, classes: usize) -> Result<(), String> {
        if self.margins.len() != classes {
            return Err(format!(
                "[cascade] margins has {} values, the bundle has {classes} classes",
                self.margins.len()
            ));
        }
        if self.margins.iter().any(|m| !(m.is_finite() && *m >= 0.0)) {
            return Err("[cascade] margins must be finite and ≥ 0".into());
        }
        Ok(())
    }
}

/// What a rule does on a labelled set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CascadeScore {
    /// Macro F2 of the ensemble alone.
    pub f2_full: f64,
    /// Macro F2 of the edge model alone.
    pub f2_edge: f64,
    /// Macro F2 of the cascade.
    pub f2_cascade: f64,
    /// Share of samples sent to the ensemble.
    pub escalation: f64,
}

/// The cascade's probabilities per sample: the edge's where the rule
/// accepts them, else the ensemble's.
pub fn combine<'a>(
    rule: &CascadeRule,
    d: &DecisionParams,
    edge: &'a [Vec<f32>],
    full: &'a [Vec<f32>],
) -> (Vec<&'a [f32]>, usize) {
    let mut escalated = 0;
    let rows = edge
        .iter()
        .zip(full)
        .map(|(e, f)| {
            if rule.accepts(e, &d.thresholds) {
                e.as_slice()
            } else {
                escalated += 1;
                f.as_slice()
            }
        })
        .collect();
    (rows, escalated)
}

fn f2_of<'a>(
    d: &DecisionParams,
    rows: impl Iterator<Item = &'a [f32]>,
    labels: &[Vec<f32>],
) -> f64 {
    let predicted: Vec<Vec<usize>> = rows.map(|p| d.decide(p).labels).collect();
    macro_f2(&predicted, labels, d.classes())
}

/// Scores `rule` on a labelled set (`edge`, `full`: per-sample
/// probabilities of the two stages; `d`: the bundle's decision).
pub fn score(
    rule: &CascadeRule,
    d: &DecisionParams,
    edge: &[Vec<f32>],
    full: &[Vec<f32>],
    labels: &[Vec<f32>],
) -> CascadeScore {
    let (rows, escalated) = combine(rule, d, edge, full);
    CascadeScore {
        f2_full: f2_of(d, full.iter().map(Vec::as_slice), labels),
        f2_edge: f2_of(d, edge.iter().map(Vec::as_slice), labels),
        f2_cascade: f2_of(d, rows.into_iter(), labels),
        escalation: escalated as f64 / edge.len().max(1) as f64,
    }
}

/// Fits the margins on validation predictions: per class a scale
/// `σ_c` (RMS of the two stages' difference), margins `λ·σ_c` with the
/// `λ` of lowest escalation whose F2 is within `epsilon` of the ensemble's,
/// then each class's margin lowered on its own while that still holds.
pub fn fit(
    d: &DecisionParams,
    edge: &[Vec<f32>],
    full: &[Vec<f32>],
    labels: &[Vec<f32>],
    epsilon: f64,
) -> (CascadeRule, CascadeScore) {
    let c = d.classes();
    let n = edge.len().max(1) as f32;
    let sigma: Vec<f32> = (0..c)
        .map(|k| {
            let ss: f32 = edge
                .iter()
                .zip(full)
                .map(|(e, f)| (e[k] - f[k]).powi(2))
                .sum();
            (ss / n).sqrt().max(1e-4)
        })
        .collect();
    let f2_full = f2_of(d, full.iter().map(Vec::as_slice), labels);
    let ok = |rule: &CascadeRule| {
        let s = score(rule, d, edge, full, labels);
        (s.f2_cascade >= f2_full - epsilon, s)
    };
    // Margins of 1.0 escalate everything: the ensemble alone, always feasible.
    let mut best = CascadeRule {
        margins: vec![1.0; c],
    };
    let mut best_score = ok(&best).1;
    let lambdas = [
        0.0f32, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0,
    ];
    for &l in &lambdas {
        let rule = CascadeRule {
            margins: sigma.iter().map(|s| (l * s).min(1.0)).collect(),
        };
        let (feasible, s) = ok(&rule);
        if feasible && s.escalation < best_score.escalation {
            (best, best_score) = (rule, s);
        }
    }
    for k in 0..c {
        for f in [0.0f32, 0.25, 0.5, 0.75] {
            let mut rule = best.clone();
            rule.margins[k] *= f;
            let (feasible, s) = ok(&rule);
            if feasible && s.escalation < best_score.escalation {
                (best, best_score) = (rule, s);
                break;
            }
        }
    }
    (best, best_score)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    #[test]
    fn accepts_only_far_from_every_threshold() {
        let rule = CascadeRule {
            margins: vec![0.1, 0.2],
        };
        let t = [0.5, 0.5];
        assert!(rule.accepts(&[0.9, 0.1], &t));
        assert!(!rule.accepts(&[0.55, 0.1], &t), "class 0 within 0.1");
        assert!(!rule.accepts(&[0.9, 0.35], &t), "class 1 within 0.2");
        assert!(rule.check(2).is_ok());
        assert!(rule.check(3).is_err());
    }

    /// A good ensemble and a noisier edge model: the fitted cascade keeps
    /// F2 within ε of the ensemble and escalates only part of the samples.
    #[test]
    fn fit_keeps_f2_within_epsilon_and_escalates_less_than_all() {
        let (n, c) = (2000, 4);
        let mut rng = Rng::new(3);
        let mut labels = vec![];
        let (mut full, mut edge) = (vec![], vec![]);
        for _ in 0..n {
            let y: Vec<f32> = (0..c).map(|_| (rng.uniform() < 0.3) as u8 as f32).collect();
            let noisy = |rng: &mut Rng, s: f32| -> Vec<f32> {
                y.iter()
                    .map(|&v| (0.2 + 0.6 * v + s * (rng.uniform() - 0.5)).clamp(0.0, 1.0))
                    .collect()
            };
            full.push(noisy(&mut rng, 0.5));
            edge.push(noisy(&mut rng, 0.9));
            labels.push(y);
        }
        let d = DecisionParams::fixed(c, 0.5);
        let (rule, s) = fit(&d, &edge, &full, &labels, 0.005);
        assert!(s.f2_cascade >= s.f2_full - 0.005, "{s:?}");
        assert!(
            s.f2_edge < s.f2_full - 0.01,
            "the edge model alone is worse: {s:?}"
        );
        assert!(s.escalation < 0.8 && s.escalation > 0.0, "{s:?}");
        assert_eq!(score(&rule, &d, &edge, &full, &labels), s);
    }
}
