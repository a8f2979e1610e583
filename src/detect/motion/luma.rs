//! A frame's grey image at a few rows, straight from its pixels: every
//! output pixel is the area average of the frame pixels under it (as
//! OpenCV's `INTER_AREA`: less noise than point sampling), from the Y plane of
//! YUYV/NV12 (BT.601 limited range, expanded to full range as the RGB
//! conversion does), a grey frame, the BT.601 luma of RGB/BGR, or an MJPEG
//! frame decoded at the reduced scale that still covers the grey image.
//! No full-size RGB image is made.

use super::Luma;
use crate::capture::{Frame, PixelFormat};
use crate::config::Shape;
use crate::preprocess::mjpeg;
use crate::preprocess::PreprocessError;

fn bad(frame: &Frame, reason: impl Into<String>) -> PreprocessError {
    PreprocessError::BadFrame {
        camera: frame.camera.to_string(),
        seq: frame.seq,
        reason: reason.into(),
    }
}

/// The grey image's size for a `fw × fh` frame at about `height` rows:
/// never more rows than the frame has, the width keeping the aspect.
pub(super) fn size(fw: u32, fh: u32, height: u32) -> (u32, u32) {
    let h = height.clamp(1, fh.max(1));
    let w = ((fw as u64 * h as u64 + fh as u64 / 2) / fh.max(1) as u64).clamp(1, fw.max(1) as u64);
    (w as u32, h)
}

/// Fixed-point bits of one axis's weights (they sum to `1 << BITS`).
const BITS: u32 = 12;

/// Each of `n` output pixels' source pixels, area-weighted (the share of
/// each source pixel the output pixel covers, as OpenCV's `INTER_AREA`),
/// the weights summing to `1 << BITS`: the first and last source pixel
/// partly covered, those between wholly (one weight for all of them).
#[derive(Clone, Copy)]
struct Tap {
    first: usize,
    /// Source pixels under it (at least 1).
    n: usize,
    w_first: u32,
    w_inner: u32,
    w_last: u32,
}

fn taps(src: u32, n: u32) -> Vec<Tap> {
    let scale = src as f64 / n as f64;
    let unit = (1u32 << BITS) as f64;
    (0..n)
        .map(|i| {
            let (a, b) = (i as f64 * scale, ((i + 1) as f64 * scale).min(src as f64));
            let first = a.floor() as usize;
            let last = (b.ceil() as usize).clamp(first + 1, src as usize);
            let n = last - first;
            let share = |k: usize| {
                let cover = b.min(k as f64 + 1.0) - a.max(k as f64);
                (cover / (b - a) * unit).round() as u32
            };
            let (w_inner, w_last) = match n {
                1 => (0, 0),
                2 => (0, share(last - 1)),
                _ => (share(first + 1), share(last - 1)),
            };
            // The first weight takes the rounding: the sum is exactly 1 << BITS.
            let rest = w_inner * n.saturating_sub(2) as u32 + w_last;
            let w_first = (1u32 << BITS).saturating_sub(rest);
            Tap {
                first,
                n,
                w_first,
                w_inner,
                w_last,
            }
        })
        .collect()
}

/// How one source row is read: one pixel's sample, and the sum of the
/// samples of pixels `from..to` (samples below 2^16).
trait Sampler {
    fn one(&self, row: &[u8], x: usize) -> u32;
    fn sum(&self, row: &[u8], from: usize, to: usize) -> u32;
}

/// Every `step`-th byte of the row (Y of YUYV: 2; a plane: 1).
struct Plane(usize);

impl Sampler for Plane {
    #[inline]
    fn one(&self, row: &[u8], x: usize) -> u32 {
        row[x * self.0] as u32
    }
    #[inline]
    fn sum(&self, row: &[u8], from: usize, to: usize) -> u32 {
        row[from * self.0..to * self.0]
            .iter()
            .step_by(self.0)
            .map(|&v| v as u32)
            .sum()
    }
}

/// BT.601 luma ×256 of packed RGB (`bgr`: the bytes in BGR order).
struct Colour {
    bgr: bool,
}

impl Sampler for Colour {
    #[inline]
    fn one(&self, row: &[u8], x: usize) -> u32 {
        let p = &row[x * 3..x * 3 + 3];
        let (r, b) = if self.bgr { (p[2], p[0]) } else { (p[0], p[2]) };
        77 * r as u32 + 150 * p[1] as u32 + 29 * b as u32
    }
    #[inline]
    fn sum(&self, row: &[u8], from: usize, to: usize) -> u32 {
        (from..to).map(|x| self.one(row, x)).sum()
    }
}

/// Area-averages the source rows (`row(y)`) read by `sampler` onto `out`
/// pixels; `finish` turns the weighted sum (the average × `1 << 2·BITS`)
/// into the grey level.
fn area<'a>(
    src: (u32, u32),
    out: (u32, u32),
    row: impl Fn(usize) -> &'a [u8],
    sampler: impl Sampler,
    finish: impl Fn(u64) -> u8,
) -> Vec<u8> {
    let (xs, ys) = (taps(src.0, out.0), taps(src.1, out.1));
    let mut data = Vec::with_capacity(out.0 as usize * out.1 as usize);
    let (mut acc, mut line) = (vec![0u64; xs.len()], vec![0u32; xs.len()]);
    for t in &ys {
        acc.iter_mut().for_each(|a| *a = 0);
        for k in 0..t.n {
            let r = row(t.first + k);
            // Weights sum to 2^12 and samples are below 2^16: fits u32.
            for (l, x) in line.iter_mut().zip(&xs) {
                let last = x.first + x.n - 1;
                let mut s = x.w_first * sampler.one(r, x.first);
                if x.n > 1 {
                    s += x.w_last * sampler.one(r, last);
                }
                if x.n > 2 {
                    s += x.w_inner * sampler.sum(r, x.first + 1, last);
                }
                *l = s;
            }
            let ky = match k {
                0 => t.w_first,
                k if k + 1 == t.n => t.w_last,
                _ => t.w_inner,
            } as u64;
            for (a, &l) in acc.iter_mut().zip(&line) {
                *a += ky * l as u64;
            }
        }
        data.extend(acc.iter().map(|&a| finish(a)));
    }
    data
}

const ONE: u64 = 1 << (2 * BITS);

/// Mean of limited-range Y samples → full-range grey (the RGB
/// conversion's `298·(Y−16)/256` for a neutral pixel).
fn limited(sum: u64) -> u8 {
    let y = sum as f64 / ONE as f64;
    ((y - 16.0) * (298.0 / 256.0)).round().clamp(0.0, 255.0) as u8
}

fn plain(sum: u64) -> u8 {
    ((sum + ONE / 2) / ONE).min(255) as u8
}

/// Sums of `77R + 150G + 29B` (BT.601 weights ×256) → grey.
fn weighted(sum: u64) -> u8 {
    ((sum + ONE * 128) / (ONE * 256)).min(255) as u8
}

pub(super) fn of(frame: &Frame, height: u32, masks: &[Shape]) -> Result<Luma, PreprocessError> {
    if frame.format == PixelFormat::Mjpeg {
        let info = mjpeg::info(&frame.data).ok_or_else(|| {
            bad(
                frame,
                "not a JPEG frame (no SOI, or no SOF before the scan)",
            )
        })?;
        if let Some(why) = mjpeg::too_large(&info) {
            return Err(bad(frame, why));
        }
        let (w, h) = size(info.width, info.height, height);
        let d = mjpeg::decode_known(&frame.data, info, (w, h), mjpeg::Decoder::Auto)
            .map_err(|e| bad(frame, e))?;
        let (dw, dh) = (d.width, d.height);
        let stride = dw as usize * 3;
        let rgb = &d.rgb;
        if rgb.len() < stride * dh as usize {
            return Err(bad(frame, "the MJPEG decoder returned a short image"));
        }
        let data = area(
            (dw, dh),
            (w, h),
            |y| &rgb[y * stride..(y + 1) * stride],
            Colour { bgr: false },
            weighted,
        );
        return Ok(masked(data, w, h, info.width, info.height, masks));
    }
    frame.expected_len().map_err(|reason| bad(frame, reason))?;
    let (fw, fh) = (frame.width, frame.height);
    let (w, h) = size(fw, fh, height);
    let stride = frame.row_bytes();
    let d = &frame.data[..];
    let row = |y: usize| &d[y * stride..y * stride + stride.min(d.len() - y * stride)];
    let data = match frame.format {
        PixelFormat::Yuyv => area((fw, fh), (w, h), row, Plane(2), limited),
        PixelFormat::Nv12 => area((fw, fh), (w, h), row, Plane(1), limited),
        PixelFormat::Gray8 => area((fw, fh), (w, h), row, Plane(1), plain),
        PixelFormat::Rgb8 => area((fw, fh), (w, h), row, Colour { bgr: false }, weighted),
        PixelFormat::Bgr8 => area((fw, fh), (w, h), row, Colour { bgr: true }, weighted),
        PixelFormat::Mjpeg => unreachable!("handled above"),
    };
    Ok(masked(data, w, h, fw, fh, masks))
}

/// The grey image with the pixels whose centre lies under a mask set to 0
/// and flagged.
fn masked(mut data: Vec<u8>, w: u32, h: u32, fw: u32, fh: u32, masks: &[Shape]) -> Luma {
    let mut flags = vec![];
    if !masks.is_empty() {
        flags = vec![false; data.len()];
        for m in masks {
            // Only the pixels inside the mask's bounds need the exact test.
            let [x0, y0, x1, y1] = m.bounds(w, h);
            let xr = (x0.floor().max(0.0) as usize)..(x1.ceil().min(w as f32) as usize);
            for y in (y0.floor().max(0.0) as usize)..(y1.ceil().min(h as f32) as usize) {
                for x in xr.clone() {
                    if m.covers(x, y, w, h) {
                        let i = y * w as usize + x;
                        flags[i] = true;
                        data[i] = 0;
                    }
                }
            }
        }
    }
    Luma {
        width: w,
        height: h,
        data,
        frame_width: fw,
        frame_height: fh,
        masked: flags,
    }
}
