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

/// Each of `n` output pixels' source pixels: `(first, weights)`, the
/// share of each source pixel the output pixel covers (area weights, as
/// OpenCV's `INTER_AREA`), normalised to sum to `1 << BITS`.
fn taps(src: u32, n: u32) -> Vec<(usize, Vec<u64>)> {
    let scale = src as f64 / n as f64;
    (0..n)
        .map(|i| {
            let (a, b) = (i as f64 * scale, ((i + 1) as f64 * scale).min(src as f64));
            let first = a.floor() as usize;
            let last = (b.ceil() as usize).clamp(first + 1, src as usize);
            let mut w: Vec<u64> = (first..last)
                .map(|k| {
                    let cover = b.min(k as f64 + 1.0) - a.max(k as f64);
                    (cover / (b - a) * (1u64 << BITS) as f64).round() as u64
                })
                .collect();
            let sum: u64 = w.iter().sum();
            let big = (0..w.len()).max_by_key(|&k| w[k]).unwrap_or(0);
            w[big] = (w[big] + (1u64 << BITS)).saturating_sub(sum);
            (first, w)
        })
        .collect()
}

/// Area-averages `sample(x, y)` onto `out` pixels; `finish` turns the
/// weighted sum (the average × `1 << 2·BITS`) into the grey level.
fn area(
    src: (u32, u32),
    out: (u32, u32),
    sample: impl Fn(usize, usize) -> u32,
    finish: impl Fn(u64) -> u8,
) -> Vec<u8> {
    let (xs, ys) = (taps(src.0, out.0), taps(src.1, out.1));
    let mut data = Vec::with_capacity(out.0 as usize * out.1 as usize);
    let mut acc = vec![0u64; xs.len()];
    for (y0, wy) in &ys {
        acc.iter_mut().for_each(|a| *a = 0);
        for (y, &ky) in (*y0..).zip(wy) {
            for (a, (x0, wx)) in acc.iter_mut().zip(&xs) {
                let mut s = 0u64;
                for (x, &kx) in (*x0..).zip(wx) {
                    s += kx * sample(x, y) as u64;
                }
                *a += ky * s;
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

#[inline]
fn luma_rgb(r: u8, g: u8, b: u8) -> u32 {
    77 * r as u32 + 150 * g as u32 + 29 * b as u32
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
            |x, y| {
                let p = y * stride + x * 3;
                luma_rgb(rgb[p], rgb[p + 1], rgb[p + 2])
            },
            weighted,
        );
        return Ok(masked(data, w, h, info.width, info.height, masks));
    }
    frame.expected_len().map_err(|reason| bad(frame, reason))?;
    let (fw, fh) = (frame.width, frame.height);
    let (w, h) = size(fw, fh, height);
    let stride = frame.row_bytes();
    let d = &frame.data[..];
    let data = match frame.format {
        PixelFormat::Yuyv => area(
            (fw, fh),
            (w, h),
            |x, y| d[y * stride + x * 2] as u32,
            limited,
        ),
        PixelFormat::Nv12 => area((fw, fh), (w, h), |x, y| d[y * stride + x] as u32, limited),
        PixelFormat::Gray8 => area((fw, fh), (w, h), |x, y| d[y * stride + x] as u32, plain),
        PixelFormat::Rgb8 => area(
            (fw, fh),
            (w, h),
            |x, y| {
                let p = y * stride + x * 3;
                luma_rgb(d[p], d[p + 1], d[p + 2])
            },
            weighted,
        ),
        PixelFormat::Bgr8 => area(
            (fw, fh),
            (w, h),
            |x, y| {
                let p = y * stride + x * 3;
                luma_rgb(d[p + 2], d[p + 1], d[p])
            },
            weighted,
        ),
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
