//! The onnx package's full-architecture test graphs (ResNet-50,
//! DenseNet-121, Inception-v2) load and run on the CPU backend and match
//! their shipped outputs. Their weights are constants, so the outputs are
//! uniform: this proves the graphs load and run, not numeric fidelity
//! (see `reference.rs` for that).

use crate::common::*;
use prost::Message;
use std::path::PathBuf;
use stylecam::bundle::onnx::io_shapes;
use stylecam::infer::{cpu::CpuBackend, Backend};

fn light_dir() -> Option<PathBuf> {
    if !available("python3 with the onnx package", python_has("onnx")) {
        return None;
    }
    Some(PathBuf::from(python("onnx_dir.py", &[]).trim()).join("backend/test/data/light"))
}

fn check(name: &str) {
    let Some(dir) = light_dir() else { return };
    let model = dir.join(format!("{name}.onnx"));
    let bytes = std::fs::read(&model).unwrap_or_else(|e| panic!("{}: {e}", model.display()));
    let io = io_shapes(&bytes).unwrap();
    let dims: Vec<usize> = io
        .input
        .iter()
        .map(|d| d.expect("static input shape") as usize)
        .collect();
    assert_eq!(dims.len(), 4, "{name} input {:?}", io.input);
    let mut backend = CpuBackend::load(&model, [dims[1], dims[2], dims[3]]).unwrap();
    // The onnx test runner's dummy input: arange(n)/n in the input's shape.
    let n: usize = dims.iter().product();
    let input: Vec<f32> = (0..n).map(|i| (i as f64 / n as f64) as f32).collect();
    let got = backend.infer(&input, dims[0]).unwrap();

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
    assert_eq!(got.len(), want.len(), "{name}: output size");
    let max = got
        .iter()
        .zip(&want)
        .map(|(g, w)| (g - w).abs() / (1e-7 + 1e-3 * w.abs()).max(1e-6))
        .fold(0.0, f32::max);
    let abs = got
        .iter()
        .zip(&want)
        .map(|(g, w)| (g - w).abs())
        .fold(0.0, f32::max);
    eprintln!(
        "{name}: {} outputs, max abs diff {abs:.3e} vs the shipped output",
        got.len()
    );
    // onnx's own runner: rtol 1e-3, atol 1e-7.
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-7 + 1e-3 * w.abs(),
            "{name}[{i}]: {g} vs {w} (worst ratio {max})"
        );
    }
}

#[test]
fn light_resnet50_matches_shipped_output() {
    check("light_resnet50");
}

#[test]
fn light_densenet121_matches_shipped_output() {
    check("light_densenet121");
}

#[test]
fn light_inception_v2_matches_shipped_output() {
    check("light_inception_v2");
}
