//! The decision for one image (DESIGN.md "Style decision", steps 3–5):
//!
//! 1. `M = { b : p_b ≥ t_b }`.
//! 2. eq. 2: if `M \ {a}` is empty, `p'_a = p_a`; else
//!    `p'_a = α·p_a + Σ_{b∈M, b≠a} β_b·R[a][b]`.
//! 3. `L = { a : p'_a ≥ t'_a }`.
//! 4. Cardinality: empty `L` → add `argmax p'_a / t'_a`; more than
//!    `max_labels` → keep the largest `p'_a / t'_a`.

use super::RelationMatrix;
use serde::{Deserialize, Serialize};

/// Everything `tune` fits; stored as `[decision]` in `bundle.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionParams {
    /// `t`: first-stage thresholds (which classes count as present for eq. 2).
    #[serde(serialize_with = "crate::short_float::seq")]
    pub thresholds: Vec<f32>,
    /// `α` of eq. 2.
    #[serde(serialize_with = "crate::short_float::one")]
    pub alpha: f32,
    /// `β_b` of eq. 2, per class `b`.
    #[serde(serialize_with = "crate::short_float::seq")]
    pub beta: Vec<f32>,
    /// `R[a][b] = P(a|b)` from training labels.
    pub relation: RelationMatrix,
    /// `t'`: thresholds on the adjusted scores.
    #[serde(serialize_with = "crate::short_float::seq")]
    pub second_thresholds: Vec<f32>,
    /// Fewest labels per image (1 in the challenge; 0 turns the rule off).
    pub min_labels: usize,
    /// Most labels per image (5 in the challenge).
    pub max_labels: usize,
}

/// One image's outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Chosen class indices, ascending.
    pub labels: Vec<usize>,
    /// `p'` after eq. 2.
    pub adjusted: Vec<f32>,
}

impl DecisionParams {
    /// Fixed thresholds, no relations, no cardinality rule: the plain baseline.
    pub fn fixed(classes: usize, threshold: f32) -> Self {
        Self {
            thresholds: vec![threshold; classes],
            alpha: 1.0,
            beta: vec![0.0; classes],
            relation: RelationMatrix::zeros(classes),
            second_thresholds: vec![threshold; classes],
            min_labels: 0,
            max_labels: classes,
        }
    }

    /// The challenge's defaults without tuning: 0.5 thresholds, 1..=5 labels.
    pub fn untuned(classes: usize) -> Self {
        Self {
            min_labels: 1,
            max_labels: 5.min(classes),
            ..Self::fixed(classes, 0.5)
        }
    }

    pub fn classes(&self) -> usize {
        self.thresholds.len()
    }

    /// Checks that every vector has one entry per class and values are usable.
    pub fn check(&self, classes: usize) -> Result<(), String> {
        let lens = [
            ("thresholds", self.thresholds.len()),
            ("beta", self.beta.len()),
            ("second_thresholds", self.second_thresholds.len()),
            ("relation", self.relation.classes()),
        ];
        for (name, len) in lens {
            if len != classes {
                return Err(format!(
                    "decision.{name} has {len} entries but the bundle has {classes} classes"
                ));
            }
        }
        if self.relation.0.iter().any(|r| r.len() != classes) {
            return Err(format!("decision.relation must be {classes}x{classes}"));
        }
        if self.min_labels > self.max_labels {
            return Err(format!(
                "decision.min_labels {} > max_labels {}",
                self.min_labels, self.max_labels
            ));
        }
        if !self.alpha.is_finite()
            || self
                .thresholds
                .iter()
                .chain(&self.second_thresholds)
                .any(|t| !t.is_finite())
        {
            return Err("decision thresholds and alpha must be finite numbers".into());
        }
        Ok(())
    }

    /// Eq. 2 for one image.
    pub fn adjust(&self, p: &[f32]) -> Vec<f32> {
        let c = p.len();
        let present: Vec<usize> = (0..c).filter(|&b| p[b] >= self.thresholds[b]).collect();
        (0..c)
            .map(|a| {
                let others = present.iter().filter(|&&b| b != a);
                if others.clone().next().is_none() {
                    p[a]
                } else {
                    self.alpha * p[a]
                        + others
                            .map(|&b| self.beta[b] * self.relation.get(a, b))
                            .sum::<f32>()
                }
            })
            .collect()
    }

    /// Labels from adjusted scores: second thresholds, then cardinality.
    pub fn select(&self, adjusted: &[f32]) -> Vec<usize> {
        let t2 = &self.second_thresholds;
        let ratio = |a: usize| adjusted[a] / t2[a].max(1e-6);
        let mut labels: Vec<usize> = (0..adjusted.len())
            .filter(|&a| adjusted[a] >= t2[a])
            .collect();
        if labels.len() < self.min_labels {
            let mut rest: Vec<usize> = (0..adjusted.len())
                .filter(|a| !labels.contains(a))
                .collect();
            rest.sort_by(|&x, &y| ratio(y).total_cmp(&ratio(x)).then(x.cmp(&y)));
            labels.extend(rest.into_iter().take(self.min_labels - labels.len()));
        }
        if labels.len() > self.max_labels {
            labels.sort_by(|&x, &y| ratio(y).total_cmp(&ratio(x)).then(x.cmp(&y)));
            labels.truncate(self.max_labels);
        }
        labels.sort_unstable();
        labels
    }

    /// The whole decision for one image's probabilities.
    pub fn decide(&self, p: &[f32]) -> Decision {
        let adjusted = self.adjust(p);
        Decision {
            labels: self.select(&adjusted),
            adjusted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn params() -> DecisionParams {
        let mut d = DecisionParams::untuned(3);
        d.alpha = 0.5;
        d.beta = vec![0.4, 0.4, 0.4];
        d.relation = RelationMatrix(vec![
            vec![1.0, 0.9, 0.0],
            vec![0.5, 1.0, 0.0],
            vec![0.0, 0.0, 1.0],
        ]);
        d
    }

    #[test]
    fn eq2_by_hand() {
        let d = params();
        // M = {0} (0.8 ≥ 0.5). For a = 0, M \ {0} is empty → p'_0 = p_0.
        // For a = 1: 0.5·0.3 + 0.4·R[1][0] = 0.15 + 0.2 = 0.35.
        let adj = d.adjust(&[0.8, 0.3, 0.1]);
        assert!((adj[0] - 0.8).abs() < 1e-6);
        assert!((adj[1] - 0.35).abs() < 1e-6);
        assert!((adj[2] - 0.05).abs() < 1e-6);
        // M = {0, 1}: p'_0 = 0.5·0.8 + 0.4·0.9 = 0.76, p'_1 = 0.5·0.6 + 0.4·0.5 = 0.5.
        let adj = d.adjust(&[0.8, 0.6, 0.1]);
        assert!(
            (adj[0] - 0.76).abs() < 1e-6 && (adj[1] - 0.5).abs() < 1e-6,
            "{adj:?}"
        );
    }

    #[test]
    fn cardinality_fills_and_trims_by_ratio() {
        let mut d = DecisionParams::untuned(7);
        d.second_thresholds = vec![0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.2];
        // Nothing above threshold: the best p'/t' wins (0.15/0.2 > 0.3/0.5).
        assert_eq!(d.select(&[0.3, 0.1, 0.0, 0.0, 0.0, 0.0, 0.15]), vec![6]);
        // Seven above threshold: the five best ratios stay.
        assert_eq!(
            d.select(&[0.9, 0.8, 0.7, 0.6, 0.55, 0.51, 0.21]),
            vec![0, 1, 2, 3, 4]
        );
    }

    proptest! {
        #[test]
        fn always_one_to_five_labels(p in proptest::collection::vec(0.0f32..=1.0, 13),
                                     t in proptest::collection::vec(0.01f32..0.99, 13),
                                     alpha in 0.0f32..=1.0, beta in 0.0f32..=1.0) {
            let mut d = DecisionParams::untuned(13);
            d.thresholds = t.clone();
            d.second_thresholds = t;
            d.alpha = alpha;
            d.beta = vec![beta; 13];
            d.relation = RelationMatrix(vec![vec![0.3; 13]; 13]);
            let out = d.decide(&p);
            prop_assert!((1..=5).contains(&out.labels.len()));
            prop_assert!(out.labels.windows(2).all(|w| w[0] < w[1]));
        }
    }
}
