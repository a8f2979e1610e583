//! The paper's training recipe as data: its cost-sensitive weights and our
//! default negative undersampling. Both `train` and the ablation use them.

/// The report's cost-sensitive weights: 1.5 for classes 1,4,7,8,11,12,13.
pub fn paper_fn_weights() -> Vec<f32> {
    (1..=13)
        .map(|c| {
            if [1, 4, 7, 8, 11, 12, 13].contains(&c) {
                1.5
            } else {
                1.0
            }
        })
        .collect()
}

/// The default of `train.negatives_per_positive`. The report undersampled
/// negatives with per-class lists we could not obtain; 20 negatives per
/// positive touches only the classes rarer than 1 in 21 (in the JD test
/// labels: sports keeps 4.6% of its negatives, british 6.6%, japanese 7.4%,
/// ethnic 12%, punk 41%, girl 45%; the other seven keep all).
pub const DEFAULT_NEGATIVES_PER_POSITIVE: f64 = 20.0;
