//! Timed training steps on a fixed synthetic batch stream: what
//! `stylecam bench train-steps` runs, on the CPU or a GPU, to compare the
//! two (the same seed gives the same initial net and the same batches, so
//! the loss curves differ only by float rounding) and to measure images/s
//! against PyTorch on the same GPU (`scripts/device-check.sh`).

use super::fit::{predict, Batch, Loss, Trainer};
use super::Net;
use crate::rng::Rng;
use std::time::Instant;

/// What to run.
#[derive(Debug, Clone)]
pub struct StepsConfig {
    pub batch: usize,
    /// Input side (images are `size × size`).
    pub size: usize,
    /// Timed steps, after `warmup` untimed ones.
    pub steps: usize,
    pub warmup: usize,
    pub seed: u64,
    pub lr: f64,
}

/// What happened: the loss of every step (warm-up first) and the timed
/// steps' speed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StepsReport {
    pub losses: Vec<f32>,
    pub images_per_s: f64,
    pub seconds: f64,
}

/// Batch `i` of the stream for `seed`: images drawn N(0, 1) (normalised
/// pixels) with a per-class offset pattern, so the classes are learnable,
/// and their multi-label targets.
pub fn batch(seed: u64, i: usize, n: usize, size: usize, classes: usize) -> Batch {
    let mut rng = Rng::new(seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let plane = size * size;
    let mut images = vec![0f32; n * 3 * plane];
    let mut targets = vec![0f32; n * classes];
    for k in 0..n {
        let img = &mut images[k * 3 * plane..(k + 1) * 3 * plane];
        for v in img.iter_mut() {
            *v = rng.normal();
        }
        for c in 0..classes {
            if rng.uniform() < 0.3 {
                targets[k * classes + c] = 1.0;
                // Class c brightens channel c % 3 in its band of rows.
                let ch = c % 3;
                let rows =
                    (c * size / classes)..((c + 1) * size / classes).max(c * size / classes + 1);
                for y in rows {
                    for x in 0..size {
                        img[ch * plane + y * size + x] += 1.5;
                    }
                }
            }
        }
    }
    Batch {
        images,
        shape: [n, 3, size, size],
        targets,
        negatives: None,
    }
}

/// Trains `net` for `warmup + steps` steps of [`batch`]es; returns the net
/// and the report (images/s over the timed steps).
pub fn run(net: Net, cfg: &StepsConfig) -> (Net, StepsReport) {
    let classes = net.classes();
    let mut t = Trainer::new(
        net,
        Loss::WeightedBce {
            fn_weight: vec![1.0; classes],
        },
        1e-4,
    );
    let mut losses = vec![];
    let mut started = Instant::now();
    for i in 0..cfg.warmup + cfg.steps {
        if i == cfg.warmup {
            started = Instant::now();
        }
        let b = batch(cfg.seed, i, cfg.batch, cfg.size, classes);
        losses.push(t.step(&b, cfg.lr));
    }
    let seconds = started.elapsed().as_secs_f64();
    let report = StepsReport {
        losses,
        images_per_s: (cfg.steps * cfg.batch) as f64 / seconds.max(1e-9),
        seconds,
    };
    (t.into_net(), report)
}

/// Probabilities of `net` on batch 0 of the stream (a fixed check batch).
pub fn check_predictions(net: &Net, cfg: &StepsConfig) -> Vec<f32> {
    let b = batch(cfg.seed, 0, cfg.batch, cfg.size, net.classes());
    predict(
        net,
        &Loss::WeightedBce {
            fn_weight: vec![1.0; net.classes()],
        },
        &b.images,
        b.shape,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::{Arch, Family};

    #[test]
    fn the_stream_is_a_function_of_the_seed_and_the_loss_falls() {
        let a = batch(3, 1, 2, 8, 4);
        let b = batch(3, 1, 2, 8, 4);
        assert_eq!(a.images, b.images);
        assert_ne!(batch(4, 1, 2, 8, 4).images, a.images);
        let cfg = StepsConfig {
            batch: 8,
            size: 32,
            steps: 12,
            warmup: 0,
            seed: 1,
            lr: 3e-3,
        };
        let net = Net::seeded(Arch::tiny(Family::Resnet50), 4, 1);
        let (net, r) = run(net, &cfg);
        assert_eq!(r.losses.len(), 12);
        let first: f32 = r.losses[..3].iter().sum();
        let last: f32 = r.losses[9..].iter().sum();
        assert!(last < first, "{:?}", r.losses);
        assert_eq!(check_predictions(&net, &cfg).len(), 8 * 4);
    }
}
