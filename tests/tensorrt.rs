//! TensorRT: what runs on a machine without a GPU.
//!
//! - Without TensorRT (no feature, or no library): `backend = "tensorrt"`
//!   fails with the library and the fix; `auto` falls back.
//! - With the feature and TensorRT-RTX's libraries from PyPI: the real
//!   builder parses and builds, ahead of time for SM 8.6, the demo bundle,
//!   onnx's `light_resnet50` and a fused tiny ensemble from our own export;
//!   the manifest and the cache rules hold; a stale engine is refused with
//!   the rebuild command.
//! - The real lean runtime (TensorRT 11, PyPI) is loaded: its version is
//!   read and the no-GPU path ends in a clean error (TensorRT returns 0x228,
//!   not null, when CUDA cannot initialise).
//! - The shim compiles against every header set in TENSORRT_HEADER_SETS.
//!
//! No engine is executed here: that needs a GPU (scripts/device-check.sh).

use crate::common::*;
use std::path::{Path, PathBuf};

/// A daemon config (demo bundle, demo photos, no broker needed to fail)
/// whose `backend = "cpu"` line is replaced by `model_lines`.
fn config_with(dir: &Path, model_lines: &str) -> PathBuf {
    let path = daemon_config(dir, &repo().join("assets/photos"), free_port(), "box", "");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("backend = \"cpu\""));
    std::fs::write(&path, text.replacen("backend = \"cpu\"", model_lines, 1)).unwrap();
    path
}

#[test]
fn tensorrt_without_its_library_names_what_is_missing_and_auto_falls_back() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("no-tensorrt-here");
    std::fs::create_dir_all(&empty).unwrap();
    let cfg = config_with(
        dir.path(),
        &format!("backend = \"tensorrt\"\ntensorrt_library = {empty:?}"),
    );
    for args in [
        vec!["check-config", cfg.to_str().unwrap()],
        vec!["run", "--config", cfg.to_str().unwrap()],
    ] {
        let out = stylecam().args(&args).output().unwrap();
        let text = output_text(&out);
        assert!(!out.status.success(), "{args:?} passed:\n{text}");
        assert!(
            text.contains("model.backend"),
            "{args:?}: no config key:\n{text}"
        );
        if cfg!(feature = "tensorrt") {
            assert!(
                text.contains("not found") && text.contains("model.tensorrt_library"),
                "{args:?}: no library named:\n{text}"
            );
        } else {
            assert!(
                text.contains("without the `tensorrt` feature"),
                "{args:?}:\n{text}"
            );
        }
        eprintln!("{args:?} → {}", text.lines().last().unwrap_or(""));
    }
    let cfg = config_with(
        dir.path(),
        &format!("backend = \"auto\"\ntensorrt_library = {empty:?}"),
    );
    let out = stylecam()
        .args(["check-config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("backend onnxruntime") || text.contains("backend cpu"),
        "{text}"
    );
    // build-engine on auto with no TensorRT: nothing to build, exit 0.
    let out = stylecam()
        .args(["build-engine", "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(output_text(&out).contains("nothing to build"));
}

#[test]
fn the_shim_compiles_against_every_header_set_given() {
    let sets = std::env::var("TENSORRT_HEADER_SETS").unwrap_or_default();
    if !available(
        "TENSORRT_HEADER_SETS (TensorRT header folders, `:`-separated)",
        !sets.is_empty(),
    ) {
        return;
    }
    let stub = tempfile::tempdir().unwrap();
    std::fs::write(
        stub.path().join("cuda_runtime_api.h"),
        "#pragma once\ntypedef struct CUevent_st *cudaEvent_t;\ntypedef struct CUstream_st *cudaStream_t;\n",
    )
    .unwrap();
    for dir in sets.split(':').filter(|s| !s.is_empty()) {
        let version =
            std::fs::read_to_string(Path::new(dir).join("NvInferVersion.h")).unwrap_or_default();
        let out = std::process::Command::new("c++")
            .args([
                "-std=c++17",
                "-fsyntax-only",
                "-Wall",
                "-Werror",
                "-isystem",
                dir,
                "-I",
            ])
            .arg(stub.path())
            .arg(repo().join("src/infer/tensorrt/shim.cpp"))
            .output()
            .unwrap();
        let major = version
            .lines()
            .find(|l| l.contains("#define TRT_MAJOR_") || l.contains("#define NV_TENSORRT_MAJOR "))
            .unwrap_or("?");
        eprintln!(
            "shim vs {dir} ({major}): {}",
            if out.status.success() {
                "compiles"
            } else {
                "FAILS"
            }
        );
        assert!(out.status.success(), "{dir}:\n{}", output_text(&out));
    }
}

#[test]
fn the_fp16_graph_runs_in_onnxruntime_within_half_precision_of_fp32() {
    if !available(
        "python3 with onnxruntime and numpy",
        python_has("onnxruntime, numpy"),
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let fp32 = repo().join("assets/demo-bundle/model.onnx");
    let fp16 = dir.path().join("model.fp16.onnx");
    std::fs::write(
        &fp16,
        stylecam::bundle::precision::to_fp16(&std::fs::read(&fp32).unwrap()).unwrap(),
    )
    .unwrap();
    let n = 8;
    let mut rng = stylecam::rng::Rng::new(11);
    let x: Vec<f32> = (0..n * 3 * 224 * 224).map(|_| rng.normal()).collect();
    let input = dir.path().join("in.f32");
    write_f32(&input, &x);
    let run = |model: &Path, out: &str| {
        let out = dir.path().join(out);
        python(
            "ort_run.py",
            &[
                model.to_str().unwrap(),
                input.to_str().unwrap(),
                &format!("{n},3,224,224"),
                out.to_str().unwrap(),
            ],
        );
        read_f32(&out)
    };
    let (a, b) = (run(&fp32, "fp32.f32"), run(&fp16, "fp16.f32"));
    assert_eq!(a.len(), n * 13);
    let diff = a
        .iter()
        .zip(&b)
        .map(|(p, q)| (p - q).abs())
        .fold(0.0, f32::max);
    eprintln!("demo bundle, {n} random inputs: max |fp32 - fp16| probability = {diff:.2e} (onnxruntime CPU)");
    // Half precision through the 8-block demo CNN on N(0,1) inputs: a few
    // 1e-2 at most; a wrong conversion (weights, casts) is off by 0.1 or more.
    assert!(diff > 0.0 && diff < 5e-2, "max |fp32 - fp16| = {diff}");
}

/// A calibration folder of real photos (`files::sample_photos`).
fn calibration_photos(dir: &Path) -> PathBuf {
    let photos = dir.join("calibration");
    std::fs::create_dir_all(&photos).unwrap();
    let files = stylecam::capture::files::sample_photos();
    for f in &files {
        std::fs::copy(f, photos.join(f.file_name().unwrap())).unwrap();
    }
    photos
}

/// `stylecam calibrate --config cfg extra…`: success, and its output.
fn calibrate(cfg: &Path, extra: &[&str]) -> (bool, String) {
    let out = stylecam()
        .args(["calibrate", "--config", cfg.to_str().unwrap()])
        .args(extra)
        .output()
        .unwrap();
    (out.status.success(), output_text(&out))
}

/// Calibration on real photos through our preprocessing; the Q/DQ graph it
/// derives runs in onnxruntime close to FP32 on those photos; no images is
/// an error naming the key.
#[test]
fn calibrate_writes_int8_scales_and_the_qdq_graph_stays_close_to_fp32_in_onnxruntime() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let cfg = config_with(
        dir.path(),
        &format!("backend = \"cpu\"\ncalibration = {empty:?}"),
    );
    let (ok, text) = calibrate(&cfg, &[]);
    assert!(!ok, "{text}");
    assert!(
        text.contains("model.calibration") && text.contains("no JPEG/PNG images"),
        "{text}"
    );
    let photos = calibration_photos(dir.path());
    let cfg = config_with(
        dir.path(),
        &format!("backend = \"cpu\"\ncalibration = {photos:?}"),
    );
    let int8 = dir.path().join("int8.onnx");
    let fp32 = repo().join("assets/demo-bundle/model.onnx");
    let sha = stylecam::bundle::sha256_hex(&std::fs::read(&fp32).unwrap());
    let scales = photos.join(format!("int8-{}.json", &sha[..16]));
    let mut probs = vec![];
    for method in [
        &["--method", "entropy"][..],
        &["--method", "percentile", "--percentile", "99.99"],
    ] {
        let (ok, text) = calibrate(
            &cfg,
            &[method, &["--write-onnx", int8.to_str().unwrap()]].concat(),
        );
        assert!(ok, "{text}");
        assert!(
            text.contains("calibrated") && text.contains("--precision int8"),
            "{text}"
        );
        eprintln!("{}", text.lines().next().unwrap_or(""));
        let s: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&scales).unwrap()).unwrap();
        assert_eq!(s["onnx_sha256"], sha.as_str());
        assert_eq!(s["method"], method[1]);
        assert!(s["amax"].as_object().unwrap().len() >= 8, "{s}");
        if !available(
            "python3 with onnxruntime and numpy",
            python_has("onnxruntime, numpy"),
        ) {
            return;
        }
        // The photos themselves, through the daemon's preprocessing.
        let bundle = stylecam::bundle::Bundle::load(&repo().join("assets/demo-bundle")).unwrap();
        let files = stylecam::capture::files::list_images(photos.to_str().unwrap()).unwrap();
        let mut x = vec![];
        for f in &files {
            let frame = stylecam::capture::files::image_frame(f, "t").unwrap();
            x.extend(stylecam::preprocess::preprocess(&frame, &bundle.manifest.input).unwrap());
        }
        let input = dir.path().join("photos.f32");
        write_f32(&input, &x);
        let run = |model: &Path, out: &str| {
            let out = dir.path().join(out);
            let shape = format!("{},3,224,224", files.len());
            python(
                "ort_run.py",
                &[
                    model.to_str().unwrap(),
                    input.to_str().unwrap(),
                    &shape,
                    out.to_str().unwrap(),
                ],
            );
            read_f32(&out)
        };
        let (a, b) = (run(&fp32, "fp32.f32"), run(&int8, "int8.f32"));
        assert_eq!(a.len(), files.len() * 13);
        let mean =
            |b: &[f32]| a.iter().zip(b).map(|(p, q)| (p - q).abs()).sum::<f32>() / a.len() as f32;
        // The same graph with every activation range cut to a tenth: what a
        // wrong scale does.
        let mut wrong: stylecam::bundle::int8::Scales = serde_json::from_value(s.clone()).unwrap();
        for v in wrong.amax.values_mut() {
            *v /= 10.0;
        }
        let bad = dir.path().join("bad.onnx");
        std::fs::write(
            &bad,
            stylecam::bundle::int8::to_int8(&std::fs::read(&fp32).unwrap(), &wrong).unwrap(),
        )
        .unwrap();
        let c = run(&bad, "bad.f32");
        let (m, m_bad) = (mean(&b), mean(&c));
        eprintln!("demo bundle, {} photos, {}: mean |fp32 - int8| probability {m:.4} (ranges cut to a tenth: {m_bad:.4}), onnxruntime CPU", files.len(), method[1]);
        // The demo CNN (random weights, saturated outputs) is sensitive:
        // percentile-calibrated INT8 moves its probabilities by ~0.05 on
        // average on these photos; entropy, from 10 images' sparse
        // histograms, clips harder (~0.07); ranges cut to a tenth, ~0.46.
        let bound = if method[1] == "percentile" { 0.1 } else { 0.15 };
        assert!(m > 0.0 && m < bound, "mean |fp32 - int8| = {m}");
        assert!(m_bad > 1.5 * m, "clipped ranges {m_bad} vs calibrated {m}");
        probs.push(b);
    }
    assert_ne!(probs[0], probs[1], "the two methods give the same graph");
}

#[cfg(feature = "tensorrt")]
mod with_feature {
    use super::*;
    use stylecam::infer::tensorrt::ffi::{Headers, Library};

    /// Where the PyPI wheels put TensorRT's libraries (`rtx`, `lean`).
    fn wheel_dir(which: &str) -> Option<PathBuf> {
        if !python_has("importlib") {
            return None;
        }
        python("trt_libs.py", &[])
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{which}=")).map(PathBuf::from))
    }

    /// TensorRT-RTX's folder, where this binary's shim is built for it.
    fn rtx() -> Option<PathBuf> {
        let h = Headers::get();
        if !available(
            &format!("a shim built for TensorRT-RTX (this one: {})", h.describe()),
            h.rtx,
        ) {
            return None;
        }
        let dir = wheel_dir("rtx");
        let found = available(
            "TensorRT-RTX's libraries (pip install onnxruntime-ep-nv-tensorrt-rtx-cu13)",
            dir.is_some(),
        );
        if found {
            dir
        } else {
            None
        }
    }

    fn build(cfg: &Path, extra: &[&str]) -> (bool, String) {
        let out = stylecam()
            .args([
                "build-engine",
                "--config",
                cfg.to_str().unwrap(),
                "--target",
                "sm86",
            ])
            .args(extra)
            .output()
            .unwrap();
        (out.status.success(), output_text(&out))
    }

    /// build-engine's result line (its log lines come after it).
    fn summary(text: &str) -> &str {
        text.lines()
            .find(|l| l.starts_with("built ") || l.starts_with("cached "))
            .unwrap_or("(no result line)")
    }

    fn manifest(dir: &Path) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap()
    }

    /// A fused ensemble of two tiny backbones from our exporter.
    #[cfg(feature = "train")]
    fn fused_tiny_ensemble(path: &Path) {
        use burn::module::Module;
        use stylecam::train::export::{export, Output};
        use stylecam::train::{cpu, Arch, Family, Net};
        let d = cpu();
        let nets: Vec<Net> = [Family::Resnet50, Family::Densenet121]
            .into_iter()
            .map(|f| Net::new(Arch::tiny(f), 13, &d).valid())
            .collect();
        let w: Vec<f32> = vec![0.5; 13];
        let onnx = export(&[(&nets[0], w.clone()), (&nets[1], w)], Output::Sigmoid);
        std::fs::write(path, onnx).unwrap();
    }

    #[test]
    fn build_engine_builds_our_graphs_ahead_of_time_with_a_real_tensorrt_rtx_and_caches_them() {
        let Some(lib) = rtx() else { return };
        let dir = tempfile::tempdir().unwrap();
        let engines = dir.path().join("trt-engines");
        let cfg = config_with(
            dir.path(),
            &format!(
                "backend = \"tensorrt\"\ntensorrt_library = {lib:?}\nengines = {engines:?}\nmax_batch = 4"
            ),
        );
        // 1. The demo bundle.
        let (ok, text) = build(&cfg, &[]);
        assert!(ok, "{text}");
        assert!(
            text.contains("built stylecam-demo") && text.contains("tensorrt-rtx 1.7"),
            "{text}"
        );
        eprintln!("{}", summary(&text));
        // 2. onnx's light_resnet50 (a 1000-class ResNet-50 with fixed batch 1).
        let mut graphs = vec![];
        if available("python3 with the onnx package", python_has("onnx")) {
            let light = PathBuf::from(python("onnx_dir.py", &[]).trim())
                .join("backend/test/data/light/light_resnet50.onnx");
            graphs.push(light);
        }
        // 3. A fused tiny ensemble from our own export.
        #[cfg(feature = "train")]
        {
            let fused = dir.path().join("tiny_ensemble.onnx");
            fused_tiny_ensemble(&fused);
            graphs.push(fused);
        }
        for g in &graphs {
            let batch = if g.ends_with("light_resnet50.onnx") {
                "1"
            } else {
                "4"
            };
            for precision in ["fp32", "fp16"] {
                let (ok, text) = build(
                    &cfg,
                    &[
                        "--onnx",
                        g.to_str().unwrap(),
                        "--max-batch",
                        batch,
                        "--precision",
                        precision,
                    ],
                );
                assert!(ok, "{} {precision}: {text}", g.display());
                assert!(text.contains("built"), "{text}");
                eprintln!("{}", summary(&text));
            }
        }
        let m = manifest(&engines);
        let entries = m["engines"].as_array().unwrap();
        assert_eq!(entries.len(), 1 + 2 * graphs.len(), "{m:#}");
        for e in entries {
            assert_eq!(e["key"]["runtime"]["flavour"], "tensorrt-rtx");
            assert_eq!(e["key"]["target"]["compute_capability"], "8.6");
            assert_eq!(e["key"]["target"]["gpu"], "any");
            assert!(
                e["key"]["precision"] == "fp32" || e["key"]["precision"] == "fp16",
                "{e}"
            );
            let file = engines.join(e["file"].as_str().unwrap());
            assert_eq!(
                std::fs::metadata(&file).unwrap().len(),
                e["bytes"].as_u64().unwrap()
            );
            assert!(e["bytes"].as_u64().unwrap() > 10_000, "{e}");
        }
        // A second run finds the engine; another batch, or a changed graph,
        // does not.
        let (ok, text) = build(&cfg, &[]);
        assert!(ok && text.contains("cached stylecam-demo"), "{text}");
        let (ok, text) = build(&cfg, &["--max-batch", "2"]);
        assert!(ok && text.contains("built stylecam-demo"), "{text}");
        let changed = dir.path().join("changed");
        std::fs::create_dir_all(&changed).unwrap();
        use prost::Message as _;
        let mut model = tract_onnx::pb::ModelProto::decode(
            std::fs::read(repo().join("assets/demo-bundle/model.onnx"))
                .unwrap()
                .as_slice(),
        )
        .unwrap();
        model.doc_string = "changed".into();
        let changed_onnx = changed.join("model.onnx");
        std::fs::write(&changed_onnx, model.encode_to_vec()).unwrap();
        let (ok, text) = build(&cfg, &["--onnx", changed_onnx.to_str().unwrap()]);
        assert!(ok && text.contains("built"), "{text}");
        // FP16: the derived half-precision graph, its own engine.
        let (ok, text) = build(&cfg, &["--precision", "fp16"]);
        assert!(
            ok && text.contains("built stylecam-demo") && text.contains("fp16"),
            "{text}"
        );
        eprintln!("{}", summary(&text));
        // INT8: refused until `stylecam calibrate` has measured the graph,
        // then the Q/DQ graph from its scales, for each of the three graphs
        // (light_resnet50 is opset 9: converted to 13 first, as the error
        // says).
        let (ok, text) = build(&cfg, &["--precision", "int8"]);
        assert!(
            !ok && text.contains(&format!("stylecam calibrate --config {}", cfg.display())),
            "{text}"
        );
        let photos = calibration_photos(dir.path());
        let cfg = config_with(
            dir.path(),
            &format!(
                "backend = \"tensorrt\"\ntensorrt_library = {lib:?}\nengines = {engines:?}\nmax_batch = 4\ncalibration = {photos:?}"
            ),
        );
        let (ok, text) = calibrate(&cfg, &[]);
        assert!(ok, "{text}");
        let mut int8_graphs = vec![(None, "4")];
        for g in &graphs {
            if g.ends_with("light_resnet50.onnx") {
                let (ok, text) =
                    calibrate(&cfg, &["--onnx", g.to_str().unwrap(), "--max-images", "4"]);
                assert!(!ok && text.contains("opset 13"), "{text}");
                let g13 = dir.path().join("light_resnet50_opset13.onnx");
                python(
                    "onnx_opset13.py",
                    &[g.to_str().unwrap(), g13.to_str().unwrap()],
                );
                int8_graphs.push((Some(g13), "1"));
            } else {
                int8_graphs.push((Some(g.clone()), "4"));
            }
        }
        for (g, batch) in &int8_graphs {
            let onnx: Vec<&str> = g
                .iter()
                .flat_map(|g| ["--onnx", g.to_str().unwrap()])
                .collect();
            if g.is_some() {
                let (ok, text) = calibrate(&cfg, &[&onnx[..], &["--max-images", "4"]].concat());
                assert!(ok, "{text}");
            }
            let (ok, text) = build(
                &cfg,
                &[&onnx[..], &["--max-batch", batch, "--precision", "int8"]].concat(),
            );
            assert!(
                ok && text.contains("built") && text.contains("int8"),
                "{g:?}: {text}"
            );
            eprintln!("{}", summary(&text));
        }
    }

    /// A people-mode bundle: `build-engine` builds the person detector's
    /// engine too (the SSDLite graph converted in test setup, batch 1),
    /// ahead of time for SM 8.6 with the real TensorRT-RTX builder, and
    /// finds both in the cache the next time.
    #[test]
    fn build_engine_builds_the_person_detectors_engine_too() {
        let Some(lib) = rtx() else { return };
        let Some(data) = crate::people::ssdlite_data() else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let bundle = crate::people::bundle_with_detector(&data, dir.path());
        let engines = dir.path().join("trt-engines");
        let cfg = config_with(
            dir.path(),
            &format!(
                "backend = \"tensorrt\"\ntensorrt_library = {lib:?}\nengines = {engines:?}\nmax_batch = 4"
            ),
        );
        let text = std::fs::read_to_string(&cfg).unwrap();
        let demo = repo().join("assets/demo-bundle").display().to_string();
        assert!(text.contains(&demo), "{text}");
        std::fs::write(&cfg, text.replace(&demo, &bundle.display().to_string())).unwrap();
        for precision in ["fp32", "fp16"] {
            let (ok, text) = build(&cfg, &["--precision", precision]);
            assert!(ok, "{text}");
            assert!(
                text.contains("built stylecam-demo:")
                    && text.contains("built stylecam-demo detector:"),
                "{text}"
            );
            eprintln!("{}", summary(&text));
        }
        let m = manifest(&engines);
        let detectors: Vec<&serde_json::Value> = m["engines"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["source"] == "stylecam-demo detector")
            .collect();
        assert_eq!(detectors.len(), 2, "{m:#}");
        for e in detectors {
            assert_eq!(e["key"]["max_batch"], 1, "{e}");
            assert_eq!(e["key"]["target"]["compute_capability"], "8.6");
            assert!(e["bytes"].as_u64().unwrap() > 1_000_000, "{e}");
        }
        let (ok, text) = build(&cfg, &["--precision", "fp16"]);
        assert!(
            ok && text.contains("cached stylecam-demo detector:"),
            "{text}"
        );

        // The daemon runs the detector from its engine too: with a camera
        // in people mode, check-config finds both engines (and stops at
        // the missing GPU, not at the cache)...
        let people = |precision: &str| {
            let text = std::fs::read_to_string(&cfg).unwrap().replacen(
                "[[cameras]]\n",
                "[[cameras]]\nanalyze = \"people\"\n",
                1,
            );
            let text = text.replacen(
                "max_batch = 4",
                &format!("max_batch = 4\nprecision = \"{precision}\""),
                1,
            );
            let path = dir.path().join(format!("people-{precision}.toml"));
            std::fs::write(&path, text).unwrap();
            path
        };
        let check = |cfg: &Path| {
            let out = stylecam()
                .args(["check-config", cfg.to_str().unwrap()])
                .output()
                .unwrap();
            (out.status.success(), output_text(&out))
        };
        for precision in ["fp32", "fp16"] {
            let (ok, text) = check(&people(precision));
            assert!(!ok, "{text}");
            assert!(
                !text.contains("stale")
                    && !text.contains("no engine for")
                    && (text.contains("CUDA") || text.contains("libcuda")),
                "{precision}: {text}"
            );
        }
        // ...and without the detector's engine, check-config refuses it by
        // name with the command that rebuilds it, where a camera is in
        // people mode (a frame-mode config does not need it).
        let mut m = manifest(&engines);
        m["engines"]
            .as_array_mut()
            .unwrap()
            .retain(|e| e["source"] != "stylecam-demo detector");
        std::fs::write(
            engines.join("manifest.json"),
            serde_json::to_vec_pretty(&m).unwrap(),
        )
        .unwrap();
        let people_cfg = people("fp16");
        let (ok, text) = check(&people_cfg);
        assert!(!ok, "{text}");
        assert!(
            text.contains("has no engine for stylecam-demo detector")
                && text.contains(&format!(
                    "stylecam build-engine --config {}",
                    people_cfg.display()
                )),
            "{text}"
        );
        eprintln!(
            "people mode without the detector's engine: {}",
            text.lines().last().unwrap_or("")
        );
        let frame_cfg = dir.path().join("frame-fp16.toml");
        std::fs::write(
            &frame_cfg,
            std::fs::read_to_string(&people_cfg)
                .unwrap()
                .replacen("analyze = \"people\"\n", "", 1),
        )
        .unwrap();
        let (ok, text) = check(&frame_cfg);
        assert!(
            !ok && !text.contains("no engine for")
                && (text.contains("CUDA") || text.contains("libcuda")),
            "{text}"
        );
    }

    #[test]
    fn a_stale_engine_is_refused_with_the_rebuild_command() {
        let Some(lib) = rtx() else { return };
        let dir = tempfile::tempdir().unwrap();
        let engines = dir.path().join("trt-engines");
        let lines = |batch: usize| {
            format!(
                "backend = \"tensorrt\"\ntensorrt_library = {lib:?}\nengines = {engines:?}\nmax_batch = {batch}"
            )
        };
        let cfg = config_with(dir.path(), &lines(4));
        let (ok, text) = build(&cfg, &[]);
        assert!(ok, "{text}");
        // The engine fits everything but the GPU, and there is none here:
        // refused for want of CUDA, not as stale.
        let out = stylecam()
            .args(["check-config", cfg.to_str().unwrap()])
            .output()
            .unwrap();
        let text = output_text(&out);
        assert!(!out.status.success(), "{text}");
        assert!(
            !text.contains("stale") && (text.contains("CUDA") || text.contains("libcuda")),
            "{text}"
        );
        // Another max_batch: the cached engine is stale, and both
        // check-config and run say so with the command that rebuilds it.
        let cfg = config_with(dir.path(), &lines(2));
        for args in [
            vec!["check-config", cfg.to_str().unwrap()],
            vec!["run", "--config", cfg.to_str().unwrap()],
        ] {
            let out = stylecam().args(&args).output().unwrap();
            let text = output_text(&out);
            assert!(!out.status.success(), "{text}");
            assert!(
                text.contains("stale") && text.contains("largest batch is 4, model.max_batch is 2"),
                "{args:?}: {text}"
            );
            assert!(
                text.contains(&format!("stylecam build-engine --config {}", cfg.display())),
                "{args:?}: {text}"
            );
            eprintln!("{args:?} → {}", text.lines().last().unwrap_or(""));
        }
    }

    #[test]
    fn the_lean_runtime_reports_its_version_and_fails_cleanly_without_a_gpu() {
        let Some(dir) = wheel_dir("lean") else {
            available("tensorrt-lean-cu13-libs (PyPI)", false);
            return;
        };
        let lib = Library::open_file(&dir.join("libnvinfer_lean.so.11")).unwrap();
        eprintln!(
            "lean runtime: {} version {}",
            lib.path.display(),
            lib.version_string()
        );
        assert_eq!(lib.version.0, 11, "{}", lib.version_string());
        if std::path::Path::new("/dev/nvidiactl").exists() || require_gpu() {
            // A GPU is here: the runtime must come up on it.
            lib.probe_runtime()
                .unwrap_or_else(|e| panic!("a GPU is here but the lean runtime fails: {e}"));
            eprintln!("lean runtime on this GPU: createInferRuntime works");
            return;
        }
        // Straight to createInferRuntime, past our CUDA probe: TensorRT
        // returns 0x228 here, which must end in an error, not a crash.
        let err = lib.probe_runtime().unwrap_err();
        eprintln!("lean runtime without a GPU: {err}");
        assert!(err.contains("createInferRuntime"), "{err}");
        // And the lean library cannot build engines.
        assert!(lib.create_builder_fn().is_err());
    }
}
