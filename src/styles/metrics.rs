//! F2 scores. Per class: `F2 = 5PR / (4P + R)` = `5TP / (5TP + 4FN + FP)`.
//! A class with nothing to find and nothing found scores 1; one with
//! something wrong and no true positive scores 0. The challenge's score is
//! the macro mean over classes.

/// Counts for one class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub tp: u64,
    pub fp: u64,
    pub fn_: u64,
}

impl Counts {
    pub fn add(&mut self, predicted: bool, truth: bool) {
        match (predicted, truth) {
            (true, true) => self.tp += 1,
            (true, false) => self.fp += 1,
            (false, true) => self.fn_ += 1,
            (false, false) => {}
        }
    }

    pub fn f2(&self) -> f64 {
        let denom = 5 * self.tp + 4 * self.fn_ + self.fp;
        if denom == 0 {
            1.0
        } else {
            5.0 * self.tp as f64 / denom as f64
        }
    }
}

/// Per-class F2 of predicted label sets against 0/1 truth rows.
pub fn per_class_f2(predicted: &[Vec<usize>], truth: &[Vec<f32>], classes: usize) -> Vec<f64> {
    let mut counts = vec![Counts::default(); classes];
    for (pred, t) in predicted.iter().zip(truth) {
        for (a, c) in counts.iter_mut().enumerate() {
            c.add(pred.contains(&a), t[a] >= 0.5);
        }
    }
    counts.iter().map(Counts::f2).collect()
}

/// The challenge's score: mean of per-class F2.
pub fn macro_f2(predicted: &[Vec<usize>], truth: &[Vec<f32>], classes: usize) -> f64 {
    let f = per_class_f2(predicted, truth, classes);
    f.iter().sum::<f64>() / classes as f64
}

/// Mean over images of each image's own F2.
pub fn per_sample_f2(predicted: &[Vec<usize>], truth: &[Vec<f32>]) -> f64 {
    if predicted.is_empty() {
        return 0.0;
    }
    let total: f64 = predicted
        .iter()
        .zip(truth)
        .map(|(pred, t)| {
            let mut c = Counts::default();
            for (a, &v) in t.iter().enumerate() {
                c.add(pred.contains(&a), v >= 0.5);
            }
            c.f2()
        })
        .sum();
    total / predicted.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn direct_f2(pred: &[bool], truth: &[bool]) -> f64 {
        let tp = pred.iter().zip(truth).filter(|(p, t)| **p && **t).count() as f64;
        let npred = pred.iter().filter(|p| **p).count() as f64;
        let npos = truth.iter().filter(|t| **t).count() as f64;
        if npred == 0.0 && npos == 0.0 {
            return 1.0;
        }
        if tp == 0.0 {
            return 0.0;
        }
        let (p, r) = (tp / npred, tp / npos);
        5.0 * p * r / (4.0 * p + r)
    }

    #[test]
    fn by_hand() {
        // Class 0: tp 1, fp 1, fn 1 → P = R = 0.5 → F2 = 0.5.
        let pred = vec![vec![0], vec![0], vec![]];
        let truth = vec![vec![1.0, 0.0], vec![0.0, 0.0], vec![1.0, 0.0]];
        let f = per_class_f2(&pred, &truth, 2);
        assert!((f[0] - 0.5).abs() < 1e-12);
        assert_eq!(f[1], 1.0);
        assert!((macro_f2(&pred, &truth, 2) - 0.75).abs() < 1e-12);
    }

    proptest! {
        #[test]
        fn f2_equals_direct_computation(rows in proptest::collection::vec(
            (proptest::collection::vec(any::<bool>(), 4), proptest::collection::vec(any::<bool>(), 4)), 1..40)) {
            let predicted: Vec<Vec<usize>> = rows.iter().map(|(p, _)| (0..4).filter(|&a| p[a]).collect()).collect();
            let truth: Vec<Vec<f32>> = rows.iter().map(|(_, t)| t.iter().map(|&b| b as u8 as f32).collect()).collect();
            let f = per_class_f2(&predicted, &truth, 4);
            for a in 0..4 {
                let p: Vec<bool> = rows.iter().map(|(p, _)| p[a]).collect();
                let t: Vec<bool> = rows.iter().map(|(_, t)| t[a]).collect();
                prop_assert!((f[a] - direct_f2(&p, &t)).abs() < 1e-9);
            }
            let ps = per_sample_f2(&predicted, &truth);
            let direct: f64 = rows.iter().map(|(p, t)| direct_f2(p, t)).sum::<f64>() / rows.len() as f64;
            prop_assert!((ps - direct).abs() < 1e-9);
        }
    }
}
