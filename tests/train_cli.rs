//! `stylecam train` and `stylecam export` as an admin runs them: a labelled
//! folder → checkpoints, predictions, log and a bundle `check-config`
//! accepts; resume; and the bad-input messages.

use crate::common::*;
use std::path::Path;
use stylecam::styles::Taxonomy;
use stylecam::train::synthetic;

/// Writes `n` synthetic garment images as PNG and a CSV label file with a
/// header; every class gets positives.
fn labelled_folder(dir: &Path, n: usize) {
    let (images, mut labels) = synthetic::generate(n, 64, 3);
    for (i, row) in labels.iter_mut().enumerate().take(39) {
        row[i % 13] = 1.0;
    }
    let photos = dir.join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    let tax = Taxonomy::jd2018();
    let mut csv = format!("image,{}\n", tax.ids().collect::<Vec<_>>().join(","));
    for (i, (img, row)) in images.iter().zip(&labels).enumerate() {
        image::RgbImage::from_raw(64, 64, img.clone())
            .unwrap()
            .save(photos.join(format!("g{i:04}.png")))
            .unwrap();
        let vals: Vec<String> = row.iter().map(|v| format!("{v}")).collect();
        csv += &format!("g{i:04},{}\n", vals.join(","));
    }
    std::fs::write(dir.join("labels.csv"), csv).unwrap();
}

fn config(dir: &Path, epochs: usize) -> std::path::PathBuf {
    let path = dir.join("train.toml");
    std::fs::write(
        &path,
        format!(
            r#"[data]
images = "photos"
labels = "labels.csv"
[train]
backbones = ["tiny_efficientnet_lite0"]
epochs = {epochs}
batch_size = 16
[output]
dir = "run"
"#
        ),
    )
    .unwrap();
    path
}

/// Runs `stylecam train --config cfg [extra…]`: whether it succeeded, and
/// its stdout and stderr together.
fn train(cfg: &Path, extra: &[&std::ffi::OsStr]) -> (bool, String) {
    let out = stylecam()
        .args(["train", "--config"])
        .arg(cfg)
        .args(extra)
        .output()
        .unwrap();
    (out.status.success(), output_text(&out))
}

#[test]
fn train_writes_a_bundle_resumes_and_exports() {
    let dir = tempfile::tempdir().unwrap();
    labelled_folder(dir.path(), 120);
    // One image missing: skipped and counted, not fatal.
    std::fs::remove_file(dir.path().join("photos/g0100.png")).unwrap();
    let (ok, text) = train(&config(dir.path(), 1), &[]);
    assert!(ok, "{text}");
    assert!(
        text.contains("1 images skipped") && text.contains("g0100"),
        "{text}"
    );
    assert!(
        text.contains("fixed 0.5 thresholds"),
        "the tune table is printed: {text}"
    );
    let run = dir.path().join("run");
    for f in [
        "tiny_efficientnet_lite0.bpk",
        "tiny_efficientnet_lite0.json",
        "log.json",
        "log.csv",
        "val_tiny_efficientnet_lite0.csv",
        "bundle/model.onnx",
        "bundle/bundle.toml",
    ] {
        assert!(run.join(f).is_file(), "{f} missing");
    }
    let bundle = stylecam::bundle::Bundle::load(&run.join("bundle")).unwrap();
    assert!(bundle.manifest.decision.is_some(), "tuned decision written");

    // Resume: two epochs asked, one done.
    let (ok, text) = train(&config(dir.path(), 2), &[]);
    assert!(ok, "{text}");
    assert!(
        text.contains("resuming from") && text.contains("epoch 1 of 2"),
        "{text}"
    );
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("tiny_efficientnet_lite0.json")).unwrap())
            .unwrap();
    assert_eq!(meta["epoch"], 2);

    // Export alone.
    let onnx = dir.path().join("alone.onnx");
    let out = stylecam()
        .args(["export", "--checkpoint"])
        .arg(run.join("tiny_efficientnet_lite0.bpk"))
        .arg("--out")
        .arg(&onnx)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shapes = stylecam::bundle::onnx::io_shapes(&std::fs::read(&onnx).unwrap()).unwrap();
    assert_eq!(shapes.output[1], Some(13));

    // Fine-tune from that run's features into a new output dir.
    let cfg = config(dir.path(), 1);
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("\"run\"", "\"tuned\"");
    std::fs::write(&cfg, text).unwrap();
    let from = run.join("tiny_efficientnet_lite0.bpk");
    let (ok, text) = train(&cfg, &["--init-from".as_ref(), from.as_os_str()]);
    assert!(ok, "{text}");
    assert!(
        text.contains("tiny_efficientnet_lite0: features from") && text.contains("(epoch 2)"),
        "{text}"
    );
    assert!(dir.path().join("tuned/bundle/model.onnx").is_file());
}

#[test]
fn a_folder_over_the_memory_budget_is_decoded_batch_by_batch() {
    let dir = tempfile::tempdir().unwrap();
    labelled_folder(dir.path(), 80);
    let photos = dir.path().join("photos");
    // Not an image at all: found when the headers are read, skipped.
    std::fs::write(photos.join("g0007.png"), b"not a png").unwrap();
    // Header intact, pixels cut off (a disk that misbehaves): passes the
    // header check, fails when decoded during training, and is left out
    // (or predicted as grey in validation) without stopping the run.
    let cut = std::fs::read(photos.join("g0050.png")).unwrap();
    std::fs::write(photos.join("g0050.png"), &cut[..cut.len() / 2]).unwrap();
    let cfg = config(dir.path(), 1);
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("[data]\n", "[data]\nmemory_mib = 0\n");
    std::fs::write(&cfg, text).unwrap();
    let (ok, text) = train(&cfg, &[]);
    assert!(ok, "{text}");
    assert!(
        text.contains("exceed data.memory_mib = 0: decoding them batch by batch"),
        "{text}"
    );
    assert!(
        text.contains("1 images skipped") && text.contains("g0007"),
        "{text}"
    );
    assert!(
        (text.contains("training image left out") || text.contains("validation image unreadable"))
            && text.contains("g0050"),
        "{text}"
    );
    assert!(dir.path().join("run/bundle/model.onnx").is_file());
}

#[test]
fn bad_training_input_is_explained_before_training() {
    let dir = tempfile::tempdir().unwrap();
    labelled_folder(dir.path(), 40);
    let labels = dir.path().join("labels.csv");
    let good = std::fs::read_to_string(&labels).unwrap();
    let cfg = config(dir.path(), 1);
    let fails = |needle: &str| {
        let (ok, err) = train(&cfg, &[]);
        assert!(!ok, "should fail: {err}");
        assert!(err.contains(needle), "expected {needle:?} in: {err}");
        assert!(!dir.path().join("run/bundle").exists(), "nothing trained");
    };

    // A row with a missing column: file and line.
    let mut lines: Vec<&str> = good.lines().collect();
    let short = lines[3].rsplit_once(',').unwrap().0.to_string();
    lines[3] = &short;
    std::fs::write(&labels, lines.join("\n")).unwrap();
    fails("labels.csv:4: 13 columns, the header has 14");

    // A value other than 0/1.
    std::fs::write(&labels, good.replacen("g0002,0", "g0002,2", 1)).unwrap();
    fails("labels.csv:4: class \"sports\": 2 is not 0 or 1");

    // A class with no positive at all.
    let no_ethnic: String = good
        .lines()
        .map(|l| {
            if l.starts_with('g') {
                format!("{},0", l.rsplit_once(',').unwrap().0)
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&labels, no_ethnic).unwrap();
    fails("classes [\"ethnic\"] have no positive image in the training split");

    // Unknown backbone: the config key and the choices.
    std::fs::write(&labels, &good).unwrap();
    std::fs::write(
        &cfg,
        std::fs::read_to_string(&cfg)
            .unwrap()
            .replace("tiny_efficientnet_lite0", "vgg16"),
    )
    .unwrap();
    fails("train.backbones: unknown backbone \"vgg16\"");
}

/// A taxonomy that is not the JD one: 4 classes named by the label file's
/// header train end to end into a 4-class bundle the daemon's backend runs.
#[test]
fn train_four_classes_from_the_label_header() {
    let dir = tempfile::tempdir().unwrap();
    let (images, labels) = synthetic::generate(96, 64, 5);
    let photos = dir.path().join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    let ids = ["dress", "coat", "skirt", "scarf"];
    let mut csv = format!("image,{}\n", ids.join(","));
    for (i, (img, row)) in images.iter().zip(&labels).enumerate() {
        image::RgbImage::from_raw(64, 64, img.clone())
            .unwrap()
            .save(photos.join(format!("g{i:04}.png")))
            .unwrap();
        let mut four: Vec<f32> = row[..4].to_vec();
        if i < 16 {
            four[i % 4] = 1.0;
        }
        let vals: Vec<String> = four.iter().map(|v| format!("{v}")).collect();
        csv += &format!("g{i:04},{}\n", vals.join(","));
    }
    std::fs::write(dir.path().join("labels.csv"), csv).unwrap();
    let (ok, text) = train(&config(dir.path(), 1), &[]);
    assert!(ok, "{text}");
    let bundle = stylecam::bundle::Bundle::load(&dir.path().join("run/bundle")).unwrap();
    let got: Vec<&str> = bundle.manifest.classes.ids().collect();
    assert_eq!(got, ids, "the bundle carries the label file's classes");
    let decision = bundle.decision();
    assert_eq!(decision.thresholds.len(), 4, "tuned for 4 classes");
    use stylecam::infer::Backend;
    let mut backend = stylecam::infer::cpu::CpuBackend::open(&bundle).unwrap();
    assert_eq!(backend.classes(), 4);
    let probs = backend.infer(&vec![0.0; backend.sample_len()], 1).unwrap();
    assert_eq!(probs.len(), 4);
    assert!(probs.iter().all(|p| (0.0..=1.0).contains(p)), "{probs:?}");
    // A fn_weight of the wrong length names the class count.
    let cfg = dir.path().join("train.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        text.replace("batch_size = 16", "batch_size = 16\nfn_weight = [1, 2]"),
    )
    .unwrap();
    let (ok, text) = train(&cfg, &[]);
    assert!(!ok && text.contains("one per class (4"), "{text}");
}

/// `train.edge`: the bundle gets `edge.onnx` and `[cascade]`; the daemon
/// serves it (a real mosquitto) with the same payload schema, counting the
/// frames its edge model escalated; `model.cascade = false` runs the
/// ensemble alone.
#[test]
fn a_cascade_bundle_trains_loads_serves_and_publishes_the_same_schema() {
    if !available("mosquitto", mosquitto_path().is_some()) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    labelled_folder(dir.path(), 120);
    let cfg = config(dir.path(), 1);
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "backbones = [\"tiny_efficientnet_lite0\"]",
        "backbones = [\"tiny_efficientnet_lite0\"]\nedge = \"tiny_resnet50\"",
    );
    std::fs::write(&cfg, text).unwrap();
    let (ok, text) = train(&cfg, &[]);
    assert!(ok, "{text}");
    assert!(
        text.contains("cascade on validation:") && text.contains("escalated"),
        "{text}"
    );
    let bundle_dir = dir.path().join("run/bundle");
    let bundle = stylecam::bundle::Bundle::load(&bundle_dir).unwrap();
    let c = bundle.manifest.cascade.as_ref().expect("[cascade] written");
    assert_eq!((c.onnx.as_str(), c.margins.len()), ("edge.onnx", 13));
    assert!(bundle_dir.join("edge.onnx").is_file());

    let broker = Mosquitto::start(free_port());
    let validator = schema();
    for cascade in [true, false] {
        let device = format!("cascade-{cascade}");
        let cfg = daemon_config(
            dir.path(),
            &dir.path().join("photos"),
            broker.port,
            &device,
            "",
        );
        let text = with_bundle_lines(
            &std::fs::read_to_string(&cfg).unwrap(),
            &format!("bundle = \"{}\"\ncascade = {cascade}", bundle_dir.display()),
        )
        .replace("loop = true", "loop = false")
        .replace("repeat = 3", "repeat = 1");
        std::fs::write(&cfg, text).unwrap();
        let out = stylecam()
            .args(["check-config"])
            .arg(&cfg)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", output_text(&out));
        let sub = Collector::start(broker.port, &format!("stylecam/{device}/#"), &device);
        let mut daemon = run_daemon(&cfg, &[]);
        let summary = exit_summary(&sub, 1);
        assert!(
            daemon.wait(std::time::Duration::from_secs(60)).success(),
            "{}",
            daemon.log_text()
        );
        let all = sub.all();
        for r in &all {
            assert_valid(&validator, r);
        }
        assert!(!kind(&all, "styles").is_empty(), "events published");
        let frames = &summary["frames"];
        let (inferred, escalated) = (
            frames["inferred"].as_u64().unwrap(),
            frames["escalated"].as_u64().unwrap(),
        );
        assert_eq!(inferred, 120, "{frames}");
        let log = daemon.log_text();
        if cascade {
            assert!(log.contains("model: cascade"), "{log}");
            assert!(escalated <= inferred, "{frames}");
        } else {
            assert_eq!(escalated, 0, "{frames}");
            assert!(!log.contains("model: cascade"), "{log}");
        }
    }
}

/// One row of `bench precision`'s table: (max |Δp|, mean |Δp|, ΔF2 or NaN).
fn precision_row(text: &str, set: &str, graph: &str) -> (f64, f64, f64) {
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("| {set} | {graph} |")))
        .unwrap_or_else(|| panic!("no row {set} / {graph}:\n{text}"));
    let cols: Vec<&str> = line.split('|').map(str::trim).collect();
    let num = |s: &str| s.trim_start_matches('+').parse::<f64>().unwrap_or(f64::NAN);
    (num(cols[4]), num(cols[5]), num(cols[8]))
}

/// `stylecam bench precision`, small: FP16 and INT8 (ours and onnxruntime's
/// quantize_static on the same calibration tensors) against FP32 on the
/// held-out synthetic garments and on crops of the demo photos.
#[test]
fn bench_precision_scores_fp16_and_int8_next_to_onnxruntimes_quantizer() {
    if !available(
        "python3 with onnxruntime, onnx and numpy",
        python_has("onnxruntime, onnx, numpy"),
    ) {
        return;
    }
    let out = stylecam()
        .args([
            "bench",
            "precision",
            "--train-val",
            "600",
            "--test",
            "120",
            "--epochs",
            "1",
        ])
        .args([
            "--calib",
            "32",
            "--crops",
            "12",
            "--backbones",
            "tiny_resnet50",
        ])
        .output()
        .unwrap();
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    eprintln!(
        "{}",
        text.lines()
            .filter(|l| l.starts_with('|') || l.contains("ours /"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    for set in ["synthetic", "demo photos"] {
        let (max, mean, _) = precision_row(&text, set, "fp32");
        assert_eq!((max, mean), (0.0, 0.0), "{set}");
        let (max, _, _) = precision_row(&text, set, "fp16 (ours)");
        assert!(max > 0.0 && max < 0.05, "{set} fp16: {max}");
        for m in ["entropy", "percentile 99.99"] {
            let (max, mean, df2) = precision_row(&text, set, &format!("int8 {m} (ours)"));
            let (_, peer, _) = precision_row(
                &text,
                set,
                &format!("int8 {m} (onnxruntime quantize_static)"),
            );
            // Not far behind onnxruntime's own quantiser on the same tensors.
            assert!(
                mean > 0.0 && mean <= 3.0 * peer + 0.005,
                "{set} int8 {m}: mean {mean} vs onnxruntime {peer}"
            );
            if set == "synthetic" {
                // (The demo CNN's saturated outputs flip whole probabilities
                // on a few crops for both quantisers.)
                assert!(max < 0.3, "{set} int8 {m}: max {max}");
                assert!(df2.abs() < 0.1, "{set} int8 {m}: ΔF2 {df2}");
            }
        }
    }
}
