//! The command line as an admin meets it, and the bundle checks.

use crate::common::*;
use std::path::Path;
use std::time::{Duration, Instant};
use stylecam::bundle::{Bundle, BundleError};
use stylecam::demo_model as demo;
use stylecam::infer::{cpu::CpuBackend, Backend};

fn copy_demo_bundle(to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for f in ["bundle.toml", "model.onnx"] {
        std::fs::copy(repo().join("assets/demo-bundle").join(f), to.join(f)).unwrap();
    }
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn generated_config_passes_check_config() {
    let dir = tempfile::tempdir().unwrap();
    let out = stylecam().arg("generate-config").output().unwrap();
    assert!(out.status.success());
    let path = dir.path().join("stylecam.toml");
    std::fs::write(&path, &out.stdout).unwrap();
    let check = stylecam().arg("check-config").arg(&path).output().unwrap();
    assert!(check.status.success(), "{}", stderr_of(&check));
    assert!(String::from_utf8_lossy(&check.stdout).contains("OK"));
}

#[test]
fn check_config_names_key_value_and_fix() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    let good =
        String::from_utf8(stylecam().arg("generate-config").output().unwrap().stdout).unwrap();
    std::fs::write(&path, good.replace("max_batch = 4", "max_batch = 0")).unwrap();
    let out = stylecam().arg("check-config").arg(&path).output().unwrap();
    let err = stderr_of(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("model.max_batch") && err.contains("= 0") && err.contains("Fix:"),
        "{err}"
    );

    // An environment override is checked the same way.
    std::fs::write(&path, &good).unwrap();
    let out = stylecam()
        .arg("check-config")
        .arg(&path)
        .env("STYLECAM_MQTT__PORT", "0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr_of(&out).contains("mqtt.port"), "{}", stderr_of(&out));
    let out = stylecam()
        .arg("check-config")
        .arg(&path)
        .env("STYLECAM_DEVICE", "store-12")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));

    // A typo'd key is named.
    std::fs::write(&path, good.replace("keep_alive_s = 30", "keepalive = 30")).unwrap();
    let out = stylecam().arg("check-config").arg(&path).output().unwrap();
    assert!(
        !out.status.success() && stderr_of(&out).contains("keepalive"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn run_with_a_missing_bundle_fails_before_any_camera_opens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    let good =
        String::from_utf8(stylecam().arg("generate-config").output().unwrap().stdout).unwrap();
    std::fs::write(
        &path,
        good.replace(
            "bundle = \"assets/demo-bundle\"",
            "bundle = \"/nonexistent/bundle\"",
        ),
    )
    .unwrap();
    let t = Instant::now();
    let out = stylecam()
        .args(["run", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let err = stderr_of(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("model.bundle")
            && err.contains("/nonexistent/bundle")
            && err.contains("bundle.toml is missing"),
        "{err}"
    );
    assert!(!err.contains("camera"), "no camera may open: {err}");
    assert!(t.elapsed() < Duration::from_secs(10));
}

#[test]
fn bundle_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let b = dir.path().join("b");
    copy_demo_bundle(&b);
    Bundle::load(&b).unwrap();

    // Changed ONNX: the hash no longer matches.
    let mut onnx = std::fs::read(b.join("model.onnx")).unwrap();
    onnx.push(0);
    std::fs::write(b.join("model.onnx"), &onnx).unwrap();
    assert!(matches!(Bundle::load(&b), Err(BundleError::Hash { .. })));
    copy_demo_bundle(&b);

    // Class-count mismatch: 12 classes for a 13-output model.
    let manifest = std::fs::read_to_string(b.join("bundle.toml")).unwrap();
    let cut = manifest.replace("[[classes]]\nid = \"ethnic\"", "[[x]]\nid = \"ethnic\"");
    let cut = cut.split("[[x]]").next().unwrap().to_string();
    std::fs::write(b.join("bundle.toml"), &cut).unwrap();
    let e = Bundle::load(&b).unwrap_err().to_string();
    assert!(e.contains("12 classes") && e.contains("[N,13]"), "{e}");

    // Input size that disagrees with the model.
    std::fs::write(
        b.join("bundle.toml"),
        manifest.replace("width = 224", "width = 256"),
    )
    .unwrap();
    let e = Bundle::load(&b).unwrap_err().to_string();
    assert!(
        e.contains("[N,3,224,256]") && e.contains("[N,3,224,224]"),
        "{e}"
    );

    // Missing model file.
    std::fs::write(b.join("bundle.toml"), &manifest).unwrap();
    std::fs::remove_file(b.join("model.onnx")).unwrap();
    let e = Bundle::load(&b).unwrap_err().to_string();
    assert!(e.contains("model.onnx is missing"), "{e}");
}

#[test]
fn shipped_demo_bundle_is_what_our_code_produces() {
    let dir = tempfile::tempdir().unwrap();
    let spec = demo::demo_spec();
    let mut cam =
        stylecam::config::CameraConfig::files("c", repo().join("assets/photos").to_str().unwrap());
    cam.files_mut().unwrap().looping = false;
    cam.fps = 0.0;
    let mut src = stylecam::capture::open(&cam).unwrap();
    let mut photos = vec![];
    while let Some(f) = src.next_frame().unwrap() {
        photos.push(stylecam::preprocess::preprocess(&f, &spec).unwrap());
    }
    demo::write_demo_bundle(dir.path(), &photos).unwrap();
    let rebuilt = Bundle::load(dir.path()).unwrap();
    let shipped = Bundle::load(&repo().join("assets/demo-bundle")).unwrap();
    assert_eq!(rebuilt.manifest.classes, shipped.manifest.classes);
    let mut a = CpuBackend::load(&rebuilt.onnx_path(), [3, 224, 224]).unwrap();
    let mut b = CpuBackend::load(&shipped.onnx_path(), [3, 224, 224]).unwrap();
    for p in &photos {
        let (x, y) = (a.infer(p, 1).unwrap(), b.infer(p, 1).unwrap());
        let d = x
            .iter()
            .zip(&y)
            .map(|(u, v)| (u - v).abs())
            .fold(0.0, f32::max);
        // Calibration amplifies float rounding (which differs across CPUs), so
        // allow 1e-3; another seed or architecture would differ by ~0.5.
        assert!(d < 1e-3, "rebuilt vs shipped demo model differ by {d}");
    }
    // Calibrated so that the two photos disagree on every class.
    let (x, y) = (
        a.infer(&photos[0], 1).unwrap(),
        a.infer(&photos[1], 1).unwrap(),
    );
    assert!(
        x.iter().zip(&y).all(|(u, v)| (u - 0.5) * (v - 0.5) < 0.0),
        "{x:?} {y:?}"
    );
}

#[cfg(feature = "embedded-broker")]
#[test]
fn synthetic_cameras_through_the_embedded_broker_until_they_end() {
    let a = synthetic_run("capture_threads");
    // Preprocessing at batch time, straight into the backend's input slots,
    // decides the same tags for the same frames.
    let b = synthetic_run("inference_thread");
    assert_eq!(
        a, b,
        "tags per camera, preprocessing on the camera threads vs at batch time"
    );
}

/// Two synthetic cameras to their end with `pipeline.preprocess_on`;
/// returns each camera's logged tag changes, in order.
#[cfg(feature = "embedded-broker")]
fn synthetic_run(preprocess_on: &str) -> Vec<(String, Vec<String>)> {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"device = "synth"
[model]
bundle = "{bundle}"
backend = "auto"
[[cameras]]
name = "yuyv"
source = "synthetic"
pixel_format = "yuyv"
width = 320
height = 240
fps = 0.0
frames = 12
[[cameras]]
name = "nv12"
source = "synthetic"
pixel_format = "nv12"
width = 160
height = 128
fps = 0.0
frames = 12
[pipeline]
queue_depth = 100
preprocess_on = "{preprocess_on}"
[mqtt]
embedded = true
port = {port}
[outbox]
path = "{outbox}"
"#,
            bundle = repo().join("assets/demo-bundle").display(),
            outbox = dir.path().join("outbox.redb").display()
        ),
    )
    .unwrap();
    let out = stylecam()
        .args(["run", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let err = stderr_of(&out);
    assert!(out.status.success(), "{err}");
    // auto passes over TensorRT (not built) and says why, then takes
    // onnxruntime where its library loads (CI installs it), else cpu.
    assert!(err.contains("model.backend = auto: not tensorrt"), "{err}");
    assert!(
        err.contains("on the onnxruntime backend") || err.contains("on the cpu backend"),
        "{err}"
    );
    assert!(err.contains("embedded MQTT broker listening"), "{err}");
    assert!(
        err.contains("24 captured, 24 inferred, 0 dropped"),
        "{preprocess_on}: {err}"
    );
    let mut per_camera: Vec<(String, Vec<String>)> = ["yuyv", "nv12"]
        .iter()
        .map(|c| (c.to_string(), vec![]))
        .collect();
    for line in err.lines() {
        for (cam, tags) in per_camera.iter_mut() {
            if let Some(rest) = line.split(&format!("camera {cam}: tags ")).nth(1) {
                tags.push(rest.to_string());
            }
        }
    }
    assert!(per_camera.iter().all(|(_, t)| !t.is_empty()), "{err}");
    per_camera
}

#[test]
fn tune_writes_decision_and_eval_scores_it() {
    let dir = tempfile::tempdir().unwrap();
    let b = dir.path().join("bundle");
    copy_demo_bundle(&b);
    let tax = stylecam::styles::Taxonomy::jd2018();
    let labels = stylecam::styles::simulate::jd_like_labels(600, 5);
    let preds = stylecam::styles::simulate::scores(&labels, 0.2, 6);
    let ids: Vec<String> = (0..600).map(|i| format!("img{i:04}")).collect();
    // Predictions in the header-CSV layout, labels in the challenge's own.
    let table = stylecam::styles::LabelTable {
        ids: ids.clone(),
        rows: preds,
    };
    std::fs::write(dir.path().join("preds.csv"), table.to_csv(&tax)).unwrap();
    let mut text = String::new();
    for (id, row) in ids.iter().zip(&labels).rev() {
        text.push_str(id);
        for v in row {
            text.push_str(&format!(",{}", *v as u8));
        }
        text.push('\n');
    }
    std::fs::write(dir.path().join("labels.txt"), text).unwrap();
    let out = stylecam()
        .args(["tune", "--preds"])
        .arg(dir.path().join("preds.csv"))
        .arg("--labels")
        .arg(dir.path().join("labels.txt"))
        .arg("--bundle")
        .arg(&b)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(
        stdout.contains("fixed 0.5 thresholds") && stdout.contains("wrote [decision]"),
        "{stdout}"
    );
    let bundle = Bundle::load(&b).unwrap();
    let d = bundle
        .manifest
        .decision
        .clone()
        .expect("[decision] written");
    assert_eq!(d.relation.classes(), 13);

    let eval = stylecam()
        .args(["eval", "--preds"])
        .arg(dir.path().join("preds.csv"))
        .arg("--labels")
        .arg(dir.path().join("labels.txt"))
        .arg("--bundle")
        .arg(&b)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&eval.stdout);
    assert!(eval.status.success(), "{}", stderr_of(&eval));
    assert!(
        text.contains("office_lady") && text.contains("macro F2"),
        "{text}"
    );
    // eval with the tuned bundle reproduces tune's best score.
    let best_line = stdout.lines().find(|l| l.starts_with("best:")).unwrap();
    let best: f64 = best_line
        .rsplit(' ')
        .next()
        .unwrap()
        .trim_end_matches(')')
        .parse()
        .unwrap();
    let macro_line = text.lines().find(|l| l.starts_with("macro F2")).unwrap();
    let got: f64 = macro_line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(
        (best - got).abs() < 1e-4,
        "tune said {best}, eval says {got}"
    );

    // A label file with a bad value names the file and line.
    std::fs::write(
        dir.path().join("bad.txt"),
        "a,0,1,0,0,0,0,0,0,0,0,0,0,0\nb,0,1,0,0,0,0,0,0,7,0,0,0,0\n",
    )
    .unwrap();
    let out = stylecam()
        .args(["eval", "--preds"])
        .arg(dir.path().join("preds.csv"))
        .arg("--labels")
        .arg(dir.path().join("bad.txt"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("bad.txt:2:"),
        "{}",
        stderr_of(&out)
    );
}
