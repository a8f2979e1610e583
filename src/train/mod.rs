//! The trainer: backbones written in burn (trained on its pure-Rust `flex`
//! CPU backend here, burn's CUDA backend on an admin's desktop), and our own
//! ONNX export of what was trained, so that the daemon's CPU or TensorRT
//! backend runs exactly the trained computation.
//!
//! Contract: every block type in [`layers`] has a burn `forward` and an ONNX
//! `emit`; [`export::export`] turns one or several [`backbones::Net`]s into
//! the bundle's `model.onnx` (input `images [N,3,H,W]`, output `probs [N,C]`).

pub mod ablation;
pub mod augment;
pub mod backbones;
pub mod checkpoint;
pub mod data;
pub mod emit;
pub mod export;
pub mod fashion_mnist;
pub mod fit;
pub mod import;
pub mod layers;
pub mod plot;
pub mod recipe;
pub mod run;
pub mod sampler;
pub mod synthetic;

pub use backbones::{Arch, Family, Net};

/// burn's pure-Rust `flex` CPU backend (tests, this machine).
pub fn cpu() -> burn::tensor::Device {
    burn::tensor::Device::flex()
}

/// The device training runs on: GPU 0 through burn's CUDA backend when built
/// with `--features train-cuda` (an admin's desktop with internet: burn's
/// CUDA build downloads an LLVM bundle), otherwise [`cpu`].
pub fn device() -> burn::tensor::Device {
    #[cfg(feature = "train-cuda")]
    {
        burn::tensor::Device::cuda(0usize)
    }
    #[cfg(not(feature = "train-cuda"))]
    {
        cpu()
    }
}
