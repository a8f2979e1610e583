//! `stylecam bench fashion-mnist`: trains the small CNN on Fashion-MNIST
//! (Xiao et al. 2017: 60,000 + 10,000 real garment photos, 28×28 grey, MIT;
//! Debian's `dataset-fashion-mnist`) on the CPU within a time budget and
//! reports test accuracy. Published references: 2-conv CNN 0.916–0.925,
//! ResNet18 0.949, WRN-28-10 + random erasing 0.963.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use super::augment::Augment;
use super::backbones::{Arch, Family, Net};
use super::fit::{lr_at, Batch, Loss, Trainer};
use crate::rng::Rng;

pub const DEFAULT_DIR: &str = "/usr/share/datasets/fashion-mnist";
const MEAN: f32 = 0.2860;
const STD: f32 = 0.3530;

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: {reason} (install Debian's dataset-fashion-mnist, or pass --data DIR with the four *-idx*-ubyte.gz files)")]
    Bad { path: String, reason: String },
}

/// Images (u8, 28×28 each) and labels (0..10).
pub struct Split {
    pub images: Vec<u8>,
    pub labels: Vec<u8>,
}

impl Split {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

fn read_gz(path: &Path) -> Result<Vec<u8>, DataError> {
    let bad = |reason: String| DataError::Bad {
        path: path.display().to_string(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(|e| bad(e.to_string()))?;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(file)
        .read_to_end(&mut out)
        .map_err(|e| bad(format!("not a gzip file: {e}")))?;
    Ok(out)
}

fn be32(b: &[u8], at: usize) -> usize {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as usize
}

/// Reads `{prefix}-images-idx3-ubyte.gz` and `{prefix}-labels-idx1-ubyte.gz`.
pub fn load(dir: &Path, prefix: &str) -> Result<Split, DataError> {
    let ip: PathBuf = dir.join(format!("{prefix}-images-idx3-ubyte.gz"));
    let lp: PathBuf = dir.join(format!("{prefix}-labels-idx1-ubyte.gz"));
    let (images, labels) = (read_gz(&ip)?, read_gz(&lp)?);
    let bad = |p: &Path, reason: &str| DataError::Bad {
        path: p.display().to_string(),
        reason: reason.into(),
    };
    if images.len() < 16 || be32(&images, 0) != 2051 {
        return Err(bad(&ip, "not an idx3 image file (magic 2051)"));
    }
    if labels.len() < 8 || be32(&labels, 0) != 2049 {
        return Err(bad(&lp, "not an idx1 label file (magic 2049)"));
    }
    let (n, rows, cols) = (be32(&images, 4), be32(&images, 8), be32(&images, 12));
    if rows != 28 || cols != 28 || images.len() != 16 + n * 784 {
        return Err(bad(&ip, "expected n×28×28 images"));
    }
    if be32(&labels, 4) != n || labels.len() != 8 + n || labels[8..].iter().any(|&l| l > 9) {
        return Err(bad(
            &lp,
            "label count or values (0..9) do not match the images",
        ));
    }
    Ok(Split {
        images: images[16..].to_vec(),
        labels: labels[8..].to_vec(),
    })
}

/// Normalised 3×28×28 images (grey replicated) and one-hot targets.
fn batch(split: &Split, idx: &[usize], aug: &Augment, rng: &mut Rng) -> Batch {
    let n = idx.len();
    let mut images = Vec::with_capacity(n * 3 * 784);
    let mut targets = vec![0.0; n * 10];
    let mut grey = vec![0.0f32; 784];
    for (k, &i) in idx.iter().enumerate() {
        for (g, &p) in grey.iter_mut().zip(&split.images[i * 784..(i + 1) * 784]) {
            *g = (p as f32 / 255.0 - MEAN) / STD;
        }
        aug.apply(&mut grey, 1, 28, 28, rng);
        for _ in 0..3 {
            images.extend_from_slice(&grey);
        }
        targets[k * 10 + split.labels[i] as usize] = 1.0;
    }
    Batch {
        images,
        shape: [n, 3, 28, 28],
        targets,
        negatives: None,
    }
}

/// Accuracy of `net` on a split.
pub fn accuracy(net: &Net, split: &Split) -> f64 {
    let mut rng = Rng::new(0);
    let mut correct = 0;
    let idx: Vec<usize> = (0..split.len()).collect();
    for chunk in idx.chunks(500) {
        let b = batch(split, chunk, &Augment::NONE, &mut rng);
        let p = super::fit::predict(net, &Loss::Softmax, &b.images, b.shape);
        for (k, &i) in chunk.iter().enumerate() {
            let row = &p[k * 10..(k + 1) * 10];
            let best = (0..10)
                .max_by(|&a, &b| row[a].total_cmp(&row[b]))
                .unwrap_or(0);
            correct += usize::from(best == split.labels[i] as usize);
        }
    }
    correct as f64 / split.len() as f64
}

pub struct BenchConfig {
    pub data: PathBuf,
    pub budget: Duration,
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub tiny: bool,
    pub seed: u64,
    /// Use only the first N training images (quick checks).
    pub limit: Option<usize>,
}

pub struct BenchReport {
    pub accuracy: f64,
    pub train_time: Duration,
    pub epochs_run: f64,
    pub images_per_s: f64,
    pub steps: usize,
}

/// Trains and evaluates; the schedule is sized to the time budget after
/// timing the first steps.
pub fn bench(cfg: &BenchConfig) -> Result<BenchReport, DataError> {
    let mut train = load(&cfg.data, "train")?;
    let test = load(&cfg.data, "t10k")?;
    if let Some(n) = cfg.limit {
        train.images.truncate(n * 784);
        train.labels.truncate(n);
    }
    let arch = Arch {
        family: Family::SmallCnn,
        tiny: cfg.tiny,
    };
    let net = Net::seeded(arch, 10, cfg.seed);
    let mut trainer = Trainer::new(net, Loss::Softmax, 5e-4);
    let aug = Augment {
        flip: true,
        translate: 2,
        ..Augment::NONE
    };
    let per_epoch = train.len().div_ceil(cfg.batch_size);
    let mut total = per_epoch * cfg.epochs;
    let warmup = (per_epoch / 4).clamp(1, 300);
    let mut rng = Rng::new(cfg.seed);
    let start = Instant::now();
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} train [{elapsed_precise}] {bar:30} {pos}/{len} steps {msg} ETA {eta}",
        )
        .expect("template"),
    );
    let mut seen = 0usize;
    let mut ema_loss = f32::NAN;
    'outer: for epoch in 0.. {
        if epoch > 0 {
            log::info!(
                "epoch {epoch} done: step {}/{total}, loss {ema_loss:.3}, {:.0} images/s, {:.1} min",
                trainer.step,
                seen as f64 / start.elapsed().as_secs_f64(),
                start.elapsed().as_secs_f64() / 60.0
            );
        }
        let mut order: Vec<usize> = (0..train.len()).collect();
        super::sampler::shuffle(&mut order, &mut rng);
        for chunk in order.chunks(cfg.batch_size) {
            if trainer.step >= total {
                break 'outer;
            }
            let b = batch(&train, chunk, &aug, &mut rng);
            let loss = trainer.step(&b, lr_at(trainer.step, total, cfg.lr, warmup));
            seen += chunk.len();
            ema_loss = if ema_loss.is_nan() {
                loss
            } else {
                0.98 * ema_loss + 0.02 * loss
            };
            // Fit the schedule to the budget from the speed so far (the
            // machine may be shared), re-checked every 50 steps.
            if trainer.step % 50 == 30 {
                let per_step = start.elapsed().as_secs_f64() / trainer.step as f64;
                let fits = (cfg.budget.as_secs_f64() * 0.97 / per_step) as usize;
                total = total.min(fits.max(trainer.step + 1));
                bar.set_length(total as u64);
            }
            let ips = seen as f64 / start.elapsed().as_secs_f64();
            bar.set_position(trainer.step as u64);
            bar.set_message(format!(
                "epoch {} loss {ema_loss:.3} {ips:.0} img/s",
                epoch + 1
            ));
        }
    }
    bar.finish();
    let train_time = start.elapsed();
    let net = trainer.into_net();
    let accuracy = accuracy(&net, &test);
    Ok(BenchReport {
        accuracy,
        train_time,
        epochs_run: seen as f64 / train.len() as f64,
        images_per_s: seen as f64 / train_time.as_secs_f64(),
        steps: total,
    })
}
