//! Simulated classifier scores for labelled images, for tests and
//! ablations: a stand-in for a trained ensemble whose errors look like a
//! real one's (rare classes score low, and a positive is sometimes missed
//! outright), driven by real label statistics.

use crate::rng::Rng;

/// Scores for 0/1 `labels`: logit `N(μ, 1)` with `μ = 1.5` for a detected
/// positive and `-2.5` for a negative; classes rarer than 2% are harder
/// (`μ = 0` for their positives); a positive is missed with probability
/// `miss` (`μ = -1`: below 0.5, yet above most negatives).
pub fn scores(labels: &[Vec<f32>], miss: f32, seed: u64) -> Vec<Vec<f32>> {
    let n = labels.len().max(1) as f32;
    let c = labels.first().map_or(0, Vec::len);
    let freq: Vec<f32> = (0..c)
        .map(|a| labels.iter().filter(|r| r[a] >= 0.5).count() as f32 / n)
        .collect();
    let mut rng = Rng::new(seed);
    labels
        .iter()
        .map(|row| {
            (0..c)
                .map(|a| {
                    let mu = match (row[a] >= 0.5, rng.uniform() < miss, freq[a] < 0.02) {
                        (true, false, false) => 1.5,
                        (true, false, true) => 0.0,
                        (true, true, _) => -1.0,
                        (false, _, _) => -2.5,
                    };
                    let logit = mu + rng.normal();
                    1.0 / (1.0 + (-logit).exp())
                })
                .collect()
        })
        .collect()
}

/// JD-like label rows, for when the real label files are absent: marginals
/// from the challenge's published test-label counts, with its strongest
/// relations (sports ⇒ casual, office_lady ⇒ lady ≈ 0.98, japanese and
/// korean never together) and 1..=5 labels per image.
pub fn jd_like_labels(n: usize, seed: u64) -> Vec<Vec<f32>> {
    // Per-class marginals on the 10,000 test labels (DESIGN.md, shared data README).
    const P: [f32; 13] = [
        0.0023, 0.0708, 0.9182, 0.0037, 0.3491, 0.1572, 0.0033, 0.0219, 0.9085, 0.1258, 0.0634,
        0.0203, 0.0059,
    ];
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| {
            let mut row = [0f32; 13];
            for a in 0..13 {
                row[a] = (rng.uniform() < P[a]) as u8 as f32;
            }
            // lady mostly follows office_lady (P(lady|OL) ≈ 0.98).
            row[8] = if row[2] == 1.0 {
                (rng.uniform() < 0.98) as u8 as f32
            } else {
                (rng.uniform() < 0.3) as u8 as f32
            };
            if row[0] == 1.0 {
                row[1] = 1.0;
            }
            if row[3] == 1.0 {
                row[4] = 0.0;
            }
            let count = row.iter().filter(|&&v| v == 1.0).count();
            if count == 0 {
                row[2] = 1.0;
            }
            let mut extra = count.saturating_sub(5);
            for v in row.iter_mut().rev() {
                if extra == 0 {
                    break;
                }
                if *v == 1.0 {
                    *v = 0.0;
                    extra -= 1;
                }
            }
            row.to_vec()
        })
        .collect()
}
