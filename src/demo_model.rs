//! Models our own code produces: a small residual CNN with seeded random
//! weights, used for the demo bundle (calibrated on the sample photos so
//! that its tags differ between them) and, with batch norm and more blocks,
//! as a ResNet-style model for checking the CPU backend against
//! onnxruntime. Nothing here is trained: the demo model's tags mean nothing.

use crate::bundle::onnx::{Attr, GraphBuilder};
use crate::bundle::{sha256_hex, write_manifest, BundleError, Manifest};
use crate::infer::{cpu::CpuBackend, Backend};
use crate::preprocess::{ResizeMode, Spec};
use crate::rng::Rng;
use crate::styles::Taxonomy;
use std::path::Path;

/// Shape of a generated CNN.
#[derive(Debug, Clone)]
pub struct CnnShape {
    pub input: u32,
    pub classes: usize,
    /// Channels of the stem and of each stage (each stage halves the size).
    pub widths: Vec<usize>,
    /// Residual blocks per stage.
    pub blocks: usize,
    /// Conv → BatchNormalization → Relu (as exported from PyTorch without folding).
    pub batch_norm: bool,
    /// A 3x3/2 MaxPool after the stem.
    pub max_pool: bool,
    /// Output the logits instead of sigmoid probabilities (for calibration).
    pub logits_out: bool,
}

impl CnnShape {
    /// The demo model: 3 stages, 1 block each, no batch norm.
    pub fn demo() -> Self {
        Self {
            input: 224,
            classes: 13,
            widths: vec![8, 16, 32],
            blocks: 1,
            batch_norm: false,
            max_pool: false,
            logits_out: false,
        }
    }

    /// A ResNet-style model with batch norm and max-pooling.
    pub fn resnet_style() -> Self {
        Self {
            input: 64,
            classes: 13,
            widths: vec![16, 24, 32, 48],
            blocks: 2,
            batch_norm: true,
            max_pool: true,
            logits_out: false,
        }
    }
}

struct Net<'a> {
    g: GraphBuilder,
    rng: &'a mut Rng,
    n: usize,
    batch_norm: bool,
}

impl Net<'_> {
    fn conv(
        &mut self,
        x: &str,
        cin: usize,
        cout: usize,
        k: i64,
        stride: i64,
        relu: bool,
    ) -> String {
        self.n += 1;
        let fan_in = (cin as i64 * k * k) as f32;
        let std = (2.0 / fan_in).sqrt();
        let w: Vec<f32> = (0..cout * cin * (k * k) as usize)
            .map(|_| self.rng.normal() * std)
            .collect();
        let b: Vec<f32> = (0..cout).map(|_| self.rng.normal() * 0.05).collect();
        let w = self.g.weight(
            &format!("conv{}.w", self.n),
            &[cout as i64, cin as i64, k, k],
            w,
        );
        let b = self
            .g
            .weight(&format!("conv{}.b", self.n), &[cout as i64], b);
        let p = k / 2;
        let mut y = self.g.node(
            "Conv",
            &[x, &w, &b],
            vec![
                ("kernel_shape", Attr::Ints(vec![k, k])),
                ("strides", Attr::Ints(vec![stride, stride])),
                ("pads", Attr::Ints(vec![p, p, p, p])),
            ],
            None,
        );
        if self.batch_norm {
            let mut v = |name: &str, f: &mut dyn FnMut(&mut Rng) -> f32| {
                let vals: Vec<f32> = (0..cout).map(|_| f(self.rng)).collect();
                self.g
                    .weight(&format!("bn{}.{name}", self.n), &[cout as i64], vals)
            };
            let scale = v("scale", &mut |r| 1.0 + 0.1 * r.normal());
            let bias = v("bias", &mut |r| 0.1 * r.normal());
            let mean = v("mean", &mut |r| 0.1 * r.normal());
            let var = v("var", &mut |r| 0.5 + r.uniform());
            y = self.g.node(
                "BatchNormalization",
                &[&y, &scale, &bias, &mean, &var],
                vec![("epsilon", Attr::Float(1e-5))],
                None,
            );
        }
        if relu {
            y = self.g.node("Relu", &[&y], vec![], None);
        }
        y
    }
}

/// Builds a CNN `images [N,3,S,S]` → `probs [N,C]` with seeded weights.
/// `head` overrides the final layer's weights (`C×F`) and bias (`C`).
pub fn cnn(seed: u64, shape: &CnnShape, head: Option<(&[f32], &[f32])>) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let s = shape.input as i64;
    let mut net = Net {
        g: GraphBuilder::new("stylecam-cnn"),
        rng: &mut rng,
        n: 0,
        batch_norm: shape.batch_norm,
    };
    let input = net.g.input("images", &[None, Some(3), Some(s), Some(s)]);
    let mut x = net.conv(&input, 3, shape.widths[0], 3, 2, true);
    if shape.max_pool {
        x = net.g.node(
            "MaxPool",
            &[&x],
            vec![
                ("kernel_shape", Attr::Ints(vec![3, 3])),
                ("strides", Attr::Ints(vec![2, 2])),
                ("pads", Attr::Ints(vec![1, 1, 1, 1])),
            ],
            None,
        );
    }
    let mut c = shape.widths[0];
    for &w in &shape.widths[1..] {
        x = net.conv(&x, c, w, 3, 2, true);
        c = w;
        for _ in 0..shape.blocks {
            let y = net.conv(&x, c, c, 3, 1, true);
            let y = net.conv(&y, c, c, 3, 1, false);
            let sum = net.g.node("Add", &[&x, &y], vec![], None);
            x = net.g.node("Relu", &[&sum], vec![], None);
        }
    }
    let pooled = net.g.node("GlobalAveragePool", &[&x], vec![], None);
    let flat = net
        .g
        .node("Flatten", &[&pooled], vec![("axis", Attr::Int(1))], None);
    let (hw, hb) = match head {
        Some((w, b)) => (w.to_vec(), b.to_vec()),
        None => {
            let std = (1.0 / c as f32).sqrt();
            (
                (0..shape.classes * c)
                    .map(|_| net.rng.normal() * std)
                    .collect(),
                vec![0.0; shape.classes],
            )
        }
    };
    let w = net
        .g
        .weight("head.w", &[shape.classes as i64, c as i64], hw);
    let b = net.g.weight("head.b", &[shape.classes as i64], hb);
    if shape.logits_out {
        net.g.node(
            "Gemm",
            &[&flat, &w, &b],
            vec![("transB", Attr::Int(1))],
            Some("probs"),
        );
    } else {
        let logits = net.g.node(
            "Gemm",
            &[&flat, &w, &b],
            vec![("transB", Attr::Int(1))],
            Some("logits"),
        );
        net.g.node("Sigmoid", &[&logits], vec![], Some("probs"));
    }
    net.g.output("probs", &[None, Some(shape.classes as i64)]);
    net.g.finish("stylecam")
}

/// The input spec of the demo bundle (ImageNet mean/std, centre crop).
pub fn demo_spec() -> Spec {
    Spec {
        width: 224,
        height: 224,
        resize: ResizeMode::ShorterSideCrop,
        mean: [0.485, 0.456, 0.406],
        std: [0.229, 0.224, 0.225],
    }
}

pub const DEMO_SEED: u64 = 2018;

/// Writes the demo bundle into `dir`. The head is calibrated on
/// `calibration` (preprocessed photos, CHW each) so that each class's logit
/// is centred between the photos with a spread of about ±2: the tags then
/// change when the photo changes.
pub fn write_demo_bundle(dir: &Path, calibration: &[Vec<f32>]) -> Result<(), BundleError> {
    let shape = CnnShape::demo();
    let c = shape.classes;
    let spec = demo_spec();
    let raw = cnn(
        DEMO_SEED,
        &CnnShape {
            logits_out: true,
            ..shape.clone()
        },
        None,
    );
    let fail = |e: crate::infer::InferError| BundleError::Invalid {
        path: dir.into(),
        problem: e.to_string(),
    };
    let mut backend = CpuBackend::from_bytes(&raw, [3, spec.height as usize, spec.width as usize])
        .map_err(fail)?;
    let mut z = vec![];
    for img in calibration {
        z.push(backend.infer(img, 1).map_err(fail)?);
    }
    let feat = *shape.widths.last().expect("widths");
    let mut w = head_weights(&raw);
    let mut b = vec![0.0; c];
    for a in 0..c {
        let vals: Vec<f32> = z.iter().map(|r| r[a]).collect();
        let mean = vals.iter().sum::<f32>() / vals.len() as f32;
        let spread = vals
            .iter()
            .map(|v| (v - mean).abs())
            .fold(0.0, f32::max)
            .max(1e-3);
        let s = 2.0 / spread;
        for f in 0..feat {
            w[a * feat + f] *= s;
        }
        b[a] = -s * mean;
    }
    let model = cnn(DEMO_SEED, &shape, Some((&w, &b)));
    std::fs::create_dir_all(dir).map_err(|source| BundleError::Io {
        path: dir.into(),
        source,
    })?;
    let onnx_path = dir.join("model.onnx");
    std::fs::write(&onnx_path, &model).map_err(|source| BundleError::Io {
        path: onnx_path,
        source,
    })?;
    let manifest = Manifest {
        name: "stylecam-demo".into(),
        version: "0.1.0".into(),
        onnx: "model.onnx".into(),
        sha256: sha256_hex(&model),
        input: demo_spec(),
        classes: Taxonomy::jd2018(),
        decision: None,
        cascade: None,
        detector: None,
    };
    write_manifest(dir, &manifest)
}

/// The head weights of a model `cnn` generated.
fn head_weights(bytes: &[u8]) -> Vec<f32> {
    use prost::Message;
    let model = tract_onnx::pb::ModelProto::decode(bytes).expect("we just encoded it");
    let graph = model.graph.expect("graph");
    graph
        .initializer
        .into_iter()
        .find(|t| t.name == "head.w")
        .expect("head.w")
        .float_data
}
