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
pub mod speed;
pub mod synthetic;

pub use backbones::{Arch, Family, Net};

/// burn's pure-Rust `flex` CPU backend (tests, this machine).
pub fn cpu() -> burn::tensor::Device {
    burn::tensor::Device::flex()
}

/// Where training runs: `train.device` in train.toml, `--device` on the CLI.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    /// The GPU where the build has a GPU backend and it opens, else the CPU
    /// (the log says why).
    #[default]
    Auto,
    /// burn's `flex` CPU backend.
    Cpu,
    /// GPU 0: burn's Vulkan backend (`--features train-gpu`) or CUDA
    /// (`--features train-cuda`); an error that names what is missing
    /// (the Vulkan loader, a GPU driver, the feature) where it cannot.
    Gpu,
}

impl DeviceChoice {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Cpu => "cpu",
            Self::Gpu => "gpu",
        }
    }
}

impl std::str::FromStr for DeviceChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "gpu" => Ok(Self::Gpu),
            _ => Err(format!("device {s:?}: use cpu, gpu or auto")),
        }
    }
}

static DEVICE: std::sync::OnceLock<(burn::tensor::Device, String)> = std::sync::OnceLock::new();

/// The device training runs on: what [`select_device`] chose, else the CPU.
pub fn device() -> burn::tensor::Device {
    DEVICE.get().map(|d| d.0.clone()).unwrap_or_else(cpu)
}

/// Opens the device for `choice` once per process (later calls return the
/// first choice's device) and says which it is, e.g. `GPU (Vulkan): NVIDIA
/// H200` or `CPU (flex)`.
pub fn select_device(choice: DeviceChoice) -> Result<String, String> {
    if let Some((_, what)) = DEVICE.get() {
        return Ok(what.clone());
    }
    let (device, what) = match choice {
        DeviceChoice::Cpu => (cpu(), "CPU (flex)".to_string()),
        DeviceChoice::Gpu => gpu()?,
        DeviceChoice::Auto => match gpu() {
            Ok(d) => d,
            Err(why) => {
                log::info!("train.device = auto: CPU ({why})");
                (cpu(), "CPU (flex)".to_string())
            }
        },
    };
    let _ = DEVICE.set((device, what));
    Ok(DEVICE.get().expect("just set").1.clone())
}

/// GPU 0 through the build's GPU backend, or why not.
fn gpu() -> Result<(burn::tensor::Device, String), String> {
    #[cfg(feature = "train-cuda")]
    {
        Ok((burn::tensor::Device::cuda(0usize), "GPU 0 (CUDA)".into()))
    }
    #[cfg(all(feature = "train-gpu", not(feature = "train-cuda")))]
    {
        vulkan()
    }
    #[cfg(not(any(feature = "train-gpu", feature = "train-cuda")))]
    {
        Err("this build has no GPU backend: build with `cargo build --release --features train-gpu` (Vulkan: NVIDIA, AMD, Intel; builds offline) or `--features train-cuda` (NVIDIA; its build downloads LLVM)".into())
    }
}

/// burn's Vulkan backend: the loader first (so its absence is named), then
/// an adapter.
#[cfg(feature = "train-gpu")]
fn vulkan() -> Result<(burn::tensor::Device, String), String> {
    // SAFETY: dlopen with a static C string; only probes, the handle is kept
    // (wgpu opens the same library).
    let lib = unsafe {
        libc::dlopen(
            c"libvulkan.so.1".as_ptr(),
            libc::RTLD_NOW | libc::RTLD_LOCAL,
        )
    };
    if lib.is_null() {
        return Err("the Vulkan loader libvulkan.so.1 is not installed. Fix: `apt install libvulkan1` (Debian/Ubuntu; `vulkan-loader` on Fedora/Arch) and the GPU's Vulkan driver (NVIDIA: part of the proprietary driver; AMD/Intel: Mesa's `mesa-vulkan-drivers`), or set train.device = \"cpu\"".into());
    }
    use burn::tensor::wgpu::WgpuBackend;
    use burn::tensor::DeviceKind;
    // A real GPU only: a CPU implementation of Vulkan (Mesa's lavapipe) is
    // not one, and `DefaultDevice` would fall back to it.
    let mut why = vec![];
    for (kind, name) in [
        (DeviceKind::DiscreteGpu(0), "discrete GPU 0"),
        (DeviceKind::IntegratedGpu(0), "integrated GPU 0"),
        (DeviceKind::VirtualGpu(0), "virtual GPU 0"),
    ] {
        let init = std::panic::catch_unwind(|| {
            burn::tensor::Device::wgpu_options()
                .graphics_api(WgpuBackend::Vulkan)
                .device_kind(kind)
                .init()
        });
        match init {
            Ok(Ok(device)) => return Ok((device, format!("GPU (Vulkan, {name})"))),
            // The first answer lists the adapters Vulkan found; the
            // others repeat it.
            Ok(Err(e)) if why.is_empty() => why.push(format!("{name}: {e}")),
            Ok(Err(_)) => why.push(format!("no {name}")),
            Err(_) => why.push(format!("{name}: the Vulkan runtime panicked")),
        }
    }
    Err(format!(
        "no Vulkan GPU ({}). Fix: check `vulkaninfo --summary`; the GPU's Vulkan driver (ICD) must be installed, or set train.device = \"cpu\"",
        why.join("; ")
    ))
}
