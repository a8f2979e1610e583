//! Preprocessing: frame → `[3,H,W]` normalised f32 tensor.
//!
//! Steps: pixel-format conversion to RGB8 (BT.601 limited range for YUYV and
//! NV12; MJPEG decoded), resize (shorter side + centre crop, or letterbox)
//! with a separable triangle filter whose support grows with the downscale
//! factor (antialiasing; the same filter as Pillow's `BILINEAR`), then
//! `(x/255 - mean) / std` per channel in CHW order. Size, resize mode and
//! mean/std come from the model bundle ([`Spec`]).
//!
//! # The contract
//!
//! A [`Preprocessor`] turns one frame into one `[3,H,W]` slot of the
//! backend's input buffer ([`Slot`]: host memory for the CPU backends, a
//! device pointer on the backend's stream for the GPU ones). It may run on
//! the camera threads (the CPU path: it parallelises across cores, and the
//! result is copied into a slot at batch time) or at batch time on the
//! inference thread, straight into the slot (`pipeline.preprocess_on`).
//!
//! [`CpuPreprocessor`] is the reference. Another implementation (the CUDA
//! kernels) must match it on every pixel format and resize mode, measured
//! before normalisation (in grey levels, 0..=255): max |difference| ≤ 2.0
//! and mean |difference| ≤ 0.5 over the image — the same bound the
//! reference itself meets against Pillow (`tests/reference.rs`). After
//! normalisation that is ≤ 2/(255·std_c) per channel.

mod convert;
#[cfg(feature = "cuda")]
pub mod cuda;
mod fused;
pub mod kernels;
pub mod mjpeg;
pub mod nvrtc;
mod resize;
pub mod signature;

pub use convert::to_rgb8;
pub use resize::{resample_rgb, Placement};

use crate::capture::{Frame, PixelFormat};
pub use crate::slot::{DeviceSlot, Slot};
use serde::{Deserialize, Serialize};

pub use crate::config::RunsOn;

/// One frame → one slot of the backend's input. See the module docs.
pub trait Preprocessor: Send {
    /// Short name for logs (`cpu`, `cuda`).
    fn name(&self) -> &'static str;
    /// Whether it can run here (a GPU preprocessor checks its driver).
    fn check(&self) -> Result<(), PreprocessError>;
    /// Converts, resizes and normalises `frame` into `slot`.
    fn prepare(&mut self, frame: &Frame, slot: Slot<'_>) -> Result<(), PreprocessError>;
    /// Each of `rects` of `frame` (people mode: the persons due in one
    /// frame) as a frame of its own into consecutive slots of `slots`
    /// (`rects.len()` samples back to back). Here: the frame converted to
    /// RGB once, each box cut out and prepared (host slots); the CUDA
    /// preprocessor does all of it in one launch.
    fn prepare_crops(
        &mut self,
        frame: &Frame,
        rects: &[kernels::Rect],
        slots: Slot<'_>,
    ) -> Result<(), PreprocessError> {
        let per = check_crops(frame, rects, &slots)?;
        let Slot::Host(out) = slots else {
            return Err(bad_frame(
                frame,
                format!(
                    "the {} preprocessor writes host slots; a GPU backend needs preprocess = \"cuda\"",
                    self.name()
                ),
            ));
        };
        let (rgb, w, _) = to_rgb8(frame)?;
        for (r, slot) in rects.iter().zip(out.chunks_exact_mut(per)) {
            let cut = r.cut(&rgb, w);
            let mut crop = Frame::still(frame.camera.clone(), PixelFormat::Rgb8, r.w, r.h, cut);
            crop.seq = frame.seq;
            self.prepare(&crop, Slot::Host(slot))?;
        }
        Ok(())
    }
}

fn bad_frame(frame: &Frame, reason: String) -> PreprocessError {
    PreprocessError::BadFrame {
        camera: frame.camera.to_string(),
        seq: frame.seq,
        reason,
    }
}

/// The crops fit the frame and the slots hold one sample per crop: the
/// values per sample.
pub fn check_crops(
    frame: &Frame,
    rects: &[kernels::Rect],
    slots: &Slot<'_>,
) -> Result<usize, PreprocessError> {
    if rects.is_empty() || !slots.len().is_multiple_of(rects.len()) {
        return Err(bad_frame(
            frame,
            format!(
                "{} crops do not divide {} input values into slots",
                rects.len(),
                slots.len()
            ),
        ));
    }
    if let Some(r) = rects.iter().find(|r| !r.inside(frame.width, frame.height)) {
        return Err(bad_frame(
            frame,
            format!(
                "the crop {}x{} at ({}, {}) is not inside the {}x{} frame",
                r.w, r.h, r.x, r.y, frame.width, frame.height
            ),
        ));
    }
    Ok(slots.len() / rects.len())
}

/// The CPU reference path (host slots only).
#[derive(Debug, Clone)]
pub struct CpuPreprocessor {
    spec: Spec,
}

impl CpuPreprocessor {
    pub fn new(spec: Spec) -> Self {
        Self { spec }
    }

    pub fn spec(&self) -> &Spec {
        &self.spec
    }
}

impl Preprocessor for CpuPreprocessor {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn check(&self) -> Result<(), PreprocessError> {
        Ok(())
    }

    fn prepare(&mut self, frame: &Frame, slot: Slot<'_>) -> Result<(), PreprocessError> {
        let bad = |reason: String| PreprocessError::BadFrame {
            camera: frame.camera.to_string(),
            seq: frame.seq,
            reason,
        };
        match slot {
            Slot::Host(out) if out.len() == self.spec.len() => preprocess_into(frame, &self.spec, out),
            Slot::Host(out) => Err(bad(format!(
                "the input slot holds {} values, the bundle's input needs {}",
                out.len(),
                self.spec.len()
            ))),
            Slot::Device(_) => Err(bad(
                "the CPU preprocessor writes host slots; with a GPU backend preprocess on the camera threads (pipeline.preprocess_on = \"capture_threads\")".into(),
            )),
        }
    }
}

/// How the frame is fitted into the model's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResizeMode {
    /// Scale so the shorter side fits, then crop the centre.
    ShorterSideCrop,
    /// Scale so the longer side fits, pad the rest with the mean colour
    /// (which normalises to 0).
    Letterbox,
}

/// What the model expects; read from `bundle.toml`'s `[input]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Spec {
    pub width: u32,
    pub height: u32,
    pub resize: ResizeMode,
    #[serde(serialize_with = "crate::short_float::seq")]
    pub mean: [f32; 3],
    #[serde(serialize_with = "crate::short_float::seq")]
    pub std: [f32; 3],
}

#[derive(Debug, thiserror::Error)]
pub enum PreprocessError {
    #[error("frame {camera}#{seq}: {reason}")]
    BadFrame {
        camera: String,
        seq: u64,
        reason: String,
    },
    /// CUDA preprocessing cannot run or failed: what and the fix.
    #[error("CUDA preprocessing: {0}")]
    Gpu(String),
}

/// Why frames could never reach the backend with these settings, if so:
/// the CPU preprocessor on the inference thread writes host memory, and a
/// backend whose input lives on the GPU (TensorRT) cannot take it there.
/// `check-config` and the daemon both refuse such a config.
pub fn placement_problem(
    preprocess_on: crate::config::RunsOn,
    device_input: bool,
    gpu_preprocessor: bool,
) -> Option<String> {
    (preprocess_on == crate::config::RunsOn::InferenceThread && device_input && !gpu_preprocessor).then(|| {
        "config keys `pipeline.preprocess_on` = \"inference_thread\" and `pipeline.preprocess`: the backend takes its \
         input on the GPU and no CUDA preprocessor runs, so every frame would fail. Fix: set \
         pipeline.preprocess_on = \"capture_threads\", or pipeline.preprocess = \"cuda\" on a machine where CUDA works"
            .to_string()
    })
}

/// Where the CUDA preprocessor runs and what it writes (`[pipeline]` keys).
#[derive(Debug, Clone)]
pub struct CudaOptions {
    /// CUDA device ordinal.
    pub device: usize,
    /// `pipeline.nvrtc_library` (else the usual places, see [`nvrtc::Nvrtc::open`]).
    pub nvrtc_library: Option<std::path::PathBuf>,
    /// `pipeline.kernel_cache`: compiled kernels by NVRTC version, target, source.
    pub kernel_cache: std::path::PathBuf,
    /// FP16 output (for an FP16 input binding) instead of FP32.
    pub half: bool,
    /// Stage frames in mapped pinned memory (the integrated-GPU path,
    /// taken on Jetson) on any GPU: `gpu-check` exercises that path on a
    /// desktop GPU with it.
    pub mapped: bool,
}

impl CudaOptions {
    pub fn from_config(p: &crate::config::PipelineConfig) -> Self {
        Self {
            device: 0,
            nvrtc_library: p.nvrtc_library.clone(),
            kernel_cache: p.kernel_cache.clone(),
            half: false,
            mapped: false,
        }
    }
}

/// The CUDA preprocessor for `spec`, or why it cannot run here (a build
/// without the `cuda` feature says how to get one).
pub fn open_cuda(
    spec: &Spec,
    opts: &CudaOptions,
) -> Result<Box<dyn Preprocessor>, PreprocessError> {
    #[cfg(feature = "cuda")]
    {
        Ok(Box::new(cuda::CudaPreprocessor::new(spec.clone(), opts)?))
    }
    #[cfg(not(feature = "cuda"))]
    {
        let _ = (spec, opts);
        Err(PreprocessError::Gpu(
            "this binary was built without the `cuda` feature. Fix: set pipeline.preprocess = \"cpu\" (or \"auto\"), or build with `cargo build --release --features cuda`".into(),
        ))
    }
}

impl Spec {
    /// A `width × height` input with ImageNet's mean and std (what the
    /// backbones' bundles use).
    pub fn imagenet(width: u32, height: u32, resize: ResizeMode) -> Self {
        Self {
            width,
            height,
            resize,
            mean: [0.485, 0.456, 0.406],
            std: [0.229, 0.224, 0.225],
        }
    }

    /// Number of f32 values one preprocessed frame fills.
    pub fn len(&self) -> usize {
        3 * self.width as usize * self.height as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Converts, resizes and normalises `frame` into `out` (`spec.len()` values,
/// CHW), on the fast path for its pixel format: YUYV and NV12 resampled in
/// YUV and converted at model size, MJPEG decoded at a reduced scale. Each
/// stays within its stated tolerance of [`preprocess_reference_into`].
pub fn preprocess_into(frame: &Frame, spec: &Spec, out: &mut [f32]) -> Result<(), PreprocessError> {
    assert_eq!(
        out.len(),
        spec.len(),
        "output buffer must hold 3*H*W values"
    );
    match frame.format {
        PixelFormat::Yuyv | PixelFormat::Nv12 => fused::yuv_into(frame, spec, out),
        PixelFormat::Mjpeg => mjpeg_into(frame, spec, out, mjpeg::Decoder::Auto),
        _ => preprocess_reference_into(frame, spec, out),
    }
}

/// MJPEG decoded at the smallest scale that covers the resized size, then
/// resampled and normalised (see [`mjpeg`]).
pub fn mjpeg_into(
    frame: &Frame,
    spec: &Spec,
    out: &mut [f32],
    decoder: mjpeg::Decoder,
) -> Result<(), PreprocessError> {
    let d = mjpeg_decoded(frame, spec, decoder)?;
    let resized = resample_rgb(
        &d.rgb,
        d.width,
        d.height,
        spec.width,
        spec.height,
        spec.resize,
    );
    normalize_into(&resized, spec, out);
    Ok(())
}

/// An MJPEG frame decoded at the smallest scale that covers `spec`'s
/// resized size (the CPU path resamples it; the CUDA path uploads it).
pub fn mjpeg_decoded(
    frame: &Frame,
    spec: &Spec,
    decoder: mjpeg::Decoder,
) -> Result<mjpeg::Decoded, PreprocessError> {
    let bad = |reason: String| PreprocessError::BadFrame {
        camera: frame.camera.to_string(),
        seq: frame.seq,
        reason,
    };
    let info = mjpeg::info(&frame.data)
        .ok_or_else(|| bad("not a JPEG frame (no SOI/SOF marker)".into()))?;
    let p = Placement::new(
        info.width,
        info.height,
        spec.width,
        spec.height,
        spec.resize,
    );
    mjpeg::decode_known(&frame.data, info, (p.resized_w, p.resized_h), decoder).map_err(bad)
}

/// The reference path: the whole frame converted to RGB8 (MJPEG decoded at
/// full size), resampled, normalised. Slower; every fast path and the CUDA
/// kernels are measured against it.
pub fn preprocess_reference_into(
    frame: &Frame,
    spec: &Spec,
    out: &mut [f32],
) -> Result<(), PreprocessError> {
    assert_eq!(
        out.len(),
        spec.len(),
        "output buffer must hold 3*H*W values"
    );
    let (rgb, w, h) = to_rgb8(frame)?;
    let resized = resample_rgb(&rgb, w, h, spec.width, spec.height, spec.resize);
    normalize_into(&resized, spec, out);
    Ok(())
}

/// Convenience wrapper that allocates the output.
pub fn preprocess(frame: &Frame, spec: &Spec) -> Result<Vec<f32>, PreprocessError> {
    let mut out = vec![0.0; spec.len()];
    preprocess_into(frame, spec, &mut out)?;
    Ok(out)
}

/// HWC values in 0..=255 (padding marked as NaN) → normalised CHW.
fn normalize_into(hwc: &[f32], spec: &Spec, out: &mut [f32]) {
    let plane = spec.width as usize * spec.height as usize;
    let norm = kernels::Norm::new(spec);
    for c in 0..3 {
        let (scale, shift) = (norm.scale[c], norm.shift[c]);
        let dst = &mut out[c * plane..(c + 1) * plane];
        for (i, d) in dst.iter_mut().enumerate() {
            let v = hwc[i * 3 + c];
            *d = if v.is_nan() { 0.0 } else { v * scale - shift };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::PixelFormat;

    fn frame(w: u32, h: u32, format: PixelFormat, data: Vec<u8>) -> Frame {
        Frame::still("t", format, w, h, data)
    }

    #[test]
    fn identity_size_normalises_by_hand() {
        // 2x2 RGB, no resize: values are (x/255 - mean)/std in CHW order.
        let data = vec![0, 51, 102, 153, 204, 255, 255, 0, 51, 10, 20, 30];
        let spec = Spec {
            width: 2,
            height: 2,
            resize: ResizeMode::ShorterSideCrop,
            mean: [0.5, 0.25, 0.0],
            std: [0.5, 0.25, 1.0],
        };
        let out = preprocess(&frame(2, 2, PixelFormat::Rgb8, data.clone()), &spec).unwrap();
        for p in 0..4 {
            for c in 0..3 {
                let want = (data[p * 3 + c] as f32 / 255.0 - spec.mean[c]) / spec.std[c];
                assert!(
                    (out[c * 4 + p] - want).abs() < 1e-5,
                    "p{p} c{c}: {} vs {want}",
                    out[c * 4 + p]
                );
            }
        }
    }

    #[test]
    fn halving_averages_pairs_by_hand() {
        // 4x1 gray → 2x1 (letterbox: the longer side fits, so a plain
        // resize; Pillow gives [29, 91] in u8): Pillow's triangle filter with support 2 at scale 2
        // gives weights (1/8, 3/8, 3/8, 1/8) centred between pixel pairs,
        // clipped at the borders and renormalised.
        let data = vec![0, 40, 80, 120];
        let f = frame(4, 1, PixelFormat::Gray8, data);
        let (rgb, w, h) = to_rgb8(&f).unwrap();
        let out = resample_rgb(&rgb, w, h, 2, 1, ResizeMode::Letterbox);
        // x=0: centre 1.0, taps 0..3 → weights at 0,1,2: 0.75,0.75,0.25 → (0*.75+40*.75+80*.25)/1.75
        let x0 = (0.0 * 0.75 + 40.0 * 0.75 + 80.0 * 0.25) / 1.75;
        let x1 = (40.0 * 0.25 + 80.0 * 0.75 + 120.0 * 0.75) / 1.75;
        assert!((out[0] - x0).abs() < 1e-4, "{} vs {x0}", out[0]);
        assert!((out[3] - x1).abs() < 1e-4, "{} vs {x1}", out[3]);
    }

    #[test]
    fn centre_crop_and_letterbox_geometry() {
        // 4x2 image, left half black, right half white → 2x2 target.
        let mut data = vec![];
        for _ in 0..2 {
            data.extend_from_slice(&[0, 0, 255, 255]);
        }
        let f = frame(4, 2, PixelFormat::Gray8, data);
        let (rgb, w, h) = to_rgb8(&f).unwrap();
        // Shorter side 2 fits already: crop the centre columns 1..3 = [0, 255].
        let crop = resample_rgb(&rgb, w, h, 2, 2, ResizeMode::ShorterSideCrop);
        assert_eq!((crop[0], crop[3]), (0.0, 255.0));
        // Letterbox: 4x2 → 2x1 image in rows... top row padded, then content, and NaN padding.
        let lb = resample_rgb(&rgb, w, h, 2, 2, ResizeMode::Letterbox);
        let rows_nan: Vec<bool> = (0..2).map(|y| lb[y * 6].is_nan()).collect();
        assert_eq!(rows_nan.iter().filter(|&&n| n).count(), 1, "{lb:?}");
        let spec = Spec {
            width: 2,
            height: 2,
            resize: ResizeMode::Letterbox,
            mean: [0.5; 3],
            std: [0.5; 3],
        };
        let out = preprocess(&f, &spec).unwrap();
        assert!(out.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn yuyv_and_nv12_match_rgb_within_rounding() {
        use crate::capture::synthetic::rgb_to_ycbcr;
        // Two pixels of the same colour: chroma subsampling is lossless.
        for rgb in [
            [200u8, 30, 90],
            [16, 16, 16],
            [250, 250, 250],
            [0, 128, 255],
        ] {
            let [y, u, v] = rgb_to_ycbcr(rgb);
            let yuyv = frame(2, 1, PixelFormat::Yuyv, vec![y, u, y, v]);
            let (out, _, _) = to_rgb8(&yuyv).unwrap();
            let nv12 = frame(2, 2, PixelFormat::Nv12, vec![y, y, y, y, u, v]);
            let (out2, _, _) = to_rgb8(&nv12).unwrap();
            for c in 0..3 {
                assert!(
                    (out[c] as i32 - rgb[c] as i32).abs() <= 2,
                    "{rgb:?} → {out:?}"
                );
                assert_eq!(out[c], out2[c]);
            }
        }
    }

    #[test]
    fn bgr_is_swapped_and_bad_sizes_are_errors() {
        let bgr = frame(1, 1, PixelFormat::Bgr8, vec![1, 2, 3]);
        let (out, _, _) = to_rgb8(&bgr).unwrap();
        assert_eq!(*out, [3, 2, 1]);
        assert!(to_rgb8(&frame(4, 4, PixelFormat::Rgb8, vec![0; 5])).is_err());
        assert!(to_rgb8(&frame(4, 4, PixelFormat::Mjpeg, vec![0; 5])).is_err());
        // A stride shorter than a row of pixels is a broken frame.
        let mut short = frame(4, 1, PixelFormat::Rgb8, vec![0; 12]);
        short.stride = 6;
        assert!(to_rgb8(&short).is_err());
        // Found by fuzzing: a 1x1 NV12 frame read past its chroma row.
        let odd = frame(1, 1, PixelFormat::Nv12, vec![0; 2]);
        assert!(to_rgb8(&odd).is_err());
        let spec = Spec::imagenet(8, 8, ResizeMode::ShorterSideCrop);
        let mut out = vec![0f32; spec.len()];
        assert!(preprocess_reference_into(&odd, &spec, &mut out).is_err());
        assert!(preprocess_into(&odd, &spec, &mut out).is_err());
    }

    #[test]
    fn cpu_preprocessing_on_the_inference_thread_into_a_gpu_backend_is_refused() {
        use crate::config::RunsOn::*;
        let e = placement_problem(InferenceThread, true, false).unwrap();
        assert!(
            e.contains("pipeline.preprocess_on") && e.contains("capture_threads"),
            "{e}"
        );
        assert_eq!(placement_problem(InferenceThread, true, true), None);
        assert_eq!(placement_problem(CaptureThreads, true, false), None);
        assert_eq!(placement_problem(InferenceThread, false, false), None);
    }
}
