//! Trainer commands. Without the `train` feature (the appliance build) they
//! say how to get them.

use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct FashionMnistArgs {
    /// Folder with train-/t10k- images-idx3-ubyte.gz and labels-idx1-ubyte.gz.
    #[arg(long, default_value = "/usr/share/datasets/fashion-mnist")]
    pub data: PathBuf,
    /// Training time budget; the learning-rate schedule is fitted to it.
    #[arg(long, default_value_t = 30.0)]
    pub minutes: f64,
    /// Upper bound on epochs (the budget usually ends training first).
    #[arg(long, default_value_t = 15)]
    pub epochs: usize,
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// Peak learning rate (AdamW, warm-up then cosine).
    #[arg(long, default_value_t = 2e-3)]
    pub lr: f64,
    /// Half-width network (16/32 channels): quicker, less accurate.
    #[arg(long)]
    pub tiny: bool,
    /// Train on the first N images only (a quick check).
    #[arg(long)]
    pub limit: Option<usize>,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

#[cfg(feature = "train")]
pub fn bench_fashion_mnist(a: &FashionMnistArgs) -> Result<()> {
    use stylecam::train::fashion_mnist::{bench, BenchConfig};
    let cfg = BenchConfig {
        data: a.data.clone(),
        budget: std::time::Duration::from_secs_f64(a.minutes * 60.0),
        epochs: a.epochs,
        batch_size: a.batch_size,
        lr: a.lr,
        tiny: a.tiny,
        seed: a.seed,
        limit: a.limit,
    };
    let r = bench(&cfg)?;
    println!(
        "fashion-mnist: test accuracy {:.4} after {:.1} epochs ({} steps) in {:.1} min of training, {:.0} images/s on {} threads",
        r.accuracy,
        r.epochs_run,
        r.steps,
        r.train_time.as_secs_f64() / 60.0,
        r.images_per_s,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    );
    println!(
        "references: 2-conv CNN 0.916–0.925, ResNet18 0.949, WRN-28-10 + random erasing 0.963"
    );
    Ok(())
}

#[cfg(not(feature = "train"))]
pub fn bench_fashion_mnist(_: &FashionMnistArgs) -> Result<()> {
    anyhow::bail!("this stylecam was built without the trainer: rebuild with `cargo build --release --features train` (the trainer is off by default; the appliance build leaves it out)")
}

#[derive(Args)]
pub struct TrainArgs {
    /// Training config (TOML): [data] images, labels; [train] backbones,
    /// epochs, …; [output] dir. Relative paths are relative to the file.
    #[arg(long, short)]
    pub config: PathBuf,
    /// Start each backbone's features from this checkpoint (.bpk), e.g. one
    /// pretrained on an auxiliary attribute set; overrides train.init_from.
    #[arg(long)]
    pub init_from: Option<PathBuf>,
}

#[derive(Args)]
pub struct ExportArgs {
    /// The checkpoint's .bpk (its .json sidecar sits beside it).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Where to write the ONNX model.
    #[arg(long)]
    pub out: PathBuf,
    /// Output raw logits instead of sigmoid probabilities.
    #[arg(long)]
    pub logits: bool,
}

#[cfg(feature = "train")]
pub fn train(a: &TrainArgs) -> Result<()> {
    use stylecam::train::run::{train, TrainConfig};
    let mut cfg = TrainConfig::load(&a.config)?;
    if let Some(p) = &a.init_from {
        cfg.train.init_from = Some(p.clone());
    }
    let out = train(&cfg, |line| log::info!("{line}"))?;
    println!("{}", out.tune_table);
    println!(
        "bundle written to {} ({} images skipped); point model.bundle at it",
        out.bundle.display(),
        out.skipped
    );
    Ok(())
}

#[cfg(feature = "train")]
pub fn export(a: &ExportArgs) -> Result<()> {
    use stylecam::train::checkpoint;
    use stylecam::train::export::{export_one, Output};
    let (net, meta) = checkpoint::load(&a.checkpoint)?;
    let output = if a.logits {
        Output::Logits
    } else {
        Output::Sigmoid
    };
    let onnx = export_one(&net, output);
    std::fs::write(&a.out, &onnx)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", a.out.display()))?;
    println!(
        "{}: {} (epoch {}) → {} ({} KiB)",
        a.checkpoint.display(),
        meta.arch,
        meta.epoch,
        a.out.display(),
        onnx.len() / 1024
    );
    Ok(())
}

#[cfg(not(feature = "train"))]
pub fn train(_: &TrainArgs) -> Result<()> {
    anyhow::bail!("this stylecam was built without the trainer: rebuild with `cargo build --release --features train` (the trainer is off by default; the appliance build leaves it out)")
}

#[cfg(not(feature = "train"))]
pub fn export(_: &ExportArgs) -> Result<()> {
    anyhow::bail!("this stylecam was built without the trainer: rebuild with `cargo build --release --features train` (the trainer is off by default; the appliance build leaves it out)")
}
