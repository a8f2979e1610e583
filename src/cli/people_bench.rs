//! `stylecam bench people`: what classifying each tracked person when due
//! (instead of on every frame it is in) saves, and what it costs in
//! agreement, on real video.

use anyhow::{Context, Result};
use clap::Args;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;
use stylecam::bundle::Bundle;
use stylecam::config::{BackendKind, PeopleConfig};
use stylecam::detect::people::{crop, Schedule, Settling, Step, Summary};
use stylecam::detect::track::TrackId;
use stylecam::detect::Detector;
use stylecam::infer::{cpu::CpuBackend, Backend, Options};

#[derive(Args)]
pub struct PeopleBenchArgs {
    /// A bundle with a [detector] (tags come from its classifier).
    #[arg(long)]
    pub bundle: PathBuf,
    /// A folder of video frames (JPEG/PNG, in name order) at `--fps`.
    #[arg(long)]
    pub video: PathBuf,
    #[arg(long, default_value_t = 10.0)]
    pub fps: f64,
    /// Frames to use (0 = all).
    #[arg(long, default_value_t = 0)]
    pub frames: usize,
    /// Cores of the box the cameras share.
    #[arg(long, default_value_t = 2)]
    pub cores: usize,
    /// The when-due schedule: classify a confirmed person again after this
    /// long (`cameras.people.classify_every_ms`)...
    #[arg(long, default_value_t = PeopleConfig::default().classify_every_ms)]
    pub classify_every_ms: u64,
    /// ...up to this many times (`cameras.people.max_classifications`).
    #[arg(long, default_value_t = PeopleConfig::default().max_classifications)]
    pub max_classifications: u32,
    /// The when-due schedule: a person's tags are settled after this many
    /// unchanged decisions in a row (`cameras.people.settle_after`, 0 = off)...
    #[arg(long, default_value_t = PeopleConfig::default().settle_after)]
    pub settle_after: u32,
    /// ...and classified every this many ms until then
    /// (`cameras.people.settle_every_ms`).
    #[arg(long, default_value_t = PeopleConfig::default().settle_every_ms)]
    pub settle_every_ms: u64,
    /// Run the detector on every k-th frame only (`cameras.people.detect_every`;
    /// the tracker bridges the frames between), in both schedules.
    #[arg(long, default_value_t = 1)]
    pub detect_every: u32,
    /// Also time the paper-sized ensemble (ResNet50 224 + DenseNet121 224 +
    /// Inception-v4 299, random weights) per crop (needs `--features train`).
    #[arg(long)]
    pub ensemble: bool,
    /// For each person whose final tags differ between the schedules: the
    /// classes that differ, their adjusted scores both ways and the
    /// threshold they are held against.
    #[arg(long)]
    pub explain: bool,
}

/// Per schedule: per track (in order of confirmation), its classifications.
#[derive(Default)]
struct Views {
    order: Vec<TrackId>,
    probs: HashMap<TrackId, Vec<Vec<f32>>>,
    settling: HashMap<TrackId, Settling>,
}

impl Views {
    fn entered(&mut self, step: &Step) {
        self.order.extend(&step.entered);
    }
}

pub fn bench_people(a: &PeopleBenchArgs) -> Result<()> {
    let bundle = Bundle::load(&a.bundle).context("--bundle")?;
    let mut detector = Detector::open(&bundle, &Options::new(BackendKind::Cpu))?;
    let mut classifier = CpuBackend::open(&bundle)?;
    let spec = bundle.manifest.input.clone();
    let decision = bundle.decision();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&a.video)
        .with_context(|| format!("--video {}", a.video.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .is_some_and(|x| x == "jpg" || x == "png" || x == "jpeg")
        })
        .collect();
    files.sort();
    if a.frames > 0 {
        files.truncate(a.frames);
    }
    anyhow::ensure!(!files.is_empty(), "no frames in {}", a.video.display());
    let dt_ms = (1000.0 / a.fps) as u64;
    let due_cfg = PeopleConfig {
        classify_every_ms: a.classify_every_ms,
        max_classifications: a.max_classifications,
        settle_after: a.settle_after,
        settle_every_ms: a.settle_every_ms,
        detect_every: a.detect_every.max(1),
        ..PeopleConfig::default()
    };
    // Every frame a confirmed person is detected in (DeepStream without a
    // re-infer interval): always due, no cap.
    let every_cfg = PeopleConfig {
        classify_every_ms: 0,
        max_classifications: u32::MAX,
        max_crops_per_frame: u32::MAX,
        settle_after: 0,
        detect_every: a.detect_every.max(1),
        ..PeopleConfig::default()
    };
    let high = detector.spec().score_threshold;
    let (mut due, mut every) = (Schedule::new(due_cfg, high), Schedule::new(every_cfg, high));
    let (mut due_v, mut every_v) = (Views::default(), Views::default());
    let (mut detect_s, mut classify_s, mut classified) = (0.0, 0.0, 0usize);
    let mut detected = 0usize;
    let mut frame_s = 0.0;
    // The daemon's summary of a person's views; the mean beside it.
    let summary = |v: &[Vec<f32>]| Summary::Median.of(v);
    let bar = indicatif::ProgressBar::new(files.len() as u64);
    let mut input = vec![0f32; spec.len()];
    for path in &files {
        bar.inc(1);
        let frame =
            stylecam::capture::files::image_frame(path, "bench").map_err(|e| anyhow::anyhow!(e))?;
        let (rgb, w, h) = stylecam::preprocess::to_rgb8(&frame)?;
        // Frame mode's cost: the whole frame through the classifier.
        if frame.seq == 0 && frame_s == 0.0 {
            let t = Instant::now();
            stylecam::preprocess::preprocess_into(&frame, &spec, &mut input)?;
            classifier.infer(&input, 1)?;
            frame_s = t.elapsed().as_secs_f64();
        }
        let found = if every.detects_next() {
            let t = Instant::now();
            let found = detector.detect_down_to(&rgb, w, h, due.low_score())?;
            detect_s += t.elapsed().as_secs_f64();
            detected += 1;
            Some(found)
        } else {
            None
        };
        let se = every.step(found.as_deref(), w, h, dt_ms);
        let su = due.step(found.as_deref(), w, h, dt_ms);
        every_v.entered(&se);
        due_v.entered(&su);
        // Both schedules see the same detections, so their tracks are the
        // same, created in the same order: the k-th of one is the k-th of
        // the other. Each crop is classified once and shared.
        let mut this_frame: HashMap<usize, Vec<f32>> = HashMap::new();
        for (id, b) in &se.crops {
            let (c, cw, ch) = crop(&rgb, w, h, b);
            let f = stylecam::capture::Frame::still(
                "bench",
                stylecam::capture::PixelFormat::Rgb8,
                cw,
                ch,
                c,
            );
            let t = Instant::now();
            stylecam::preprocess::preprocess_into(&f, &spec, &mut input)?;
            let p = classifier.infer(&input, 1)?;
            classify_s += t.elapsed().as_secs_f64();
            classified += 1;
            let k = every_v
                .order
                .iter()
                .position(|x| x == id)
                .expect("a confirmed track");
            this_frame.insert(k, p.clone());
            every_v.probs.entry(*id).or_default().push(p);
        }
        for (id, _) in &su.crops {
            let k = due_v
                .order
                .iter()
                .position(|x| x == id)
                .expect("a confirmed track");
            let p = this_frame
                .get(&k)
                .context("a due crop that the every-frame schedule did not classify")?;
            let views = due_v.probs.entry(*id).or_default();
            views.push(p.clone());
            // What the daemon's inference thread tells the camera's schedule.
            let labels = decision.decide(&summary(views)).labels;
            if due_v
                .settling
                .entry(*id)
                .or_default()
                .observe(&labels, a.settle_after)
            {
                due.settled(*id);
            }
        }
    }
    bar.finish_and_clear();
    let seconds = files.len() as f64 / a.fps;
    let n_due: usize = due_v.probs.values().map(Vec::len).sum();
    let n_every: usize = every_v.probs.values().map(Vec::len).sum();
    let (mut people, mut agree) = (0, 0);
    // The same comparison with each person's views summarised by their
    // mean (the daemon's summary until 2026-12-05).
    let mut agree_mean = 0;
    for (k, id) in every_v.order.iter().enumerate() {
        let (Some(e), Some(d)) = (
            every_v.probs.get(id),
            due_v.order.get(k).and_then(|d| due_v.probs.get(d)),
        ) else {
            continue;
        };
        people += 1;
        let mean = |v: &[Vec<f32>]| Summary::Mean.of(v);
        if decision.decide(&mean(e)).labels == decision.decide(&mean(d)).labels {
            agree_mean += 1;
        }
        let (de, dd) = (decision.decide(&summary(e)), decision.decide(&summary(d)));
        if de.labels == dd.labels {
            agree += 1;
        } else if a.explain {
            let classes = &bundle.manifest.classes;
            let differ: Vec<String> = (0..classes.0.len())
                .filter(|c| de.labels.contains(c) != dd.labels.contains(c))
                .map(|c| {
                    format!(
                        "{} {:.4} (every frame) vs {:.4} (when due), threshold {:.4}",
                        classes.0[c].id,
                        de.adjusted[c],
                        dd.adjusted[c],
                        decision.second_thresholds[c]
                    )
                })
                .collect();
            println!(
                "person {k}: {} views vs {}: {}",
                e.len(),
                d.len(),
                differ.join("; ")
            );
        }
    }
    let det_ms = detect_s * 1000.0 / detected.max(1) as f64;
    // Detector runs per second of video.
    let det_rate = detected as f64 / seconds;
    let cls_ms = classify_s * 1000.0 / classified.max(1) as f64;
    let frame_ms = frame_s * 1000.0;
    println!(
        "# People mode on {} frames ({seconds:.0} s at {} fps) of {}: {people} people (tracks classified at least once); when due = at confirmation, then every {} ms ({} ms until {} decisions in a row agree) or a box grown 1.5×, at most {} times\n",
        files.len(),
        a.fps,
        a.video.display(),
        a.classify_every_ms,
        a.settle_every_ms,
        a.settle_after + 1,
        a.max_classifications
    );
    println!(
        "detector on every {} frame(s) ({detected} runs)\n",
        a.detect_every.max(1)
    );
    println!("detector {det_ms:.1} ms/frame (tract); classifier {} {cls_ms:.1} ms/crop (tract, batch 1); whole frame {frame_ms:.1} ms\n", bundle.manifest.name);
    println!(
        "classifications: every frame {n_every} ({:.1} per person, {:.1}/s), when due {n_due} ({:.1} per person, {:.1}/s); final tags (each person's views summarised by their per-class median, as the daemon does) agree for {agree}/{people} people ({:.1}%)\n",
        n_every as f64 / people.max(1) as f64,
        n_every as f64 / seconds,
        n_due as f64 / people.max(1) as f64,
        n_due as f64 / seconds,
        100.0 * agree as f64 / people.max(1) as f64
    );
    println!(
        "with each person's views summarised by their mean instead of their median: final tags agree for {agree_mean}/{people} people ({:.1}%)\n",
        100.0 * agree_mean as f64 / people.max(1) as f64
    );
    let mut rows = vec![(bundle.manifest.name.clone(), cls_ms)];
    if a.ensemble {
        rows.push((
            "paper ensemble (ResNet50 + DenseNet121 + Inception-v4)".into(),
            ensemble_ms()?,
        ));
    }
    let fps = a.fps;
    let cameras = |ms_per_camera_second: f64| a.cores as f64 * 1000.0 / ms_per_camera_second;
    println!("| classifier | ms/crop | cameras at {fps} fps, frame mode | people, every frame | people, when due | when due / every frame |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, ms) in rows {
        let frame_mode = cameras(fps * ms);
        let ev = cameras(det_rate * det_ms + n_every as f64 / seconds * ms);
        let du = cameras(det_rate * det_ms + n_due as f64 / seconds * ms);
        println!(
            "| {name} | {ms:.1} | {frame_mode:.2} | {ev:.2} | {du:.2} | {:.2}× |",
            du / ev
        );
    }
    println!("\ncameras = cores × 1000 ms / (CPU ms one camera needs per second: its detector runs + its classifications), the work spread over the cores");
    Ok(())
}

/// ms per crop of the paper's three backbones at their own input sizes
/// (random weights: their cost, not their answers), tract, batch 1.
#[cfg(feature = "train")]
fn ensemble_ms() -> Result<f64> {
    use stylecam::train::{export, Arch, Family, Net};
    let mut total = 0.0;
    for (i, family) in [Family::Resnet50, Family::Densenet121, Family::InceptionV4]
        .into_iter()
        .enumerate()
    {
        let arch = Arch::full(family);
        let net = Net::seeded(arch, 13, 7 + i as u64);
        let onnx = export::export_one(&net, export::Output::Sigmoid);
        let size = arch.input_size();
        let mut b = CpuBackend::from_bytes(&onnx, [3, size, size])?;
        let x = vec![0.1f32; 3 * size * size];
        b.infer(&x, 1)?;
        let t = Instant::now();
        let runs = 3;
        for _ in 0..runs {
            b.infer(&x, 1)?;
        }
        let ms = t.elapsed().as_secs_f64() * 1000.0 / runs as f64;
        eprintln!("{arch}: {ms:.0} ms per crop");
        total += ms;
    }
    Ok(total)
}

#[cfg(not(feature = "train"))]
fn ensemble_ms() -> Result<f64> {
    anyhow::bail!(
        "--ensemble builds the backbones with the trainer: rebuild with `--features train`"
    )
}
