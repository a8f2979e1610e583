//! The block types every backbone is built from. Each one has a burn forward
//! (what training computes) and an ONNX emitter (what the daemon runs); the
//! export-fidelity tests check the two agree block by block.
//!
//! Batch norm that follows a convolution is folded into it on export; batch
//! norm that comes first (DenseNet's pre-activation) becomes a per-channel
//! `Mul` + `Add`.

use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::tensor::activation::{relu, relu6};
use burn::tensor::module::{avg_pool2d, max_pool2d};
use burn::tensor::ops::{AvgPoolOptions, MaxPoolOptions};
use burn::tensor::{Device, Tensor};

use super::emit::Emitter;
use crate::bundle::onnx::Attr;

/// What follows a convolution (or a pre-activation norm).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Act {
    #[default]
    Identity,
    Relu,
    /// min(max(x, 0), 6): EfficientNet-Lite.
    Relu6,
}

impl Act {
    pub fn apply(self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Act::Identity => x,
            Act::Relu => relu(x),
            Act::Relu6 => relu6(x),
        }
    }

    pub fn emit(self, e: &mut Emitter, x: String) -> String {
        match self {
            Act::Identity => x,
            Act::Relu => e.node("Relu", &[&x], vec![]),
            Act::Relu6 => {
                let lo = e.constant(&[], vec![0.0]);
                let hi = e.constant(&[], vec![6.0]);
                e.node("Clip", &[&x, &lo, &hi], vec![])
            }
        }
    }
}

/// The shape of one convolution: kernel, stride, explicit padding
/// (top, left, bottom, right), groups and the batch-norm epsilon.
#[derive(Clone, Copy, Debug)]
pub struct ConvSpec {
    pub cin: usize,
    pub cout: usize,
    pub kernel: [usize; 2],
    pub stride: usize,
    pub pads: [usize; 4],
    pub groups: usize,
    pub eps: f64,
}

impl ConvSpec {
    /// Symmetric "keep the size at stride 1" padding (k/2), as in torchvision.
    pub fn new(cin: usize, cout: usize, kernel: [usize; 2], stride: usize) -> Self {
        let (ph, pw) = (kernel[0] / 2, kernel[1] / 2);
        Self {
            cin,
            cout,
            kernel,
            stride,
            pads: [ph, pw, ph, pw],
            groups: 1,
            eps: 1e-5,
        }
    }

    pub fn k(cin: usize, cout: usize, k: usize, stride: usize) -> Self {
        Self::new(cin, cout, [k, k], stride)
    }

    /// No padding ("valid").
    pub fn valid(mut self) -> Self {
        self.pads = [0; 4];
        self
    }

    /// TensorFlow "SAME" padding for an even input size: at stride 2 the
    /// extra pixel goes bottom/right (EfficientNet weights converted from TF).
    pub fn tf_same(mut self) -> Self {
        let pad = |k: usize| -> (usize, usize) {
            let total = if self.stride == 1 {
                k - 1
            } else {
                k.saturating_sub(self.stride)
            };
            (total / 2, total - total / 2)
        };
        let (t, b) = pad(self.kernel[0]);
        let (l, r) = pad(self.kernel[1]);
        self.pads = [t, l, b, r];
        self
    }

    pub fn groups(mut self, groups: usize) -> Self {
        self.groups = groups;
        self
    }

    pub fn eps(mut self, eps: f64) -> Self {
        self.eps = eps;
        self
    }
}

/// Convolution (no bias) + optional batch norm + activation.
#[derive(Module, Debug)]
pub struct ConvBn {
    pub conv: Conv2d,
    pub bn: Option<BatchNorm>,
    #[module(skip)]
    pub act: Act,
    #[module(skip)]
    pub pads: [usize; 4],
}

impl ConvBn {
    pub fn new(s: ConvSpec, act: Act, device: &Device) -> Self {
        Self::build(s, true, act, device)
    }

    /// A convolution with no batch norm after it (DenseNet's 3×3).
    pub fn plain(s: ConvSpec, act: Act, device: &Device) -> Self {
        Self::build(s, false, act, device)
    }

    fn build(s: ConvSpec, bn: bool, act: Act, device: &Device) -> Self {
        let [t, l, b, r] = s.pads;
        let conv = Conv2dConfig::new([s.cin, s.cout], s.kernel)
            .with_stride([s.stride, s.stride])
            .with_groups(s.groups)
            .with_bias(false)
            .with_padding(PaddingConfig2d::Explicit(t, l, b, r))
            .init(device);
        let bn = bn.then(|| {
            BatchNormConfig::new(s.cout)
                .with_epsilon(s.eps)
                .init(device)
        });
        Self {
            conv,
            bn,
            act,
            pads: s.pads,
        }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut y = self.conv.forward(x);
        if let Some(bn) = &self.bn {
            y = bn.forward(y);
        }
        self.act.apply(y)
    }

    pub fn out_channels(&self) -> usize {
        self.conv.weight.dims()[0]
    }

    pub fn emit(&self, e: &mut Emitter, x: &str) -> String {
        let dims = self.conv.weight.dims();
        let mut w = values(self.conv.weight.val());
        let mut bias = match &self.conv.bias {
            Some(b) => values(b.val()),
            None => vec![0.0; dims[0]],
        };
        if let Some(bn) = &self.bn {
            let (scale, shift) = bn_affine(bn);
            let per_out = w.len() / dims[0];
            for (o, chunk) in w.chunks_mut(per_out).enumerate() {
                chunk.iter_mut().for_each(|v| *v *= scale[o]);
                bias[o] = bias[o] * scale[o] + shift[o];
            }
        }
        let dims_i64: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
        let w = e.constant(&dims_i64, w);
        let b = e.constant(&[dims[0] as i64], bias);
        let stride = self.conv.stride.map(|s| s as i64).to_vec();
        let y = e.node(
            "Conv",
            &[x, &w, &b],
            vec![
                (
                    "kernel_shape",
                    Attr::Ints(vec![dims[2] as i64, dims[3] as i64]),
                ),
                ("strides", Attr::Ints(stride)),
                (
                    "pads",
                    Attr::Ints(self.pads.iter().map(|&p| p as i64).collect()),
                ),
                ("group", Attr::Int(self.conv.groups as i64)),
            ],
        );
        self.act.emit(e, y)
    }
}

/// Per-channel (scale, shift) that a batch norm in inference mode applies.
pub fn bn_affine(bn: &BatchNorm) -> (Vec<f32>, Vec<f32>) {
    let gamma = values(bn.gamma.val());
    let beta = values(bn.beta.val());
    let mean = values(bn.running_mean.value());
    let var = values(bn.running_var.value());
    let scale: Vec<f32> = gamma
        .iter()
        .zip(&var)
        .map(|(g, v)| g / (v + bn.epsilon as f32).sqrt())
        .collect();
    let shift = beta
        .iter()
        .zip(&mean)
        .zip(&scale)
        .map(|((b, m), s)| b - m * s)
        .collect();
    (scale, shift)
}

/// Batch norm + activation before a convolution (DenseNet).
#[derive(Module, Debug)]
pub struct NormAct {
    pub bn: BatchNorm,
    #[module(skip)]
    pub act: Act,
}

impl NormAct {
    pub fn new(channels: usize, eps: f64, act: Act, device: &Device) -> Self {
        Self {
            bn: BatchNormConfig::new(channels)
                .with_epsilon(eps)
                .init(device),
            act,
        }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.act.apply(self.bn.forward(x))
    }

    pub fn emit(&self, e: &mut Emitter, x: &str) -> String {
        let (scale, shift) = bn_affine(&self.bn);
        let c = scale.len() as i64;
        let s = e.constant(&[1, c, 1, 1], scale);
        let t = e.constant(&[1, c, 1, 1], shift);
        let y = e.node("Mul", &[x, &s], vec![]);
        let y = e.node("Add", &[&y, &t], vec![]);
        self.act.emit(e, y)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolKind {
    Max,
    /// Average over the window; padding is not counted (timm's Inception).
    Avg,
}

/// Max or average pooling with explicit symmetric padding.
#[derive(Module, Debug)]
pub struct Pool {
    #[module(skip)]
    pub kind: PoolKind,
    #[module(skip)]
    pub kernel: usize,
    #[module(skip)]
    pub stride: usize,
    #[module(skip)]
    pub pad: usize,
}

impl Pool {
    pub fn max(kernel: usize, stride: usize, pad: usize) -> Self {
        Self {
            kind: PoolKind::Max,
            kernel,
            stride,
            pad,
        }
    }

    pub fn avg(kernel: usize, stride: usize, pad: usize) -> Self {
        Self {
            kind: PoolKind::Avg,
            kernel,
            stride,
            pad,
        }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let (k, s, p) = (self.kernel, self.stride, self.pad);
        match self.kind {
            PoolKind::Max => max_pool2d(
                x,
                MaxPoolOptions::new([k, k])
                    .with_stride([s, s])
                    .with_padding([p, p]),
            ),
            PoolKind::Avg => avg_pool2d(
                x,
                AvgPoolOptions::new([k, k])
                    .with_stride([s, s])
                    .with_padding([p, p])
                    .with_count_include_pad(false),
            ),
        }
    }

    pub fn emit(&self, e: &mut Emitter, x: &str) -> String {
        let (k, s, p) = (self.kernel as i64, self.stride as i64, self.pad as i64);
        let mut attrs = vec![
            ("kernel_shape", Attr::Ints(vec![k, k])),
            ("strides", Attr::Ints(vec![s, s])),
            ("pads", Attr::Ints(vec![p, p, p, p])),
        ];
        match self.kind {
            PoolKind::Max => e.node("MaxPool", &[x], attrs),
            PoolKind::Avg => {
                attrs.push(("count_include_pad", Attr::Int(0)));
                e.node("AveragePool", &[x], attrs)
            }
        }
    }
}

/// Branches that all read the same input; outputs concatenated on channels
/// (Inception).
#[derive(Module, Debug)]
pub struct Concat {
    pub branches: Vec<Seq>,
}

/// `act(body(x) + shortcut(x))`; the shortcut is the identity when `None`
/// (ResNet bottleneck, EfficientNet's MBConv with `act = Identity`).
#[derive(Module, Debug)]
pub struct Residual {
    pub body: Seq,
    pub shortcut: Option<ConvBn>,
    #[module(skip)]
    pub act: Act,
}

/// Dense connectivity: each layer reads the concatenation of the input and
/// every earlier layer's output, and the block returns all of them (DenseNet).
#[derive(Module, Debug)]
pub struct Dense {
    pub layers: Vec<Seq>,
}

/// One step of a backbone.
#[derive(Module, Debug)]
pub enum Layer {
    Conv(ConvBn),
    Norm(NormAct),
    Pool(Pool),
    Concat(Concat),
    Residual(Residual),
    Dense(Dense),
}

/// Layers applied in order.
#[derive(Module, Debug, Default)]
pub struct Seq {
    pub layers: Vec<Layer>,
}

impl Seq {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn of(layers: Vec<Layer>) -> Self {
        Self { layers }
    }

    pub fn push(&mut self, layer: impl Into<Layer>) -> &mut Self {
        self.layers.push(layer.into());
        self
    }

    pub fn forward(&self, mut x: Tensor<4>) -> Tensor<4> {
        for layer in &self.layers {
            x = layer.forward(x);
        }
        x
    }

    pub fn emit(&self, e: &mut Emitter, x: &str) -> String {
        let mut y = x.to_string();
        for layer in &self.layers {
            y = layer.emit(e, &y);
        }
        y
    }

    /// Every layer with weights in forward order (a residual's body before
    /// its shortcut): what a weight import walks.
    pub fn units_mut(&mut self) -> Vec<Unit<'_>> {
        let mut out = Vec::new();
        for layer in &mut self.layers {
            layer.collect_units(&mut out);
        }
        out
    }
}

/// A layer with weights: a conv (with its batch norm, if any) or a
/// standalone (pre-activation) batch norm.
pub enum Unit<'a> {
    Conv(&'a mut ConvBn),
    Norm(&'a mut NormAct),
}

impl Layer {
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Layer::Conv(c) => c.forward(x),
            Layer::Norm(n) => n.forward(x),
            Layer::Pool(p) => p.forward(x),
            Layer::Concat(c) => {
                let outs: Vec<_> = c.branches.iter().map(|b| b.forward(x.clone())).collect();
                Tensor::cat(outs, 1)
            }
            Layer::Residual(r) => {
                let short = match &r.shortcut {
                    Some(s) => s.forward(x.clone()),
                    None => x.clone(),
                };
                r.act.apply(r.body.forward(x) + short)
            }
            Layer::Dense(d) => {
                let mut feats = x;
                for layer in &d.layers {
                    let y = layer.forward(feats.clone());
                    feats = Tensor::cat(vec![feats, y], 1);
                }
                feats
            }
        }
    }

    pub fn emit(&self, e: &mut Emitter, x: &str) -> String {
        match self {
            Layer::Conv(c) => c.emit(e, x),
            Layer::Norm(n) => n.emit(e, x),
            Layer::Pool(p) => p.emit(e, x),
            Layer::Concat(c) => {
                let outs: Vec<String> = c.branches.iter().map(|b| b.emit(e, x)).collect();
                let refs: Vec<&str> = outs.iter().map(String::as_str).collect();
                e.node("Concat", &refs, vec![("axis", Attr::Int(1))])
            }
            Layer::Residual(r) => {
                let body = r.body.emit(e, x);
                let short = match &r.shortcut {
                    Some(s) => s.emit(e, x),
                    None => x.to_string(),
                };
                let sum = e.node("Add", &[&body, &short], vec![]);
                r.act.emit(e, sum)
            }
            Layer::Dense(d) => {
                let mut feats = x.to_string();
                for layer in &d.layers {
                    let y = layer.emit(e, &feats);
                    feats = e.node("Concat", &[&feats, &y], vec![("axis", Attr::Int(1))]);
                }
                feats
            }
        }
    }

    fn collect_units<'a>(&'a mut self, out: &mut Vec<Unit<'a>>) {
        let seqs: Vec<&'a mut Seq> = match self {
            Layer::Conv(c) => return out.push(Unit::Conv(c)),
            Layer::Norm(n) => return out.push(Unit::Norm(n)),
            Layer::Pool(_) => return,
            Layer::Concat(c) => c.branches.iter_mut().collect(),
            Layer::Residual(r) => {
                r.body.layers.iter_mut().for_each(|l| l.collect_units(out));
                out.extend(r.shortcut.as_mut().map(Unit::Conv));
                return;
            }
            Layer::Dense(d) => d.layers.iter_mut().collect(),
        };
        for s in seqs {
            s.layers.iter_mut().for_each(|l| l.collect_units(out));
        }
    }
}

impl From<ConvBn> for Layer {
    fn from(c: ConvBn) -> Self {
        Layer::Conv(c)
    }
}
impl From<NormAct> for Layer {
    fn from(n: NormAct) -> Self {
        Layer::Norm(n)
    }
}
impl From<Pool> for Layer {
    fn from(p: Pool) -> Self {
        Layer::Pool(p)
    }
}
impl From<Concat> for Layer {
    fn from(c: Concat) -> Self {
        Layer::Concat(c)
    }
}
impl From<Residual> for Layer {
    fn from(r: Residual) -> Self {
        Layer::Residual(r)
    }
}
impl From<Dense> for Layer {
    fn from(d: Dense) -> Self {
        Layer::Dense(d)
    }
}

/// The f32 values of a tensor, row-major.
pub fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .expect("f32 tensor")
}

/// Replaces a parameter's value, keeping its id (so optimiser state and
/// records still match).
pub fn set_param<const D: usize>(p: &mut Param<Tensor<D>>, value: Tensor<D>) {
    let id = p.id;
    *p = Param::initialized(id, value);
}

impl Seq {
    /// Every batch norm, in forward order: a conv's and the standalone ones.
    pub fn norms_mut(&mut self) -> Vec<&mut BatchNorm> {
        self.units_mut()
            .into_iter()
            .filter_map(|u| match u {
                Unit::Conv(c) => c.bn.as_mut(),
                Unit::Norm(n) => Some(&mut n.bn),
            })
            .collect()
    }
}

/// Gives every batch norm non-trivial statistics and affine parameters
/// (as after training), so that export checks exercise the folding.
pub fn perturb_norms(seq: &mut Seq, seed: u64) {
    let mut rng = crate::rng::Rng::new(seed);
    for bn in seq.norms_mut() {
        let n = bn.gamma.dims()[0];
        let device = bn.gamma.device();
        let mut draw = |lo: f64, hi: f64| -> Tensor<1> {
            let v: Vec<f32> = (0..n)
                .map(|_| (lo + (hi - lo) * rng.uniform() as f64) as f32)
                .collect();
            Tensor::from_data(burn::tensor::TensorData::new(v, [n]), &device)
        };
        let (g, b, m, v) = (
            draw(0.5, 1.5),
            draw(-0.3, 0.3),
            draw(-0.2, 0.2),
            draw(0.5, 2.0),
        );
        set_param(&mut bn.gamma, g);
        set_param(&mut bn.beta, b);
        bn.running_mean = burn::module::RunningState::new(m);
        bn.running_var = burn::module::RunningState::new(v);
    }
}
