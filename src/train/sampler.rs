//! Stratified train/validation split and the resampling batch sampler.

use crate::rng::Rng;

/// Fisher–Yates shuffle with the caller's seeded generator.
pub fn shuffle<T>(v: &mut [T], rng: &mut Rng) {
    for i in (1..v.len()).rev() {
        v.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
    }
}

/// Splits sample indices into (train, validation) so that every class keeps
/// about `val_fraction` of its positives in validation: samples are grouped
/// by their rarest positive class and each group is split on its own
/// (seeded). A class with a single positive keeps it in training.
pub fn stratified_split(
    labels: &[Vec<f32>],
    val_fraction: f64,
    seed: u64,
) -> (Vec<usize>, Vec<usize>) {
    let classes = labels.first().map_or(0, Vec::len);
    let mut freq = vec![0usize; classes];
    for row in labels {
        for (a, &v) in row.iter().enumerate() {
            freq[a] += usize::from(v >= 0.5);
        }
    }
    // Group by rarest positive class (images with no label form their own group).
    let mut groups: Vec<Vec<usize>> = vec![Vec::new(); classes + 1];
    for (i, row) in labels.iter().enumerate() {
        let rarest = (0..classes)
            .filter(|&a| row[a] >= 0.5)
            .min_by_key(|&a| (freq[a], a))
            .unwrap_or(classes);
        groups[rarest].push(i);
    }
    let mut rng = Rng::new(seed);
    let (mut train, mut val) = (Vec::new(), Vec::new());
    for mut g in groups {
        shuffle(&mut g, &mut rng);
        let k = if g.len() < 2 {
            0
        } else {
            ((g.len() as f64 * val_fraction).round() as usize).clamp(1, g.len() - 1)
        };
        val.extend_from_slice(&g[..k]);
        train.extend_from_slice(&g[k..]);
    }
    train.sort_unstable();
    val.sort_unstable();
    (train, val)
}

/// Per-class negative undersampling: the fraction of a class's negatives
/// that count in its loss. A class with more than `per_positive` negatives
/// per positive in `train` keeps `per_positive × positives / negatives` of
/// them (drawn afresh for every batch, see [`super::fit::Plan`]); `overrides`
/// sets a class's fraction directly. 1.0 keeps every negative.
pub fn negative_keep(
    train: &[usize],
    labels: &[Vec<f32>],
    per_positive: Option<f64>,
    overrides: &[(usize, f32)],
) -> Vec<f32> {
    let classes = labels.first().map_or(0, Vec::len);
    let mut keep: Vec<f32> = (0..classes)
        .map(|a| {
            let pos = train.iter().filter(|&&i| labels[i][a] >= 0.5).count();
            let neg = train.len() - pos;
            match per_positive {
                Some(r) if pos > 0 && neg as f64 > r * pos as f64 => {
                    (r * pos as f64 / neg as f64) as f32
                }
                _ => 1.0,
            }
        })
        .collect();
    for &(a, k) in overrides {
        keep[a] = k;
    }
    keep
}

/// Batches for one epoch. With `guarantee_positives`, each batch first takes
/// one positive of every class that has positives (round-robin through that
/// class's shuffled list, so rare classes are seen every batch: an
/// oversampling of positives), then fills up from the epoch's shuffled
/// order. Negatives are undersampled per class in the loss
/// ([`negative_keep`]), not here: an image negative for a rare class is
/// still a positive or negative the other classes learn from.
pub struct Sampler {
    positives: Vec<Vec<usize>>,
    cursor: Vec<usize>,
    pub batch_size: usize,
    pub guarantee_positives: bool,
}

impl Sampler {
    pub fn new(
        train: &[usize],
        labels: &[Vec<f32>],
        batch_size: usize,
        guarantee_positives: bool,
    ) -> Self {
        let classes = labels.first().map_or(0, Vec::len);
        let positives = (0..classes)
            .map(|a| {
                train
                    .iter()
                    .copied()
                    .filter(|&i| labels[i][a] >= 0.5)
                    .collect()
            })
            .collect();
        Self {
            positives,
            cursor: vec![0; classes],
            batch_size,
            guarantee_positives,
        }
    }

    /// Classes with no positive among the training samples.
    pub fn classes_without_positives(&self) -> Vec<usize> {
        (0..self.positives.len())
            .filter(|&a| self.positives[a].is_empty())
            .collect()
    }

    /// How many batches [`Self::epoch`] makes from `n` samples: each batch
    /// holds the guaranteed positives (at most `batch_size - 1`) and is
    /// filled up from the samples.
    pub fn batches_per_epoch(&self, n: usize) -> usize {
        let guaranteed = if self.guarantee_positives {
            let classes = self.positives.iter().filter(|l| !l.is_empty()).count();
            classes.min(self.batch_size.saturating_sub(1))
        } else {
            0
        };
        n.div_ceil(self.batch_size - guaranteed)
    }

    /// The batches of one epoch over `train` (every training sample once,
    /// plus the guaranteed positives).
    pub fn epoch(&mut self, train: &[usize], rng: &mut Rng) -> Vec<Vec<usize>> {
        let mut order = train.to_vec();
        shuffle(&mut order, rng);
        let mut batches = Vec::new();
        let mut it = order.into_iter().peekable();
        while it.peek().is_some() {
            let mut batch = Vec::with_capacity(self.batch_size);
            if self.guarantee_positives {
                for a in 0..self.positives.len() {
                    let list = &mut self.positives[a];
                    if list.is_empty() || batch.len() + 1 >= self.batch_size {
                        continue;
                    }
                    if self.cursor[a].is_multiple_of(list.len()) {
                        shuffle(list, rng);
                    }
                    batch.push(list[self.cursor[a] % list.len()]);
                    self.cursor[a] += 1;
                }
            }
            while batch.len() < self.batch_size {
                match it.next() {
                    Some(i) => batch.push(i),
                    None => break,
                }
            }
            batches.push(batch);
        }
        batches
    }
}

#[cfg(test)]
#[allow(clippy::needless_range_loop)] // class indices read clearer here
mod tests {
    use super::*;
    use crate::styles::simulate::jd_like_labels;

    #[test]
    fn split_keeps_rare_classes_on_both_sides() {
        let labels = jd_like_labels(3000, 4);
        let (train, val) = stratified_split(&labels, 0.2, 1);
        assert_eq!(train.len() + val.len(), 3000);
        assert!((val.len() as f64 / 3000.0 - 0.2).abs() < 0.02);
        for a in 0..13 {
            let tr = train.iter().filter(|&&i| labels[i][a] == 1.0).count();
            let va = val.iter().filter(|&&i| labels[i][a] == 1.0).count();
            if tr + va >= 5 {
                assert!(va >= 1 && tr >= va, "class {a}: train {tr} val {va}");
            }
        }
        assert_eq!(stratified_split(&labels, 0.2, 1), (train, val), "seeded");
    }

    #[test]
    fn rare_classes_keep_few_negatives() {
        let labels = jd_like_labels(5000, 6);
        let train: Vec<usize> = (0..5000).collect();
        let keep = negative_keep(&train, &labels, Some(20.0), &[(1, 0.5)]);
        let count = |a: usize| train.iter().filter(|&&i| labels[i][a] == 1.0).count();
        // sports (class 0) is rare: 20 negatives per positive remain.
        let (pos, neg) = (count(0) as f32, 5000.0 - count(0) as f32);
        assert!(
            pos > 0.0 && (keep[0] * neg / pos - 20.0).abs() < 0.01,
            "{keep:?}"
        );
        assert_eq!(keep[1], 0.5, "override");
        assert!(keep.iter().all(|&k| k > 0.0 && k <= 1.0));
        assert_eq!(negative_keep(&train, &labels, None, &[]), vec![1.0; 13]);
    }

    #[test]
    fn every_batch_has_a_positive_of_every_class() {
        let labels = jd_like_labels(2000, 5);
        let train: Vec<usize> = (0..2000).collect();
        let mut s = Sampler::new(&train, &labels, 32, true);
        let batches = s.epoch(&train, &mut Rng::new(2));
        assert_eq!(batches.len(), s.batches_per_epoch(train.len()));
        let full: Vec<_> = batches.iter().filter(|b| b.len() == 32).collect();
        assert!(full.len() > 50);
        for b in full {
            for a in 0..13 {
                if !s.positives[a].is_empty() {
                    assert!(b.iter().any(|&i| labels[i][a] == 1.0), "class {a}");
                }
            }
        }
    }
}
