//! One suite for every backend (STYLE.md 8): each test runs on every
//! backend that probes usable here, through `&mut dyn Backend`, with that
//! backend's tolerance, and prints its max differences.
//!
//! - cpu (tract): always.
//! - onnxruntime: the library of the PyPI wheel (tests/ref/requirements.txt),
//!   or ORT_DYLIB_PATH; required under REQUIRE_REFERENCE_CHECKS=1.
//! - tensorrt: where its probe passes (a GPU with TensorRT and the
//!   `tensorrt` feature: each graph is built for that GPU first); else the
//!   probe's reason is printed. No session has had one yet.

use crate::common::*;
use prost::Message;
use std::path::{Path, PathBuf};
use stylecam::bundle::onnx::io_shapes;
use stylecam::demo_model::{cnn, CnnShape};
use stylecam::infer::{
    self, cpu::CpuBackend, onnxruntime::OrtBackend, Backend, BackendKind, InferError, Options,
};
use stylecam::rng::Rng;

/// Opens a backend on an ONNX file with a `[3,H,W]` input.
type Opener = Box<dyn Fn(&Path, [usize; 3]) -> Result<Box<dyn Backend>, InferError>>;

/// A backend under test: how to open it on a model, and how close to the
/// reference it must come (max abs difference of probabilities/outputs).
struct Under {
    name: &'static str,
    tolerance: f32,
    open: Opener,
}

/// The PyPI wheel's libonnxruntime, or ORT_DYLIB_PATH.
pub(crate) fn ort_library() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        return Some(p.into());
    }
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import glob, os, onnxruntime as o; print(sorted(glob.glob(os.path.join(os.path.dirname(o.__file__), 'capi', 'libonnxruntime.so*')))[-1])",
        ])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

fn backends() -> Vec<Under> {
    let mut out = vec![Under {
        name: "cpu",
        tolerance: 1e-4,
        open: Box::new(|p, s| Ok(Box::new(CpuBackend::load(p, s)?))),
    }];
    let lib = ort_library();
    let probe = infer::probe(&Options {
        onnxruntime_library: lib.clone(),
        ..Options::new(BackendKind::Onnxruntime)
    });
    match &probe {
        Ok(found) => eprintln!("onnxruntime: {found}"),
        Err(e) => eprintln!("onnxruntime: {e}"),
    }
    if available(
        "libonnxruntime (pip install onnxruntime, or ORT_DYLIB_PATH)",
        probe.is_ok(),
    ) {
        out.push(Under {
            name: "onnxruntime",
            tolerance: 1e-4,
            open: Box::new(move |p, s| Ok(Box::new(OrtBackend::load(p, s, 0, lib.as_deref())?))),
        });
    }
    match infer::probe(&Options::new(BackendKind::Tensorrt)) {
        #[cfg(feature = "tensorrt")]
        Ok(found) => {
            // A GPU and TensorRT: each graph is built for this GPU (FP32,
            // cached in the temp folder) and run through the same contract.
            eprintln!("tensorrt: {found}");
            out.push(Under {
                name: "tensorrt",
                tolerance: 1e-3,
                open: Box::new(|p, _| {
                    let opts = Options {
                        engines: std::env::temp_dir().join("stylecam-suite-engines"),
                        ..Options::new(BackendKind::Tensorrt)
                    };
                    Ok(Box::new(
                        stylecam::infer::tensorrt::TensorRtBackend::for_graph(p, 4, &opts)?,
                    ))
                }),
            });
        }
        #[cfg(not(feature = "tensorrt"))]
        Ok(found) => panic!("tensorrt probes usable ({found}) in a build without the feature"),
        Err(e) => {
            // Where a GPU is required (the device check), a missing
            // TensorRT is a failure, not a smaller suite.
            assert!(
                !require_gpu(),
                "REQUIRE_GPU=1 but the TensorRT backend cannot run here: {e}"
            );
            eprintln!("tensorrt: not in this run ({e})")
        }
    }
    out
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    worst(a, b).0
}

/// The largest difference and where: (diff, index, a, b).
fn worst(a: &[f32], b: &[f32]) -> (f32, usize, f32, f32) {
    assert_eq!(a.len(), b.len(), "output sizes differ");
    a.iter()
        .zip(b)
        .enumerate()
        .map(|(i, (x, y))| ((x - y).abs(), i, *x, *y))
        .fold((0.0, 0, 0.0, 0.0), |m, d| if d.0 > m.0 { d } else { m })
}

fn random_input(n: usize, sample: [usize; 3], seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..n * sample.iter().product::<usize>())
        .map(|_| rng.normal())
        .collect()
}

/// Python onnxruntime's output for `input` (the reference).
fn reference(model: &Path, input: &[f32], n: usize, sample: [usize; 3]) -> Vec<f32> {
    let dir = tempfile::tempdir().unwrap();
    let (inp, out) = (dir.path().join("in.f32"), dir.path().join("out.f32"));
    write_f32(&inp, input);
    let shape = format!("{n},{},{},{}", sample[0], sample[1], sample[2]);
    python(
        "ort_run.py",
        &[
            model.to_str().unwrap(),
            inp.to_str().unwrap(),
            &shape,
            out.to_str().unwrap(),
        ],
    );
    read_f32(&out)
}

fn python_ort() -> bool {
    available(
        "python3 with onnxruntime and numpy",
        python_has("onnxruntime, numpy"),
    )
}

#[test]
fn backend_suite_onnx_light_graphs_match_their_shipped_outputs() {
    if !available("python3 with the onnx package", python_has("onnx")) {
        return;
    }
    let dir = PathBuf::from(python("onnx_dir.py", &[]).trim()).join("backend/test/data/light");
    let backends = backends();
    for name in ["light_resnet50", "light_densenet121", "light_inception_v2"] {
        let model = dir.join(format!("{name}.onnx"));
        let io = io_shapes(&std::fs::read(&model).unwrap()).unwrap();
        let dims: Vec<usize> = io.input.iter().map(|d| d.unwrap() as usize).collect();
        let sample = [dims[1], dims[2], dims[3]];
        // The onnx test runner's input: arange(n)/n in the input's shape.
        let total: usize = dims.iter().product();
        let input: Vec<f32> = (0..total)
            .map(|i| (i as f64 / total as f64) as f32)
            .collect();
        let pb = std::fs::read(dir.join(format!("{name}_output_0.pb"))).unwrap();
        let t = tract_onnx::pb::TensorProto::decode(pb.as_slice()).unwrap();
        let want: Vec<f32> = if t.raw_data.is_empty() {
            t.float_data.clone()
        } else {
            t.raw_data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect()
        };
        for b in &backends {
            let mut backend = (b.open)(&model, sample).unwrap();
            let got = backend.infer(&input, dims[0]).unwrap();
            let diff = max_diff(&got, &want);
            eprintln!(
                "{:<12} {name}: {} outputs, max abs diff {diff:.2e} vs the shipped output",
                b.name,
                got.len()
            );
            // onnx's own runner: rtol 1e-3, atol 1e-7.
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (g - w).abs() <= 1e-7 + 1e-3 * w.abs(),
                    "{} {name}[{i}]: {g} vs {w}",
                    b.name
                );
            }
        }
    }
}

#[test]
fn backend_suite_random_weight_models_and_the_demo_bundle_match_onnxruntime() {
    if !python_ort() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let resnet = dir.path().join("resnet_style.onnx");
    let shape = CnnShape::resnet_style();
    std::fs::write(&resnet, cnn(11, &shape, None)).unwrap();
    let s = shape.input as usize;
    let demo = repo().join("assets/demo-bundle/model.onnx");
    // The demo bundle's head is rescaled so that its logits spread ±2
    // between two photos whose features differ little: it multiplies
    // feature-level rounding differences (~1e-6 relative) into ~1e-3 on a
    // logit for inputs far from the photos, such as random ones. Its
    // tolerance is therefore 10× the backend's.
    let cases: [(&str, &Path, [usize; 3], usize, f32); 3] = [
        ("resnet-style, random weights", &resnet, [3, s, s], 2, 1.0),
        ("demo bundle", &demo, [3, 224, 224], 1, 10.0),
        ("demo bundle", &demo, [3, 224, 224], 5, 10.0),
    ];
    let backends = backends();
    for (what, model, sample, n, scale) in cases {
        let input = random_input(n, sample, 7 + n as u64);
        let want = reference(model, &input, n, sample);
        let spread = want.iter().cloned().fold(f32::MIN, f32::max)
            - want.iter().cloned().fold(f32::MAX, f32::min);
        assert!(
            spread > 0.05,
            "{what}: outputs barely vary ({spread}); the comparison would prove little"
        );
        for b in &backends {
            let mut backend = (b.open)(model, sample).unwrap();
            let got = backend.infer(&input, n).unwrap();
            let (diff, at, ours, theirs) = worst(&got, &want);
            eprintln!(
                "{:<12} {what}, batch {n}: max abs diff {diff:.2e} vs Python onnxruntime (output {at}: {ours} vs {theirs}; tolerance {:.0e})",
                b.name,
                b.tolerance * scale
            );
            assert!(diff <= b.tolerance * scale, "{} {what}: {diff}", b.name);
        }
    }
}

/// Batch N gives each sample the result it gets alone (no cross-talk
/// between slots), up to N = the backend's limit and past it in chunks.
#[test]
fn backend_suite_batch_n_equals_n_batches_of_one() {
    let demo = repo().join("assets/demo-bundle/model.onnx");
    let sample = [3, 224, 224];
    for b in &backends() {
        let mut backend = (b.open)(&demo, sample).unwrap();
        let limits = backend.limits();
        assert!(limits.max >= 1 && limits.preferred >= 1 && limits.preferred <= limits.max);
        assert_eq!(backend.classes(), 13);
        let n = 6;
        let input = random_input(n, sample, 3);
        let batched = backend.infer(&input, n).unwrap();
        let per = backend.sample_len();
        let mut worst = 0f32;
        for i in 0..n {
            let one = backend.infer(&input[i * per..(i + 1) * per], 1).unwrap();
            worst = worst.max(max_diff(&one, &batched[i * 13..(i + 1) * 13]));
        }
        eprintln!(
            "{:<12} batch {n} vs 1: max abs diff {worst:.2e} (limits {limits:?})",
            b.name
        );
        assert!(worst <= b.tolerance, "{}: {worst}", b.name);
        // A slot filled in place runs like one filled by copy.
        match backend.slot(0) {
            infer::Slot::Host(s) => s.copy_from_slice(&input[..per]),
            infer::Slot::Device(_) => panic!("{}: host backends hand out host slots", b.name),
        }
        let in_place = backend.run(1).unwrap().to_vec();
        assert!(max_diff(&in_place, &batched[..13]) <= b.tolerance);
    }
}

#[test]
fn backend_suite_wrong_shapes_are_errors_not_panics() {
    let demo = repo().join("assets/demo-bundle/model.onnx");
    for b in &backends() {
        let mut backend = (b.open)(&demo, [3, 224, 224]).unwrap();
        let per = backend.sample_len();
        let max = backend.limits().max;
        let short = backend.write(0, &vec![0.0; per - 1]).unwrap_err();
        assert!(
            matches!(short, InferError::Shape { .. }),
            "{}: {short}",
            b.name
        );
        let past = backend.write(max, &vec![0.0; per]).unwrap_err();
        assert!(
            matches!(past, InferError::Batch { .. }),
            "{}: {past}",
            b.name
        );
        for n in [0, max + 1] {
            let e = backend.run(n).unwrap_err();
            assert!(
                matches!(e, InferError::Batch { .. }),
                "{} run({n}): {e}",
                b.name
            );
        }
        let e = backend.infer(&vec![0.0; per + 1], 1).unwrap_err();
        assert!(e.to_string().contains("values"), "{}: {e}", b.name);
        // A model whose input is not the size the bundle states.
        let e = (b.open)(&demo, [3, 200, 200])
            .err()
            .expect("wrong input size loads");
        eprintln!("{:<12} wrong input size: {e}", b.name);
        assert!(
            matches!(e, InferError::Load { .. }) && e.to_string().contains("224"),
            "{}: {e}",
            b.name
        );
        // Still usable after the errors.
        assert_eq!(backend.infer(&vec![0.0; per], 1).unwrap().len(), 13);
    }
}

#[test]
fn backend_suite_corrupt_model_is_a_load_error() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(repo().join("assets/demo-bundle/model.onnx")).unwrap();
    let truncated = dir.path().join("truncated.onnx");
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    let garbage = dir.path().join("garbage.onnx");
    std::fs::write(&garbage, b"this is not an ONNX model").unwrap();
    for b in &backends() {
        for model in [&truncated, &garbage] {
            let e = (b.open)(model, [3, 224, 224])
                .err()
                .expect("a corrupt model loads");
            eprintln!("{:<12} {}: {e}", b.name, model.display());
            assert!(matches!(e, InferError::Load { .. }), "{}: {e}", b.name);
            assert!(
                e.to_string().contains(model.to_str().unwrap()),
                "{}: {e}",
                b.name
            );
        }
    }
}
