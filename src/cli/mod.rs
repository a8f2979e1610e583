//! Subcommand implementations: the CLI edge, where errors become
//! `anyhow` with context.

pub mod bundle;
pub mod calibrate;
mod demo;
pub mod detector;
pub mod gpu_check;
pub mod people_bench;
pub mod precision;
pub mod soak;
pub mod train;

pub use demo::demo;

use anyhow::{bail, Context, Result};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use stylecam::bundle::Bundle;
use stylecam::config::{self, Validated};
use stylecam::daemon;
use stylecam::styles::labels::Rows;
use stylecam::styles::{
    metrics as f2, search, DecisionParams, LabelTable, RelationMatrix, TableKind,
};
use stylecam::telemetry::Metrics;

fn load_bundle(cfg: &Validated) -> Result<Bundle> {
    Bundle::load(&cfg.model.bundle).context("config key `model.bundle`")
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// Everything before the first frame: config, bundle, backend, cameras,
/// embedded broker. Any failure here exits before a camera streams. With
/// `config_path`, SIGHUP re-reads it (and the bundle) and rebuilds the
/// pipeline; the demo passes none.
pub(crate) fn start(
    cfg: Validated,
    config_path: Option<&Path>,
    deadline: Option<Duration>,
) -> Result<()> {
    let parts = daemon::Parts::open(cfg.clone())?;
    log::info!(
        "model {} {} ({} classes) on the {} backend",
        parts.bundle.manifest.name,
        parts.bundle.manifest.version,
        parts.bundle.manifest.classes.len(),
        parts.backend.name()
    );
    let rt = runtime()?;
    if cfg.mqtt.embedded {
        start_embedded_broker(&cfg)?;
    }
    let metrics = Arc::new(Metrics::default());
    let snapshot = rt.block_on(async {
        let stop = async {
            match deadline {
                Some(d) => {
                    tokio::select! { _ = shutdown_signal() => {}, _ = tokio::time::sleep(d) => {} }
                }
                None => shutdown_signal().await,
            }
        };
        let reloads = config_path.map(|p| reload_on_sighup(p.to_path_buf()));
        daemon::run(parts, metrics, stop, reloads).await
    })?;
    log::info!("stopped. {snapshot}");
    Ok(())
}

/// SIGHUP → a reload request; the loader reads `path` and opens its parts.
fn reload_on_sighup(path: std::path::PathBuf) -> daemon::Reloads {
    let (tx, requests) = tokio::sync::mpsc::unbounded_channel();
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            log::warn!("cannot install the SIGHUP handler: reloads need a restart");
            return;
        };
        while hup.recv().await.is_some() {
            if tx.send(()).is_err() {
                break;
            }
        }
    });
    let check_path = path.clone();
    let check: daemon::http::Checker =
        Arc::new(move || check_config_summary(&check_path).map_err(|e| format!("{e:#}")));
    // The check reads the config file, the bundle and the engine cache.
    let fingerprint_path = path.clone();
    // The folders are parsed out of the config once per version of its
    // text, not on every request.
    let folders_of = std::sync::Mutex::new((String::new(), Vec::new()));
    let fingerprint: daemon::http::check::Fingerprint = Arc::new(move || {
        let text = std::fs::read_to_string(&fingerprint_path).unwrap_or_default();
        let mut kept = folders_of.lock().unwrap_or_else(|p| p.into_inner());
        if kept.0 != text || kept.1.is_empty() {
            let folders = config::load(Some(&fingerprint_path))
                .map(|c| vec![c.model.bundle, c.model.engines])
                .unwrap_or_default();
            *kept = (text, folders);
        }
        daemon::http::check::fingerprint_of(&fingerprint_path, &kept.1)
    });
    let load_path = path.clone();
    let load: daemon::Loader = Arc::new(move || {
        let cfg = config::load_validated(Some(&load_path)).map_err(|e| e.to_string())?;
        daemon::Parts::open(cfg).map_err(|e| e.to_string())
    });
    daemon::Reloads {
        requests,
        load,
        check,
        fingerprint,
        config_path: std::path::absolute(&path).unwrap_or(path),
    }
}

#[cfg(feature = "embedded-broker")]
pub(crate) fn start_embedded_broker(cfg: &Validated) -> Result<()> {
    stylecam::publish::broker::start(&cfg.mqtt.host, cfg.mqtt.port, cfg.mqtt.max_packet_bytes)?;
    Ok(())
}

#[cfg(not(feature = "embedded-broker"))]
pub(crate) fn start_embedded_broker(_cfg: &Validated) -> Result<()> {
    bail!("config key `mqtt.embedded` = true, but this binary was built without the `embedded-broker` feature. Fix: set mqtt.embedded = false and point mqtt.host/mqtt.port at a broker")
}

pub fn run(config_path: Option<&Path>) -> Result<()> {
    let cfg = config::load_validated(config_path)?;
    start(cfg, config_path, None)
}

pub fn check_config(file: &Path) -> Result<()> {
    println!("{}", check_config_summary(file)?);
    Ok(())
}

/// `check-config`'s verdict: the summary line when the file passes.
pub fn check_config_summary(file: &Path) -> Result<String> {
    let cfg = config::load_validated(Some(file))?;
    let bundle = load_bundle(&cfg)?;
    // The secrets' files: readable, and a token the listener can match.
    daemon::http_token(&cfg)?;
    daemon::credentials(&cfg)?;
    for (i, c) in cfg.cameras.iter().enumerate() {
        if c.analysis.analyze == stylecam::config::AnalyzeMode::People {
            if let Some(problem) = stylecam::daemon::pipeline::people_problem(&bundle) {
                anyhow::bail!("config key `cameras[{i}].analyze` = \"people\": {problem}");
            }
        }
    }
    let opts = stylecam::infer::Options::from_config(&cfg.model);
    if cfg.model.backend == stylecam::config::BackendKind::Tensorrt {
        // The engine cache first: a stale engine is named (with the
        // rebuild command) even on a machine whose GPU is elsewhere.
        let people = cfg
            .cameras
            .iter()
            .any(|c| c.analysis.analyze == stylecam::config::AnalyzeMode::People);
        stylecam::infer::tensorrt::check_cached(&bundle, &opts, Some(file), people)
            .context("config key `model.backend` = \"tensorrt\"")?;
    }
    let backend = stylecam::infer::probe(&opts).with_context(|| {
        format!(
            "config key `model.backend` = {:?}",
            cfg.model.backend.as_str()
        )
    })?;
    let cuda = || {
        stylecam::preprocess::open_cuda(
            &bundle.manifest.input,
            &stylecam::preprocess::CudaOptions::from_config(&cfg.pipeline),
        )
    };
    if cfg.pipeline.preprocess == stylecam::config::PreprocessKind::Cuda {
        cuda().map_err(|e| anyhow::anyhow!("config key `pipeline.preprocess` = \"cuda\": {e}"))?;
    }
    // Only TensorRT takes its input on the GPU; `auto` preprocesses with
    // CUDA there when CUDA opens.
    let device_input = backend.starts_with("tensorrt")
        || cfg.model.backend == stylecam::config::BackendKind::Tensorrt;
    let gpu_preprocessor = match cfg.pipeline.preprocess {
        stylecam::config::PreprocessKind::Cuda => true,
        stylecam::config::PreprocessKind::Auto => device_input && cuda().is_ok(),
        stylecam::config::PreprocessKind::Cpu => false,
    };
    if let Some(problem) = stylecam::preprocess::placement_problem(
        cfg.pipeline.preprocess_on,
        device_input,
        gpu_preprocessor,
    ) {
        anyhow::bail!(problem);
    }
    Ok(format!(
        "{}: OK ({} camera(s); bundle {} {} with {} classes; backend {backend}; preprocess {}; MQTT {}:{}{})",
        file.display(),
        cfg.cameras.len(),
        bundle.manifest.name,
        bundle.manifest.version,
        bundle.manifest.classes.len(),
        cfg.pipeline.preprocess.as_str(),
        cfg.mqtt.host,
        cfg.mqtt.port,
        if cfg.mqtt.embedded {
            ", embedded broker"
        } else {
            ""
        }
    ))
}

/// `stylecam build-engine`'s options besides the config.
#[derive(Debug, clap::Args)]
pub struct EngineArgs {
    /// Build this ONNX graph instead of the config's bundle (checks that
    /// TensorRT's parser takes a graph; implies a TensorRT build).
    #[arg(long)]
    pub onnx: Option<std::path::PathBuf>,
    /// Engine precision [default: model.precision].
    #[arg(long, value_enum)]
    pub precision: Option<config::Precision>,
    /// Largest batch of the engine's profile [default: model.max_batch].
    #[arg(long)]
    pub max_batch: Option<usize>,
    /// Builder workspace in MiB (0 = TensorRT's default).
    #[arg(long, default_value_t = 0)]
    pub workspace_mib: u64,
    /// Ahead-of-time target for TensorRT-RTX: `sm86`, `8.6` or `86`
    /// (7.5, 8.0, 8.6, 8.9, 12.0, 12.1); default: the GPU here.
    #[arg(long)]
    pub target: Option<String>,
    /// Engine cache folder [default: model.engines].
    #[arg(long)]
    pub engines: Option<std::path::PathBuf>,
    /// Rebuild even where the cache has the engine.
    #[arg(long)]
    pub force: bool,
}

/// `--target`: `sm86`, `8.6` or `86` → 86.
fn parse_target(t: &str) -> Result<u32> {
    let s = t
        .trim()
        .trim_start_matches("sm")
        .trim_start_matches("SM")
        .trim_start_matches('_');
    let n = match s.split_once('.') {
        Some((a, b)) => format!("{a}{b}"),
        None => s.to_string(),
    };
    n.parse::<u32>()
        .ok()
        .filter(|&v| (50..=200).contains(&v))
        .with_context(|| {
            format!("--target {t:?}: give a compute capability such as sm86, 8.6 or 86")
        })
}

/// `stylecam build-engine`: builds the bundle's TensorRT engine where the
/// config runs, or may run, TensorRT (what stylecam-engine.service runs
/// before the daemon), or the graph and target given on the command line.
/// Where the bundle runs on another backend, or `auto` finds no TensorRT,
/// it says why no engine is needed and succeeds, so the unit is harmless
/// on a box without a GPU.
pub fn build_engine(file: Option<&Path>, args: &EngineArgs) -> Result<()> {
    use stylecam::config::BackendKind;
    use stylecam::infer::tensorrt::{self, BuildRequest, Cache};
    let cfg = config::load_validated(file)?;
    let mut opts = stylecam::infer::Options::from_config(&cfg.model);
    if let Some(e) = &args.engines {
        opts.engines = e.clone();
    }
    let key = || {
        format!(
            "config key `model.backend` = {:?}",
            cfg.model.backend.as_str()
        )
    };
    let explicit = args.onnx.is_some() || args.target.is_some();
    if !explicit {
        match cfg.model.backend {
            BackendKind::Cpu | BackendKind::Onnxruntime => {
                println!(
                    "{}: the bundle runs without a TensorRT engine; nothing to build",
                    key()
                );
                return Ok(());
            }
            BackendKind::Auto => {
                if let Err(e) = tensorrt::probe(&opts) {
                    println!(
                        "{}: TensorRT is not usable here ({e}); the daemon runs onnxruntime or cpu, so there is nothing to build",
                        key()
                    );
                    return Ok(());
                }
            }
            BackendKind::Tensorrt => {}
        }
    }
    let precision = args.precision.unwrap_or(cfg.model.precision);
    // A bundle's [detector] gets an engine of its own (batch 1; INT8
    // scales cover the classifier only, so an INT8 request builds it FP16).
    let mut detector = None;
    let (onnx, source) = match &args.onnx {
        Some(p) => (
            p.clone(),
            p.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "engine".into()),
        ),
        None => {
            let bundle = load_bundle(&cfg)?;
            detector = bundle.manifest.detector.as_ref().map(|d| {
                (
                    bundle.dir.join(&d.onnx),
                    tensorrt::detector_source(&bundle.manifest.name),
                )
            });
            (tensorrt::graph_for(&bundle), bundle.manifest.name.clone())
        }
    };
    let req = BuildRequest {
        onnx,
        source,
        precision,
        max_batch: args.max_batch.unwrap_or(cfg.model.max_batch),
        workspace_mib: args.workspace_mib,
        target_sm: args.target.as_deref().map(parse_target).transpose()?,
        cache: Cache::new(&opts.engines),
        calibration: cfg.model.calibration.clone(),
        config: file.map(Path::to_path_buf),
        force: args.force,
    };
    let mut requests = vec![];
    if let Some((onnx, source)) = detector {
        requests.push(BuildRequest {
            onnx,
            source,
            precision: tensorrt::detector_precision(precision),
            max_batch: 1,
            workspace_mib: req.workspace_mib,
            target_sm: req.target_sm,
            cache: Cache::new(&opts.engines),
            calibration: req.calibration.clone(),
            config: req.config.clone(),
            force: req.force,
        });
    }
    requests.insert(0, req);
    for req in &requests {
        let built = {
            #[cfg(feature = "tensorrt")]
            {
                let mut progress = engine_progress::Bar::new(&req.source);
                let r = tensorrt::build_engine(&opts, req, &mut progress);
                progress.done();
                r
            }
            #[cfg(not(feature = "tensorrt"))]
            {
                tensorrt::build_engine(&opts, req, &mut tensorrt::Quiet)
            }
        };
        let built = if explicit {
            built?
        } else {
            built.with_context(key)?
        };
        print_built(&built);
    }
    Ok(())
}

fn print_built(built: &stylecam::infer::tensorrt::Built) {
    let e = &built.entry;
    println!(
        "{} {}: {} ({:.1} MB{}) — {} {}, compute capability {} ({}), {}, batch 1..={}",
        if built.cached { "cached" } else { "built" },
        e.source,
        built.path.display(),
        e.bytes as f64 / 1e6,
        if built.cached {
            String::new()
        } else {
            format!(", {:.2} s", e.build_seconds)
        },
        e.key.runtime.flavour,
        e.key.runtime.version,
        e.key.target.compute_capability,
        if e.key.target.gpu == "any" {
            "ahead of time, any GPU of it".to_string()
        } else {
            e.key.target.gpu.clone()
        },
        e.key.precision.as_str(),
        e.key.max_batch
    );
}

/// The engine build's progress bar: TensorRT's nested phases, the
/// innermost one's steps counted.
#[cfg(feature = "tensorrt")]
mod engine_progress {
    use indicatif::{ProgressBar, ProgressStyle};
    use stylecam::infer::tensorrt::Progress;

    pub struct Bar {
        bar: ProgressBar,
        phases: Vec<(String, usize)>,
    }

    impl Bar {
        pub fn new(what: &str) -> Self {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}")
                    .expect("a valid template"),
            );
            bar.set_message(format!("building the TensorRT engine for {what}"));
            bar.enable_steady_tick(std::time::Duration::from_millis(200));
            Self {
                bar,
                phases: vec![],
            }
        }

        fn show(&self, step: usize) {
            if let Some((_, steps)) = self.phases.last() {
                let path: Vec<&str> = self.phases.iter().map(|(n, _)| n.as_str()).collect();
                self.bar
                    .set_message(format!("{} [{step}/{steps}]", path.join(" › ")));
            }
        }

        pub fn done(&self) {
            self.bar.finish_and_clear();
        }
    }

    impl Progress for Bar {
        fn phase_start(&mut self, name: &str, _parent: Option<&str>, steps: usize) {
            self.phases.push((name.to_string(), steps));
            self.show(0);
        }
        fn step(&mut self, name: &str, step: usize) {
            if self.phases.last().is_some_and(|(n, _)| n == name) {
                self.show(step + 1);
            }
        }
        fn phase_finish(&mut self, name: &str) {
            if let Some(i) = self.phases.iter().rposition(|(n, _)| n == name) {
                self.phases.truncate(i);
            }
            self.show(0);
        }
    }
}

fn read_pair(
    preds: &Path,
    labels: &Path,
    bundle: Option<&Bundle>,
) -> Result<(Rows, Rows, LabelTable)> {
    let taxonomy = bundle
        .map(|b| b.manifest.classes.clone())
        .unwrap_or_else(stylecam::styles::Taxonomy::jd2018);
    let p = LabelTable::read(preds, &taxonomy, TableKind::Predictions)?;
    let l = LabelTable::read(labels, &taxonomy, TableKind::Labels)?;
    let (pr, lb) = p.join(&l)?;
    Ok((pr, lb, l))
}

pub fn tune(
    preds: &Path,
    labels: &Path,
    bundle_dir: &Path,
    relation_labels: Option<&Path>,
    dry_run: bool,
) -> Result<()> {
    let mut bundle = Bundle::load(bundle_dir)?;
    let (p, l, label_table) = read_pair(preds, labels, Some(&bundle))?;
    let c = bundle.manifest.classes.len();
    let relation_rows = match relation_labels {
        Some(path) => LabelTable::read(path, &bundle.manifest.classes, TableKind::Labels)?.rows,
        None => label_table.rows,
    };
    let r = RelationMatrix::from_labels(relation_rows.iter().map(Vec::as_slice), c);
    eprintln!("tuning on {} validation images, {} classes…", p.len(), c);
    let report = search::tune(&p, &l, r);
    print!("{}", report.table());
    let best = report.best();
    println!("best: {} (macro F2 {:.4})", best.name, best.macro_f2);
    if dry_run {
        println!(
            "--dry-run: {} not changed",
            bundle_dir.join("bundle.toml").display()
        );
    } else {
        bundle.write_decision(best.params.clone())?;
        println!(
            "wrote [decision] to {}",
            bundle_dir.join("bundle.toml").display()
        );
    }
    Ok(())
}

pub fn eval(preds: &Path, labels: &Path, bundle_dir: Option<&Path>) -> Result<()> {
    let bundle = bundle_dir.map(Bundle::load).transpose()?;
    let (p, l, _) = read_pair(preds, labels, bundle.as_ref())?;
    let taxonomy = bundle
        .as_ref()
        .map(|b| b.manifest.classes.clone())
        .unwrap_or_else(stylecam::styles::Taxonomy::jd2018);
    let decision = bundle
        .as_ref()
        .map(Bundle::decision)
        .unwrap_or_else(|| DecisionParams::untuned(taxonomy.len()));
    if decision.classes() != taxonomy.len() {
        bail!(
            "the bundle's decision has {} classes, the taxonomy {}",
            decision.classes(),
            taxonomy.len()
        );
    }
    let predicted: Vec<Vec<usize>> = p.iter().map(|row| decision.decide(row).labels).collect();
    let per_class = f2::per_class_f2(&predicted, &l, taxonomy.len());
    println!("{:<14} {:>9} {:>7}", "class", "positives", "F2");
    for (a, class) in taxonomy.0.iter().enumerate() {
        let pos = l.iter().filter(|r| r[a] >= 0.5).count();
        println!("{:<14} {:>9} {:>7.4}", class.id, pos, per_class[a]);
    }
    println!(
        "macro F2 (challenge score): {:.4}",
        f2::macro_f2(&predicted, &l, taxonomy.len())
    );
    println!(
        "per-sample F2:              {:.4}",
        f2::per_sample_f2(&predicted, &l)
    );
    println!("images: {}", p.len());
    Ok(())
}

/// `stylecam cameras`: every V4L2 capture node under `dev`, described.
pub fn cameras(dev: &Path) -> Result<()> {
    use stylecam::capture::v4l2::{self, sys};
    let nodes = v4l2::list(dev).with_context(|| format!("reading {}", dev.display()))?;
    if nodes.is_empty() {
        println!(
            "no V4L2 devices found under {} (no {}/video* capture node). Plug a camera in, or check that its driver (uvcvideo) is loaded.",
            dev.display(),
            dev.display()
        );
        return Ok(());
    }
    for node in nodes {
        let l = match node {
            Ok(l) => l,
            Err((path, why)) => {
                println!("{}: {why}\n", path.display());
                continue;
            }
        };
        let id = &l.identity;
        println!(
            "{}: {} (driver {}, bus {})",
            l.path.display(),
            id.card,
            id.driver,
            id.bus
        );
        for s in &l.stable {
            println!("  also: {}", s.display());
        }
        for f in &l.formats {
            println!("  {} ({}):", sys::fourcc_str(f.fourcc), f.description);
            for z in &f.sizes {
                let rates: Vec<String> = z
                    .fps
                    .iter()
                    .map(|r| format!("{}", (r * 100.0).round() / 100.0))
                    .collect();
                let rates = if rates.is_empty() {
                    "rate not listed".to_string()
                } else {
                    format!("{} fps", rates.join(", "))
                };
                println!("    {}x{}: {rates}", z.width, z.height);
            }
        }
        println!("  config:");
        for line in v4l2::snippet(&l).lines() {
            println!("    {line}");
        }
        println!();
    }
    Ok(())
}
