//! A linear head trained on frozen features with the paper's loss choices.
//!
//! One logistic regression per class (multi-label, one-vs-rest) on features
//! standardised with the training set's mean and spread, fitted by
//! Newton-CG (liblinear's solver: exact Hessian-vector products, conjugate
//! gradients, Armijo backtracking; deterministic, no factorisation, so D =
//! 1280 costs O(n·D) per product). The objective is sklearn's
//! `LogisticRegression`: `C·Σ sᵢ·BCEᵢ + ½‖w‖²`, intercept unpenalised, with
//! `C` chosen per class on validation from [`HeadOptions::grid`] (best F2
//! at that class's best threshold, ties to the lower validation loss).
//!
//! The paper's loss choices as sample weights `sᵢ` (DESIGN.md "Trainer"):
//! - **resampling / class balance**: positives and negatives of a class
//!   weigh `n/(2·n₊)` and `n/(2·n₋)`, the expected loss of resampling the
//!   class to half positives, without the randomness;
//! - **cost-sensitive false negatives**: a positive's weight is further
//!   multiplied by the class's false-negative weight; by default
//!   ([`fn_weights_from_frequency`]) 1.5 for the classes rarer than the
//!   median class (the paper's 1.5 on its rare styles), 1.0 for the others.
//!
//! The fitted head is expressed on the raw features ([`LinearHead`]:
//! `sigmoid(x·W + b)`), so a graph needs no standardisation node.

use super::metrics::Counts;
use super::search::best_threshold;
use std::sync::atomic::{AtomicBool, Ordering};

mod newton;
use newton::{margins, newton_cg, sigmoid, softplus, Problem};

/// How the head is trained.
#[derive(Debug, Clone, PartialEq)]
pub struct HeadOptions {
    /// Inverse L2 strengths to try per class (sklearn's `C`).
    pub grid: Vec<f64>,
    /// Weigh each class's positives and negatives to equal totals.
    pub balance: bool,
    /// Per-class false-negative weights; `None`: [`fn_weights_from_frequency`].
    pub fn_weights: Option<Vec<f32>>,
}

impl Default for HeadOptions {
    fn default() -> Self {
        Self {
            grid: (0..=10)
                .map(|k| 10f64.powf(-4.0 + 0.5 * k as f64))
                .collect(),
            balance: true,
            fn_weights: None,
        }
    }
}

/// `probs = sigmoid(x·W + b)` on raw features; `weights` is `[dim, classes]`
/// row-major (the ONNX MatMul's layout).
#[derive(Debug, Clone, PartialEq)]
pub struct LinearHead {
    pub dim: usize,
    pub classes: usize,
    pub weights: Vec<f32>,
    pub bias: Vec<f32>,
    /// The `C` chosen per class.
    pub chosen_c: Vec<f64>,
    /// The false-negative weights used.
    pub fn_weights: Vec<f32>,
}

impl LinearHead {
    /// Probabilities for `x` (`n × dim` row-major): `n × classes`.
    pub fn predict(&self, x: &[f32]) -> Vec<Vec<f32>> {
        x.chunks_exact(self.dim)
            .map(|row| {
                (0..self.classes)
                    .map(|c| {
                        let z = self.bias[c] as f64
                            + row
                                .iter()
                                .enumerate()
                                .map(|(d, &v)| v as f64 * self.weights[d * self.classes + c] as f64)
                                .sum::<f64>();
                        sigmoid(z) as f32
                    })
                    .collect()
            })
            .collect()
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum HeadError {
    #[error("class {0:?} has no positive in the training crops")]
    NoPositives(String),
    #[error("class {0:?} is positive on every training crop: it separates nothing")]
    AllPositive(String),
    #[error("stopped")]
    Stopped,
    #[error("{0}")]
    Shape(String),
}

/// 1.5 for the classes whose positive rate in `y` is below the median
/// class's, 1.0 for the others.
pub fn fn_weights_from_frequency(y: &[Vec<f32>], classes: usize) -> Vec<f32> {
    let rate: Vec<f64> = (0..classes)
        .map(|c| y.iter().filter(|r| r[c] >= 0.5).count() as f64 / y.len().max(1) as f64)
        .collect();
    let mut sorted = rate.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted.get(classes / 2).copied().unwrap_or(0.0);
    rate.iter()
        .map(|&r| if r < median { 1.5 } else { 1.0 })
        .collect()
}

/// Training data for [`fit`]: `x` is `n × dim` row-major, `y` per row 0/1.
pub struct Set<'a> {
    pub x: &'a [f32],
    pub y: &'a [Vec<f32>],
}

/// Fits the head on `train`, choosing `C` per class on `val`. `progress`
/// gets (fits done, fits in all) after each fit; `stop` is checked between
/// fits. `names` name the classes in errors.
pub fn fit(
    train: Set,
    val: Set,
    dim: usize,
    names: &[String],
    o: &HeadOptions,
    progress: &(dyn Fn(usize, usize) + Sync),
    stop: &AtomicBool,
) -> Result<LinearHead, HeadError> {
    let classes = names.len();
    let n = train.y.len();
    if dim == 0 || train.x.len() != n * dim || val.x.len() != val.y.len() * dim {
        return Err(HeadError::Shape(format!(
            "features of {} values for {n} training rows of dim {dim}",
            train.x.len()
        )));
    }
    let fn_weights = o
        .fn_weights
        .clone()
        .unwrap_or_else(|| fn_weights_from_frequency(train.y, classes));
    let (mean, scale) = standardizer(train.x, dim);
    let xs = standardize(train.x, dim, &mean, &scale);
    let xv = standardize(val.x, dim, &mean, &scale);
    let total = classes * o.grid.len();
    let done = std::sync::atomic::AtomicUsize::new(0);
    let fit_class = |c: usize| -> Result<(Vec<f64>, f64), HeadError> {
        let y: Vec<bool> = train.y.iter().map(|r| r[c] >= 0.5).collect();
        let pos = y.iter().filter(|&&t| t).count();
        if pos == 0 {
            return Err(HeadError::NoPositives(names[c].clone()));
        }
        if pos == n {
            return Err(HeadError::AllPositive(names[c].clone()));
        }
        let (wp, wn) = if o.balance {
            (
                n as f64 / (2.0 * pos as f64),
                n as f64 / (2.0 * (n - pos) as f64),
            )
        } else {
            (1.0, 1.0)
        };
        let s: Vec<f64> = y
            .iter()
            .map(|&t| if t { wp * fn_weights[c] as f64 } else { wn })
            .collect();
        let yv: Vec<bool> = val.y.iter().map(|r| r[c] >= 0.5).collect();
        let sv: Vec<f64> = yv
            .iter()
            .map(|&t| if t { wp * fn_weights[c] as f64 } else { wn })
            .collect();
        let mut theta = vec![0.0; dim + 1];
        // (F2 at the best threshold, -validation loss), θ, C
        let mut best: Option<((f64, f64), Vec<f64>, f64)> = None;
        for &cost in &o.grid {
            if stop.load(Ordering::Relaxed) {
                return Err(HeadError::Stopped);
            }
            let p = Problem {
                x: &xs,
                y: &y,
                s: &s,
                dim,
                cost,
            };
            newton_cg(&p, &mut theta);
            let score = if yv.is_empty() {
                (0.0, 0.0)
            } else {
                let z = margins(&xv, dim, &theta);
                let probs: Vec<f32> = z.iter().map(|&z| sigmoid(z) as f32).collect();
                let loss: f64 = z
                    .iter()
                    .zip(&yv)
                    .zip(&sv)
                    .map(|((&z, &t), &w)| w * (softplus(z) - if t { z } else { 0.0 }))
                    .sum();
                (best_threshold(&probs, &yv).1, -loss)
            };
            if best.as_ref().is_none_or(|(b, _, _)| score > *b) {
                best = Some((score, theta.clone(), cost));
            }
            progress(done.fetch_add(1, Ordering::Relaxed) + 1, total);
        }
        let (_, theta, cost) = best.expect("a non-empty grid");
        Ok((theta, cost))
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(classes.max(1));
    let fits: Vec<Result<(Vec<f64>, f64), HeadError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let fit_class = &fit_class;
                scope.spawn(move || {
                    (t..classes)
                        .step_by(threads)
                        .map(|c| (c, fit_class(c)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all: Vec<_> = handles
            .into_iter()
            .flat_map(|h| h.join().expect("head fit thread"))
            .collect();
        all.sort_by_key(|(c, _)| *c);
        all.into_iter().map(|(_, r)| r).collect()
    });
    let mut head = LinearHead {
        dim,
        classes,
        weights: vec![0.0; dim * classes],
        bias: vec![0.0; classes],
        chosen_c: vec![0.0; classes],
        fn_weights,
    };
    for (c, r) in fits.into_iter().enumerate() {
        let (theta, cost) = r?;
        // Back to raw features: w/σ, b − Σ w·μ/σ.
        let mut b = theta[dim];
        for d in 0..dim {
            let w = theta[d] / scale[d];
            head.weights[d * classes + c] = w as f32;
            b -= w * mean[d];
        }
        head.bias[c] = b as f32;
        head.chosen_c[c] = cost;
    }
    Ok(head)
}

/// F2 at threshold `t` of `probs` against `truth` (tests, reports).
pub fn f2_at(probs: &[f32], truth: &[bool], t: f32) -> f64 {
    let mut k = Counts::default();
    for (&p, &y) in probs.iter().zip(truth) {
        k.add(p >= t, y);
    }
    k.f2()
}

fn standardizer(x: &[f32], dim: usize) -> (Vec<f64>, Vec<f64>) {
    let n = (x.len() / dim).max(1) as f64;
    let mut mean = vec![0.0; dim];
    for row in x.chunks_exact(dim) {
        for (m, &v) in mean.iter_mut().zip(row) {
            *m += v as f64;
        }
    }
    mean.iter_mut().for_each(|m| *m /= n);
    let mut var = vec![0.0; dim];
    for row in x.chunks_exact(dim) {
        for ((s, &v), m) in var.iter_mut().zip(row).zip(&mean) {
            *s += (v as f64 - m).powi(2);
        }
    }
    let scale = var
        .iter()
        .map(|s| {
            let sd = (s / n).sqrt();
            if sd > 1e-6 {
                sd
            } else {
                1.0
            }
        })
        .collect();
    (mean, scale)
}

fn standardize(x: &[f32], dim: usize, mean: &[f64], scale: &[f64]) -> Vec<f64> {
    x.chunks_exact(dim)
        .flat_map(|row| {
            row.iter()
                .zip(mean)
                .zip(scale)
                .map(|((&v, m), s)| (v as f64 - m) / s)
        })
        .collect()
}

#[cfg(test)]
mod tests;
