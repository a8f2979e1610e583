//! Export fidelity: what burn computes for a trained block is what tract
//! computes on the ONNX our exporter writes for it, block type by block
//! type, and for each whole backbone (burn vs tract vs onnxruntime).

use crate::common::*;
use burn::module::Module;
use burn::tensor::{Tensor, TensorData};
use stylecam::bundle::onnx::GraphBuilder;
use stylecam::infer::{cpu::CpuBackend, Backend};
use stylecam::rng::Rng;
use stylecam::train::export::{export, Emitter, Output};
use stylecam::train::layers::*;
use stylecam::train::{cpu, Arch, Family, Net};

fn random_input(shape: [usize; 4], seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..shape.iter().product::<usize>())
        .map(|_| rng.normal())
        .collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "output sizes differ");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// burn forward vs tract on the emitted ONNX for one block; returns the max
/// abs difference (and checks the outputs are not trivially constant).
fn check_block(name: &str, mut block: Seq, input: [usize; 4], tol: f32) -> f32 {
    perturb_norms(&mut block, 11);
    let block = block.valid();
    let device = cpu();
    let x = random_input(input, 3);
    let ours = block.forward(Tensor::from_data(
        TensorData::new(x.clone(), input),
        &device,
    ));
    let out_dims = ours.dims();
    let ours = values(ours);

    let mut g = GraphBuilder::new(name);
    let dims: Vec<Option<i64>> = input.iter().map(|&d| Some(d as i64)).collect();
    let inp = g.input("x", &dims);
    let mut e = Emitter::new(&mut g, "");
    let y = block.emit(&mut e, &inp);
    g.node("Identity", &[&y], vec![], Some("y"));
    let out: Vec<Option<i64>> = out_dims.iter().map(|&d| Some(d as i64)).collect();
    g.output("y", &out);
    let onnx = g.finish("test");

    let mut backend = CpuBackend::from_bytes(&onnx, [input[1], input[2], input[3]]).unwrap();
    let theirs = backend.infer(&x, input[0]).unwrap();
    let diff = max_diff(&ours, &theirs);
    let spread = ours.iter().cloned().fold(f32::MIN, f32::max)
        - ours.iter().cloned().fold(f32::MAX, f32::min);
    eprintln!(
        "{name}: output {out_dims:?}, max abs diff burn vs tract = {diff:.2e} (spread {spread:.2})"
    );
    assert!(spread > 0.1, "{name}: outputs barely vary ({spread})");
    assert!(
        diff <= tol,
        "{name}: burn and the exported ONNX differ by {diff} > {tol}"
    );
    diff
}

fn conv(s: ConvSpec, act: Act) -> Layer {
    ConvBn::new(s, act, &cpu()).into()
}

#[test]
fn conv_bn_relu_folds_batch_norm() {
    let block = Seq::of(vec![conv(ConvSpec::k(3, 8, 3, 2), Act::Relu)]);
    check_block("conv3x3/2+bn+relu", block, [1, 3, 17, 17], 1e-4);
    let block = Seq::of(vec![conv(
        ConvSpec::new(6, 5, [1, 7], 1).eps(1e-3),
        Act::Identity,
    )]);
    check_block("conv1x7+bn", block, [2, 6, 9, 9], 1e-4);
}

#[test]
fn depthwise_relu6_with_tf_same_padding() {
    let s = ConvSpec::k(8, 8, 5, 2).groups(8).tf_same().eps(1e-3);
    let block = Seq::of(vec![conv(s, Act::Relu6)]);
    check_block(
        "depthwise5x5/2 tf-same + relu6",
        block,
        [1, 8, 16, 16],
        1e-4,
    );
}

#[test]
fn pre_activation_norm_and_pools() {
    let d = cpu();
    let block = Seq::of(vec![
        NormAct::new(4, 1e-5, Act::Relu, &d).into(),
        Pool::max(3, 2, 1).into(),
        Pool::avg(3, 1, 1).into(),
        Pool::avg(2, 2, 0).into(),
    ]);
    check_block("bn+relu, maxpool, avgpool", block, [1, 4, 15, 15], 1e-5);
}

#[test]
fn concat_residual_and_dense_blocks() {
    let d = cpu();
    let concat = Seq::of(vec![Concat {
        branches: vec![
            Seq::of(vec![conv(ConvSpec::k(4, 3, 1, 1), Act::Relu)]),
            Seq::of(vec![Pool::max(3, 1, 1).into()]),
            Seq::of(vec![conv(ConvSpec::new(4, 2, [3, 1], 1), Act::Relu)]),
        ],
    }
    .into()]);
    check_block("concat (inception)", concat, [1, 4, 8, 8], 1e-4);

    let residual = Seq::of(vec![Residual {
        body: Seq::of(vec![
            conv(ConvSpec::k(4, 4, 1, 1), Act::Relu),
            conv(ConvSpec::k(4, 8, 3, 2), Act::Identity),
        ]),
        shortcut: Some(ConvBn::new(ConvSpec::k(4, 8, 1, 2), Act::Identity, &d)),
        act: Act::Relu,
    }
    .into()]);
    check_block("residual (bottleneck)", residual, [1, 4, 8, 8], 1e-4);

    let dense = Seq::of(vec![Dense {
        layers: (0..2)
            .map(|i| {
                let cin = 4 + 3 * i;
                Seq::of(vec![
                    NormAct::new(cin, 1e-5, Act::Relu, &d).into(),
                    conv(ConvSpec::k(cin, 6, 1, 1), Act::Relu),
                    ConvBn::plain(ConvSpec::k(6, 3, 3, 1), Act::Identity, &d).into(),
                ])
            })
            .collect(),
    }
    .into()]);
    check_block("dense block", dense, [1, 4, 6, 6], 1e-4);
}

#[test]
fn linear_head_and_fusion_weights() {
    // Two tiny backbones fused with per-class weights: burn's own fusion of
    // sigmoid outputs vs the exported graph.
    let d = cpu();
    let arch = Arch::tiny(Family::Resnet50);
    let mut nets: Vec<Net> = (0..2).map(|_| Net::new(arch, 5, &d)).collect();
    for n in &mut nets {
        perturb_norms(&mut n.features, 5);
    }
    let nets: Vec<Net> = nets.into_iter().map(|n| n.valid()).collect();
    let w0 = vec![0.2, 0.5, 0.8, 1.0, 0.0];
    let w1: Vec<f32> = w0.iter().map(|w| 1.0 - w).collect();
    let onnx = export(
        &[(&nets[0], w0.clone()), (&nets[1], w1.clone())],
        Output::Sigmoid,
    );
    let s = arch.input_size();
    let x = random_input([2, 3, s, s], 9);
    let t = Tensor::<4>::from_data(TensorData::new(x.clone(), [2, 3, s, s]), &d);
    let p0 = values(burn::tensor::activation::sigmoid(
        nets[0].forward(t.clone()),
    ));
    let p1 = values(burn::tensor::activation::sigmoid(nets[1].forward(t)));
    let ours: Vec<f32> = p0
        .iter()
        .zip(&p1)
        .enumerate()
        .map(|(i, (a, b))| a * w0[i % 5] + b * w1[i % 5])
        .collect();
    let mut backend = CpuBackend::from_bytes(&onnx, [3, s, s]).unwrap();
    let theirs = backend.infer(&x, 2).unwrap();
    let diff = max_diff(&ours, &theirs);
    eprintln!("fused 2×tiny_resnet50: max abs diff burn vs tract = {diff:.2e}");
    assert!(diff < 1e-5, "fusion differs by {diff}");
}

/// Whole backbones with random weights: burn vs tract vs onnxruntime.
fn check_backbone(arch: Arch, tol: f32) {
    let d = cpu();
    let mut net = Net::new(arch, 13, &d);
    perturb_norms(&mut net.features, 1);
    let net = net.valid();
    let s = arch.input_size();
    let x = random_input([1, 3, s, s], 2);
    let ours = values(net.forward(Tensor::from_data(
        TensorData::new(x.clone(), [1, 3, s, s]),
        &d,
    )));
    let onnx = export(&[(&net, vec![1.0; 13])], Output::Logits);
    let mut backend = CpuBackend::from_bytes(&onnx, [3, s, s]).unwrap();
    let tract = backend.infer(&x, 1).unwrap();
    let scale = ours.iter().map(|v| v.abs()).fold(0.0, f32::max);
    let d_tract = max_diff(&ours, &tract);
    let mut line = format!(
        "{arch}: ONNX {} KiB, |logits| ≤ {scale:.3}, burn vs tract {d_tract:.2e}",
        onnx.len() / 1024
    );
    assert!(
        d_tract <= tol * scale.max(1.0),
        "{arch}: burn vs tract {d_tract}"
    );
    if available("python3 with onnxruntime", python_has("onnxruntime, numpy")) {
        let dir = tempfile::tempdir().unwrap();
        let (m, i, o) = (
            dir.path().join("m.onnx"),
            dir.path().join("x.f32"),
            dir.path().join("y.f32"),
        );
        std::fs::write(&m, &onnx).unwrap();
        write_f32(&i, &x);
        let shape = format!("1,3,{s},{s}");
        python(
            "ort_run.py",
            &[
                m.to_str().unwrap(),
                i.to_str().unwrap(),
                &shape,
                o.to_str().unwrap(),
            ],
        );
        let ort = read_f32(&o);
        let d_ort = max_diff(&ours, &ort);
        line += &format!(
            ", burn vs onnxruntime {d_ort:.2e}, tract vs onnxruntime {:.2e}",
            max_diff(&tract, &ort)
        );
        assert!(
            d_ort <= tol * scale.max(1.0),
            "{arch}: burn vs onnxruntime {d_ort}"
        );
    }
    eprintln!("{line}");
    assert!(scale > 1e-3, "{arch}: logits are all ~0");
}

#[test]
fn tiny_backbones_export_faithfully() {
    for family in Arch::ALL {
        check_backbone(Arch::tiny(family), 1e-4);
    }
}

#[test]
fn full_backbones_export_faithfully() {
    for family in Arch::ALL {
        check_backbone(Arch::full(family), 1e-3);
    }
}
