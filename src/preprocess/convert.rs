//! Pixel-format conversion to tightly packed RGB8.
//!
//! YUYV and NV12 use BT.601 limited range, the V4L2 default for webcams:
//! `R = 1.164(Y-16) + 1.596(V-128)`, `G = 1.164(Y-16) - 0.392(U-128) - 0.813(V-128)`,
//! `B = 1.164(Y-16) + 2.017(U-128)`, rounded and clamped to 0..=255.

use super::PreprocessError;
use crate::capture::{Frame, PixelFormat};

fn bad(frame: &Frame, reason: impl Into<String>) -> PreprocessError {
    PreprocessError::BadFrame {
        camera: frame.camera.to_string(),
        seq: frame.seq,
        reason: reason.into(),
    }
}

#[inline]
fn yuv_to_rgb(y: u8, u: u8, v: u8) -> [u8; 3] {
    let c = 1.164 * (y as f32 - 16.0);
    let d = u as f32 - 128.0;
    let e = v as f32 - 128.0;
    let px = |x: f32| x.round().clamp(0.0, 255.0) as u8;
    [
        px(c + 1.596 * e),
        px(c - 0.392 * d - 0.813 * e),
        px(c + 2.017 * d),
    ]
}

/// Converts any supported frame to packed RGB8; returns `(rgb, width, height)`.
pub fn to_rgb8(frame: &Frame) -> Result<(Vec<u8>, u32, u32), PreprocessError> {
    let (w, h) = (frame.width as usize, frame.height as usize);
    if frame.format == PixelFormat::Mjpeg {
        let img = image::load_from_memory_with_format(&frame.data, image::ImageFormat::Jpeg)
            .map_err(|e| bad(frame, format!("MJPEG frame does not decode: {e}")))?
            .into_rgb8();
        let (iw, ih) = img.dimensions();
        return Ok((img.into_raw(), iw, ih));
    }
    let stride = frame.row_bytes();
    let needed = match frame.format {
        PixelFormat::Nv12 => stride * h + stride * h.div_ceil(2),
        _ => stride * h,
    };
    if w == 0 || h == 0 || frame.data.len() < needed || stride < frame.row_bytes().min(stride) {
        return Err(bad(
            frame,
            format!(
                "{:?} {}x{} needs {needed} bytes, got {}",
                frame.format,
                w,
                h,
                frame.data.len()
            ),
        ));
    }
    let mut out = vec![0u8; w * h * 3];
    let d = &frame.data;
    match frame.format {
        PixelFormat::Rgb8 => {
            for y in 0..h {
                out[y * w * 3..(y + 1) * w * 3].copy_from_slice(&d[y * stride..y * stride + w * 3]);
            }
        }
        PixelFormat::Bgr8 => {
            for y in 0..h {
                for x in 0..w {
                    let s = y * stride + x * 3;
                    out[(y * w + x) * 3..(y * w + x) * 3 + 3].copy_from_slice(&[
                        d[s + 2],
                        d[s + 1],
                        d[s],
                    ]);
                }
            }
        }
        PixelFormat::Gray8 => {
            for y in 0..h {
                for x in 0..w {
                    let g = d[y * stride + x];
                    out[(y * w + x) * 3..(y * w + x) * 3 + 3].copy_from_slice(&[g, g, g]);
                }
            }
        }
        PixelFormat::Yuyv => {
            if w % 2 != 0 {
                return Err(bad(frame, "YUYV needs an even width"));
            }
            for y in 0..h {
                let row = &d[y * stride..y * stride + w * 2];
                for (pair, q) in row.chunks_exact(4).enumerate() {
                    let o = (y * w + pair * 2) * 3;
                    out[o..o + 3].copy_from_slice(&yuv_to_rgb(q[0], q[1], q[3]));
                    out[o + 3..o + 6].copy_from_slice(&yuv_to_rgb(q[2], q[1], q[3]));
                }
            }
        }
        PixelFormat::Nv12 => {
            let chroma = &d[stride * h..];
            for y in 0..h {
                for x in 0..w {
                    let c = (y / 2) * stride + (x / 2) * 2;
                    let o = (y * w + x) * 3;
                    out[o..o + 3].copy_from_slice(&yuv_to_rgb(
                        d[y * stride + x],
                        chroma[c],
                        chroma[c + 1],
                    ));
                }
            }
        }
        PixelFormat::Mjpeg => unreachable!("handled above"),
    }
    Ok((out, frame.width, frame.height))
}
