//! A frame's change signature: a `SIDE`×`SIDE` luma thumbnail (each cell
//! the mean of up to 8×8 samples of its block), read straight from the
//! frame's own layout — the Y plane of YUYV/NV12, BT.601 luma of RGB/BGR,
//! the grey values, or an MJPEG frame decoded at its smallest scale — so
//! it costs a few tens of microseconds whatever the frame size. The change
//! gate (`[gate]`, `daemon::gate`) compares it with the thumbnail of the
//! last frame it sent to the backend.

use super::mjpeg;
use super::PreprocessError;
use crate::capture::{Frame, PixelFormat};

/// Cells per side of the thumbnail.
pub const SIDE: usize = 32;
/// Samples per cell and axis, at most.
const SAMPLES: usize = 8;

/// The thumbnail: `SIDE * SIDE` mean luma values, row-major.
#[derive(Clone, PartialEq)]
pub struct Thumbnail(Box<[u8; SIDE * SIDE]>);

impl std::fmt::Debug for Thumbnail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mean = self.0.iter().map(|&v| v as u32).sum::<u32>() / (SIDE * SIDE) as u32;
        write!(f, "Thumbnail({SIDE}x{SIDE}, mean luma {mean})")
    }
}

impl Thumbnail {
    /// The thumbnail of `frame`.
    pub fn of(frame: &Frame) -> Result<Self, PreprocessError> {
        let bad = |reason: String| PreprocessError::BadFrame {
            camera: frame.camera.to_string(),
            seq: frame.seq,
            reason,
        };
        let (w, h) = (frame.width as usize, frame.height as usize);
        if frame.format == PixelFormat::Mjpeg {
            let d = mjpeg::decode(
                &frame.data,
                (SIDE as u32, SIDE as u32),
                mjpeg::Decoder::Auto,
            )
            .map_err(bad)?;
            let (dw, dh) = (d.width as usize, d.height as usize);
            return Ok(sample(dw, dh, |x, y| rgb_luma(&d.rgb[(y * dw + x) * 3..])));
        }
        if w == 0 || h == 0 {
            return Err(bad("empty frame".into()));
        }
        let row = frame.row_bytes();
        let (bpp, what) = match frame.format {
            PixelFormat::Yuyv => (2, "YUYV"),
            PixelFormat::Rgb8 | PixelFormat::Bgr8 => (3, "RGB"),
            PixelFormat::Gray8 | PixelFormat::Nv12 => (1, "luma"),
            PixelFormat::Mjpeg => unreachable!("decoded above"),
        };
        let need = row * (h - 1) + w * bpp;
        if row < w * bpp || frame.data.len() < need {
            return Err(bad(format!(
                "{what} frame {w}x{h} (row {row} bytes) needs {need} bytes, has {}",
                frame.data.len()
            )));
        }
        let d = &frame.data;
        Ok(match frame.format {
            PixelFormat::Yuyv => full_range(sample(w, h, |x, y| d[y * row + 2 * x] as u32)),
            PixelFormat::Nv12 => full_range(sample(w, h, |x, y| d[y * row + x] as u32)),
            PixelFormat::Gray8 => sample(w, h, |x, y| d[y * row + x] as u32),
            PixelFormat::Rgb8 => sample(w, h, |x, y| rgb_luma(&d[y * row + 3 * x..])),
            PixelFormat::Bgr8 => sample(w, h, |x, y| {
                let p = &d[y * row + 3 * x..];
                rgb_luma(&[p[2], p[1], p[0]])
            }),
            PixelFormat::Mjpeg => unreachable!("decoded above"),
        })
    }

    /// Mean absolute difference of two thumbnails, in grey levels (0–255).
    pub fn distance(&self, other: &Thumbnail) -> f32 {
        let sum: u32 = self
            .0
            .iter()
            .zip(other.0.iter())
            .map(|(&a, &b)| a.abs_diff(b) as u32)
            .sum();
        sum as f32 / (SIDE * SIDE) as f32
    }

    /// The cells, row-major.
    pub fn cells(&self) -> &[u8] {
        &self.0[..]
    }
}

/// BT.601 limited-range luma (16–235) to full range, as the other formats.
fn full_range(mut t: Thumbnail) -> Thumbnail {
    for v in t.0.iter_mut() {
        *v = ((*v as i32 - 16) * 255 / 219).clamp(0, 255) as u8;
    }
    t
}

/// BT.601 luma of the first three bytes (R, G, B), 0–255.
fn rgb_luma(p: &[u8]) -> u32 {
    (77 * p[0] as u32 + 150 * p[1] as u32 + 29 * p[2] as u32 + 128) >> 8
}

/// Mean of up to `SAMPLES`² evenly spread points per cell of a `w`×`h` image.
fn sample(w: usize, h: usize, luma: impl Fn(usize, usize) -> u32) -> Thumbnail {
    let mut out = Box::new([0u8; SIDE * SIDE]);
    let points = |len: usize, cell: usize| -> Vec<usize> {
        let (a, b) = (
            cell * len / SIDE,
            ((cell + 1) * len / SIDE).max(cell * len / SIDE + 1),
        );
        let b = b.min(len);
        let n = (b - a).min(SAMPLES);
        (0..n)
            .map(|i| a + (2 * i + 1) * (b - a) / (2 * n))
            .collect()
    };
    let xs: Vec<Vec<usize>> = (0..SIDE).map(|c| points(w, c)).collect();
    for cy in 0..SIDE {
        let ys = points(h, cy);
        for (cx, xs) in xs.iter().enumerate() {
            let mut sum = 0u32;
            for &y in &ys {
                for &x in xs {
                    sum += luma(x, y);
                }
            }
            let n = (ys.len() * xs.len()) as u32;
            out[cy * SIDE + cx] = ((sum + n / 2) / n) as u8;
        }
    }
    Thumbnail(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::encode;

    fn frame(format: PixelFormat, w: u32, h: u32, rgb: &[u8]) -> Frame {
        let data = match format {
            PixelFormat::Rgb8 => rgb.to_vec(),
            PixelFormat::Bgr8 => rgb.chunks(3).flat_map(|p| [p[2], p[1], p[0]]).collect(),
            PixelFormat::Gray8 => rgb.chunks(3).map(|p| rgb_luma(p) as u8).collect(),
            PixelFormat::Yuyv => encode::rgb_to_yuyv(rgb, w as usize, h as usize),
            PixelFormat::Nv12 => encode::rgb_to_nv12(rgb, w as usize, h as usize),
            PixelFormat::Mjpeg => {
                let img = image::RgbImage::from_raw(w, h, rgb.to_vec()).unwrap();
                encode::rgb_to_jpeg(&img, 95)
            }
        };
        Frame::still("t", format, w, h, data)
    }

    /// A left-to-right ramp with a bright square: every format gives
    /// (nearly) the same thumbnail, and moving the square changes it.
    #[test]
    fn every_format_gives_the_same_thumbnail() {
        let (w, h) = (320u32, 240u32);
        let image = |sq: usize| -> Vec<u8> {
            let mut v = Vec::with_capacity((w * h * 3) as usize);
            for y in 0..h as usize {
                for x in 0..w as usize {
                    let inside = (sq..sq + 60).contains(&x) && (90..150).contains(&y);
                    let g = if inside {
                        230
                    } else {
                        (x * 160 / w as usize) as u8 + 20
                    };
                    v.extend([g, g, g]);
                }
            }
            v
        };
        let base = Thumbnail::of(&frame(PixelFormat::Rgb8, w, h, &image(40))).unwrap();
        for format in [
            PixelFormat::Bgr8,
            PixelFormat::Gray8,
            PixelFormat::Yuyv,
            PixelFormat::Nv12,
            PixelFormat::Mjpeg,
        ] {
            let t = Thumbnail::of(&frame(format, w, h, &image(40))).unwrap();
            let d = base.distance(&t);
            assert!(d < 1.5, "{format:?}: distance {d} from the RGB thumbnail");
        }
        let moved = Thumbnail::of(&frame(PixelFormat::Rgb8, w, h, &image(200))).unwrap();
        assert!(
            base.distance(&moved) > 5.0,
            "a moved square changes the thumbnail: {}",
            base.distance(&moved)
        );
        assert_eq!(base.distance(&base), 0.0);
    }

    #[test]
    fn short_frames_and_small_frames() {
        let mut f = frame(PixelFormat::Yuyv, 64, 48, &vec![100; 64 * 48 * 3]);
        f.data.truncate(100);
        let e = Thumbnail::of(&f).unwrap_err().to_string();
        assert!(e.contains("needs"), "{e}");
        // Smaller than the grid: cells repeat pixels, nothing panics.
        let t = Thumbnail::of(&frame(PixelFormat::Gray8, 5, 3, &[9; 45])).unwrap();
        assert!(t.cells().iter().all(|&v| v == 9));
    }
}
