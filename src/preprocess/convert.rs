//! Pixel-format conversion to tightly packed RGB8.
//!
//! YUYV and NV12 use BT.601 limited range, the V4L2 default for webcams,
//! in the usual 8-bit fixed point (coefficients ×256, rounded):
//! `C = Y-16, D = U-128, E = V-128`,
//! `R = (298C + 409E + 128) >> 8`, `G = (298C - 100D - 208E + 128) >> 8`,
//! `B = (298C + 516D + 128) >> 8`, clamped to 0..=255. The CUDA kernels
//! must use the same integer formula.

use super::PreprocessError;
use crate::capture::{Frame, PixelFormat};
use std::borrow::Cow;

fn bad(frame: &Frame, reason: impl Into<String>) -> PreprocessError {
    PreprocessError::BadFrame {
        camera: frame.camera.to_string(),
        seq: frame.seq,
        reason: reason.into(),
    }
}

#[inline]
fn yuv_to_rgb(y: u8, u: u8, v: u8) -> [u8; 3] {
    let c = 298 * (y as i32 - 16);
    let d = u as i32 - 128;
    let e = v as i32 - 128;
    let px = |x: i32| ((x + 128) >> 8).clamp(0, 255) as u8;
    [px(c + 409 * e), px(c - 100 * d - 208 * e), px(c + 516 * d)]
}

/// Converts any supported frame to packed RGB8; returns `(rgb, width, height)`.
/// A tightly packed RGB8 frame is borrowed, not copied.
pub fn to_rgb8(frame: &Frame) -> Result<(Cow<'_, [u8]>, u32, u32), PreprocessError> {
    let (w, h) = (frame.width as usize, frame.height as usize);
    if frame.format == PixelFormat::Mjpeg {
        // Our marker parser reads the size first (the fused path does the
        // same): a frame it cannot read is refused, not handed to a more
        // lenient decoder that would trust a corrupt SOF (a 12288x8192
        // claim found by fuzzing).
        let info = super::mjpeg::info(&frame.data).ok_or_else(|| {
            bad(
                frame,
                "not a JPEG frame (no SOI, or no SOF before the scan)",
            )
        })?;
        if let Some(why) = super::mjpeg::too_large(&info) {
            return Err(bad(frame, why));
        }
        let img = match image::load_from_memory_with_format(&frame.data, image::ImageFormat::Jpeg) {
            Ok(img) => img.into_rgb8(),
            // A UVC frame without Huffman tables: decoded with the standard ones.
            Err(_) if !info.has_huffman_tables => {
                let full = super::mjpeg::decode(
                    &frame.data,
                    (u32::MAX, u32::MAX),
                    super::mjpeg::Decoder::Rust,
                )
                .map_err(|e| bad(frame, e))?;
                return Ok((Cow::Owned(full.rgb), full.width, full.height));
            }
            Err(e) => return Err(bad(frame, format!("MJPEG frame does not decode: {e}"))),
        };
        let (iw, ih) = img.dimensions();
        return Ok((Cow::Owned(img.into_raw()), iw, ih));
    }
    let stride = frame.row_bytes();
    frame.expected_len().map_err(|reason| bad(frame, reason))?;
    if frame.format == PixelFormat::Rgb8 && stride == w * 3 {
        return Ok((
            Cow::Borrowed(&frame.data[..w * h * 3]),
            frame.width,
            frame.height,
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
    Ok((Cow::Owned(out), frame.width, frame.height))
}
