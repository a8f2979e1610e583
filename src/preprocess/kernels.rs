//! The GPU preprocessing kernels' source and the host-side data they take:
//! tap tables (the CPU reference's filter, computed once per source size,
//! model size and resize mode), the normalisation constants and the launch
//! shape. No CUDA here: the NVRTC build ([`super::nvrtc`]), the CUDA
//! preprocessor (feature `cuda`) and the host build of the tests all use it.
//!
//! `kernels/preprocess.cu` documents the kernels. One per pixel format;
//! MJPEG is decoded on the CPU ([`super::mjpeg`]) and uploaded as RGB.

use super::resize::{taps, Placement};
use super::{ResizeMode, Spec};
use crate::capture::PixelFormat;

/// CUDA C source of every preprocessing kernel.
pub const SOURCE: &str = include_str!("kernels/preprocess.cu");

/// Threads per block (x, y): one output pixel each.
pub const BLOCK: (u32, u32) = (16, 16);

/// The kernel for frames of `format`; `None` for MJPEG, which is decoded on
/// the CPU and then runs the RGB kernel.
pub fn kernel_name(format: PixelFormat) -> Option<&'static str> {
    Some(match format {
        PixelFormat::Rgb8 => "sc_preprocess_rgb",
        PixelFormat::Bgr8 => "sc_preprocess_bgr",
        PixelFormat::Gray8 => "sc_preprocess_gray",
        PixelFormat::Yuyv => "sc_preprocess_yuyv",
        PixelFormat::Nv12 => "sc_preprocess_nv12",
        PixelFormat::Mjpeg => return None,
    })
}

/// The kernel that cuts many crops of one frame of `format` into
/// consecutive slots ([`Tables::crops`]); `None` for MJPEG.
pub fn crops_kernel_name(format: PixelFormat) -> Option<&'static str> {
    kernel_name(format).map(|k| match k {
        "sc_preprocess_rgb" => "sc_crops_rgb",
        "sc_preprocess_bgr" => "sc_crops_bgr",
        "sc_preprocess_gray" => "sc_crops_gray",
        "sc_preprocess_yuyv" => "sc_crops_yuyv",
        _ => "sc_crops_nv12",
    })
}

/// The formats with a kernel of their own (MJPEG runs the RGB one).
pub const FORMATS: [PixelFormat; 5] = [
    PixelFormat::Rgb8,
    PixelFormat::Bgr8,
    PixelFormat::Gray8,
    PixelFormat::Yuyv,
    PixelFormat::Nv12,
];

/// Every kernel's name (what a module must export).
pub const KERNELS: [&str; 10] = [
    "sc_preprocess_rgb",
    "sc_preprocess_bgr",
    "sc_preprocess_gray",
    "sc_preprocess_yuyv",
    "sc_preprocess_nv12",
    "sc_crops_rgb",
    "sc_crops_bgr",
    "sc_crops_gray",
    "sc_crops_yuyv",
    "sc_crops_nv12",
];

/// A crop in whole frame pixels: `w × h` from `(x, y)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

impl Rect {
    /// Its pixels cut out of a packed RGB8 frame `width` pixels wide (the
    /// rectangle inside it).
    pub fn cut(&self, rgb: &[u8], width: u32) -> Vec<u8> {
        let mut out = Vec::with_capacity((self.w * self.h * 3) as usize);
        for y in self.y..self.y + self.h {
            let row = (y * width + self.x) as usize * 3;
            out.extend_from_slice(&rgb[row..row + self.w as usize * 3]);
        }
        out
    }

    /// Whether it is non-empty and inside a `width × height` frame.
    pub fn inside(&self, width: u32, height: u32) -> bool {
        self.w > 0
            && self.h > 0
            && self.x.checked_add(self.w).is_some_and(|r| r <= width)
            && self.y.checked_add(self.h).is_some_and(|b| b <= height)
    }
}

/// The frames every kernel is checked on against the CPU reference, by the
/// host build (tests/kernels.rs) and on a GPU (`stylecam gpu-check`):
/// `(frame width, height, row padding bytes, model side, resize)` — odd
/// sizes, padded strides, both resize modes, downscales of 2–5×.
pub const CHECK_CASES: [(u32, u32, usize, u32, ResizeMode); 5] = [
    (640, 480, 0, 224, ResizeMode::ShorterSideCrop),
    (333, 251, 13, 224, ResizeMode::ShorterSideCrop),
    (1280, 720, 64, 224, ResizeMode::Letterbox),
    (1920, 1080, 0, 299, ResizeMode::ShorterSideCrop),
    (202, 150, 7, 299, ResizeMode::Letterbox),
];

/// Per-axis taps for every output column and row: `(first, count)` pairs
/// (count 0 = letterbox padding) and `k` weights per output sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Tables {
    pub xtap: Vec<i32>,
    pub xw: Vec<f32>,
    pub kx: i32,
    pub ytap: Vec<i32>,
    pub yw: Vec<f32>,
    pub ky: i32,
}

impl Tables {
    /// The reference's taps ([`super::resample_rgb`]) for a `src_w × src_h`
    /// frame into `spec`'s size and resize mode.
    pub fn new(src_w: u32, src_h: u32, spec: &Spec) -> Self {
        let p = Placement::new(src_w, src_h, spec.width, spec.height, spec.resize);
        let (xtap, xw, kx) = axis(src_w, p.resized_w, p.offset_x, spec.width);
        let (ytap, yw, ky) = axis(src_h, p.resized_h, p.offset_y, spec.height);
        Self {
            xtap,
            xw,
            kx,
            ytap,
            yw,
            ky,
        }
    }

    /// The tables of the crop kernels: crop `z` of `rects` (each inside
    /// the frame) resized by `spec` as if it were a frame of its own (what
    /// the CPU path does with the cut-out pixels), its taps moved by the
    /// crop's origin; one table after another, each `kx`/`ky` (the largest
    /// of the crops') weights per output sample.
    pub fn crops(rects: &[Rect], spec: &Spec) -> Self {
        let each: Vec<Tables> = rects.iter().map(|r| Tables::new(r.w, r.h, spec)).collect();
        let kx = each.iter().map(|t| t.kx).max().unwrap_or(1);
        let ky = each.iter().map(|t| t.ky).max().unwrap_or(1);
        let mut all = Tables {
            xtap: vec![],
            xw: vec![],
            kx,
            ytap: vec![],
            yw: vec![],
            ky,
        };
        for (t, r) in each.iter().zip(rects) {
            let moved = |tap: &[i32], by: u32| -> Vec<i32> {
                tap.chunks_exact(2)
                    .flat_map(|p| [if p[1] > 0 { p[0] + by as i32 } else { p[0] }, p[1]])
                    .collect()
            };
            let widened = |w: &[f32], k: i32, to: i32| -> Vec<f32> {
                w.chunks_exact(k as usize)
                    .flat_map(|row| {
                        row.iter()
                            .copied()
                            .chain(std::iter::repeat_n(0.0, (to - k) as usize))
                    })
                    .collect()
            };
            all.xtap.extend(moved(&t.xtap, r.x));
            all.ytap.extend(moved(&t.ytap, r.y));
            all.xw.extend(widened(&t.xw, t.kx, kx));
            all.yw.extend(widened(&t.yw, t.ky, ky));
        }
        all
    }

    /// The source columns and rows the kernels read (a centre crop reads
    /// only part of the frame): `(columns, rows)`.
    pub fn source_span(&self) -> (usize, usize) {
        let span = |tap: &[i32]| {
            let (lo, hi) = tap
                .chunks_exact(2)
                .filter(|t| t[1] > 0)
                .fold((i32::MAX, i32::MIN), |(lo, hi), t| {
                    (lo.min(t[0]), hi.max(t[0] + t[1]))
                });
            (hi - lo).max(0) as usize
        };
        (span(&self.xtap), span(&self.ytap))
    }

    /// Bytes the tables take on the device.
    pub fn bytes(&self) -> usize {
        4 * (self.xtap.len() + self.xw.len() + self.ytap.len() + self.yw.len())
    }
}

fn axis(src: u32, resized: u32, offset: i64, out: u32) -> (Vec<i32>, Vec<f32>, i32) {
    let lo = offset.max(0) as usize;
    let hi = (offset + resized as i64).min(out as i64) as usize;
    let t = taps(src, resized, lo as i64 - offset, hi - lo);
    let k = t.ksize;
    let mut tap = vec![0i32; 2 * out as usize];
    let mut w = vec![0f32; k * out as usize];
    for i in 0..hi - lo {
        let o = lo + i;
        tap[2 * o] = t.start[i] as i32;
        tap[2 * o + 1] = t.len[i] as i32;
        w[o * k..o * k + t.len[i]].copy_from_slice(&t.weights[i * k..i * k + t.len[i]]);
    }
    (tap, w, k as i32)
}

/// `v·scale − shift` per channel, with `v` in 0..=255: `(v/255 − mean)/std`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Norm {
    pub scale: [f32; 3],
    pub shift: [f32; 3],
}

impl Norm {
    pub fn new(spec: &Spec) -> Self {
        let mut n = Norm {
            scale: [0.0; 3],
            shift: [0.0; 3],
        };
        for c in 0..3 {
            n.scale[c] = 1.0 / (255.0 * spec.std[c]);
            n.shift[c] = spec.mean[c] / spec.std[c];
        }
        n
    }
}

/// Grid for `frames` frames into `spec`'s size with [`BLOCK`].
pub fn grid(spec: &Spec, frames: u32) -> (u32, u32, u32) {
    (
        spec.width.div_ceil(BLOCK.0),
        spec.height.div_ceil(BLOCK.1),
        frames,
    )
}
