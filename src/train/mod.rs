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
pub mod export;
pub mod fashion_mnist;
pub mod fit;
pub mod import;
pub mod layers;
pub mod run;
pub mod sampler;
pub mod synthetic;

pub use backbones::{Arch, Family, Net};

/// The device training runs on: burn's `flex` CPU backend.
pub fn cpu() -> burn::tensor::Device {
    burn::tensor::Device::flex()
}
