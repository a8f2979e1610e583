//! ONNX export: one backbone, or the fused ensemble the daemon runs
//! (all backbones reading the same `images` input, per-class fusion weights,
//! sigmoid output `probs`). Written with the prost types of `tract_onnx::pb`
//! through [`GraphBuilder`]; batch norm is folded on the way.

use burn::module::Module;

use super::backbones::Net;
pub use super::emit::Emitter;
use crate::bundle::onnx::{Attr, GraphBuilder};
use crate::bundle::{sha256_hex, write_manifest, BundleError, Manifest};
use crate::preprocess::Spec;
use crate::styles::{DecisionParams, Taxonomy};
use std::path::Path;

/// Emits `net` reading `input`; returns the logits `[N, C]` value name.
pub fn emit_logits(net: &Net, e: &mut Emitter, input: &str) -> String {
    let f = net.features.emit(e, input);
    let pooled = e.node("GlobalAveragePool", &[&f], vec![]);
    let flat = e.node("Flatten", &[&pooled], vec![("axis", Attr::Int(1))]);
    let w = net.head.weight.val();
    let [d_in, d_out] = w.dims();
    let w = e.constant(&[d_in as i64, d_out as i64], super::layers::values(w));
    let b = match &net.head.bias {
        Some(b) => super::layers::values(b.val()),
        None => vec![0.0; d_out],
    };
    let b = e.constant(&[d_out as i64], b);
    let mm = e.node("MatMul", &[&flat, &w], vec![]);
    e.node("Add", &[&mm, &b], vec![])
}

/// What the exported graph ends with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// Raw logits (export-fidelity checks).
    Logits,
    /// Sigmoid probabilities: the bundle contract's `probs`.
    Sigmoid,
    /// Softmax over classes (single-label models such as ImageNet ones).
    Softmax,
}

/// The fused ensemble: `probs = Σ_k w_k ⊙ sigmoid(logits_k)` with per-class
/// weights per backbone (each class's weights sum to 1). One backbone with
/// weight 1 is a plain single-model export.
pub fn export(nets: &[(&Net, Vec<f32>)], output: Output) -> Vec<u8> {
    assert!(!nets.is_empty(), "export needs at least one backbone");
    let size = nets[0].0.arch.input_size() as i64;
    let classes = nets[0].0.classes() as i64;
    let mut g = GraphBuilder::new("stylecam-ensemble");
    let input = g.input("images", &[None, Some(3), Some(size), Some(size)]);
    let out_name = match output {
        Output::Logits => "logits",
        _ => "probs",
    };
    let mut parts = Vec::new();
    for (k, (net, weights)) in nets.iter().enumerate() {
        assert_eq!(
            net.arch.input_size() as i64,
            size,
            "backbones share the input size"
        );
        assert_eq!(net.classes() as i64, classes, "backbones share the classes");
        let mut e = Emitter::new(&mut g, &format!("b{k}_"));
        let logits = emit_logits(net, &mut e, &input);
        let y = match output {
            Output::Logits => logits,
            Output::Sigmoid => e.node("Sigmoid", &[&logits], vec![]),
            Output::Softmax => e.node("Softmax", &[&logits], vec![("axis", Attr::Int(1))]),
        };
        if nets.len() == 1 {
            parts.push(y);
        } else {
            assert_eq!(weights.len() as i64, classes, "one fusion weight per class");
            let w = e.constant(&[1, classes], weights.clone());
            parts.push(e.node("Mul", &[&y, &w], vec![]));
        }
    }
    let mut acc = parts[0].clone();
    for (i, p) in parts.iter().enumerate().skip(1) {
        let name = format!("fuse{i}");
        acc = g.node("Add", &[&acc, p], vec![], Some(&name));
    }
    g.node("Identity", &[&acc], vec![], Some(out_name));
    g.output(out_name, &[None, Some(classes)]);
    g.finish("stylecam-train")
}

/// A single backbone exported on its own (`stylecam export`).
pub fn export_one(net: &Net, output: Output) -> Vec<u8> {
    let w = vec![1.0; net.classes()];
    export(&[(&net.valid(), w)], output)
}

/// A single-label (ImageNet) classifier read as a multi-label model over a
/// few of its classes: softmax over all its classes, then the columns
/// `picks`, in that order, as `probs [N, picks.len()]` (a one-hot MatMul,
/// exact in f32). The change-gate benchmark serves ImageNet's garment
/// classes this way, so the model responds to what a real camera sees.
pub fn export_class_subset(net: &Net, picks: &[usize]) -> Vec<u8> {
    let net = net.valid();
    let (size, classes) = (net.arch.input_size() as i64, net.classes());
    assert!(picks.iter().all(|&c| c < classes), "picked classes exist");
    let mut g = GraphBuilder::new("stylecam-class-subset");
    let input = g.input("images", &[None, Some(3), Some(size), Some(size)]);
    let mut e = Emitter::new(&mut g, "b0_");
    let logits = emit_logits(&net, &mut e, &input);
    let soft = e.node("Softmax", &[&logits], vec![("axis", Attr::Int(1))]);
    let mut select = vec![0.0; classes * picks.len()];
    for (j, &c) in picks.iter().enumerate() {
        select[c * picks.len() + j] = 1.0;
    }
    let select = e.constant(&[classes as i64, picks.len() as i64], select);
    let picked = e.node("MatMul", &[&soft, &select], vec![]);
    g.node("Identity", &[&picked], vec![], Some("probs"));
    g.output("probs", &[None, Some(picks.len() as i64)]);
    g.finish("stylecam-train")
}

/// Writes the fused ensemble of `nets` (per-class weights each) as a
/// complete bundle with the taxonomy `classes`.
pub fn write_bundle(
    dir: &Path,
    name: &str,
    nets: &[(&Net, Vec<f32>)],
    spec: &Spec,
    classes: &Taxonomy,
    decision: Option<DecisionParams>,
) -> Result<(), BundleError> {
    let onnx = export(nets, Output::Sigmoid);
    std::fs::create_dir_all(dir).map_err(|source| BundleError::Io {
        path: dir.into(),
        source,
    })?;
    let path = dir.join("model.onnx");
    std::fs::write(&path, &onnx).map_err(|source| BundleError::Io { path, source })?;
    let manifest = Manifest {
        name: name.into(),
        version: "0.1.0".into(),
        onnx: "model.onnx".into(),
        sha256: sha256_hex(&onnx),
        input: spec.clone(),
        classes: classes.clone(),
        decision,
        cascade: None,
        detector: None,
    };
    write_manifest(dir, &manifest)
}
