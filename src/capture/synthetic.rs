//! A synthetic camera: colour bars that scroll one step per frame with a
//! white square bouncing across them, in YUYV, NV12 or RGB. Deterministic
//! for a given sequence number, so tests and benchmarks can rely on it.

use super::{CaptureError, Frame, FrameSource, Pacer, PixelFormat, SourceState, StopToken};
use crate::config::{SyntheticCamera, SyntheticFormat};
use std::sync::Arc;
use std::time::SystemTime;

pub struct SyntheticSource {
    camera: Arc<str>,
    width: u32,
    height: u32,
    format: PixelFormat,
    frames: u64,
    seq: u64,
    pacer: Pacer,
}

const BARS: [[u8; 3]; 8] = [
    [235, 235, 235],
    [235, 235, 16],
    [16, 235, 235],
    [16, 235, 16],
    [235, 16, 235],
    [235, 16, 16],
    [16, 16, 235],
    [16, 16, 16],
];

/// BT.601 limited-range RGB → YCbCr, the inverse of what preprocessing uses.
pub fn rgb_to_ycbcr([r, g, b]: [u8; 3]) -> [u8; 3] {
    let (r, g, b) = (r as f32, g as f32, b as f32);
    let y = 16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0;
    let cb = 128.0 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255.0;
    let cr = 128.0 + (112.0 * r - 93.786 * g - 18.214 * b) / 255.0;
    [y.round() as u8, cb.round() as u8, cr.round() as u8]
}

impl SyntheticSource {
    pub fn new(name: &str, fps: f64, cfg: &SyntheticCamera) -> Self {
        let format = match cfg.pixel_format {
            SyntheticFormat::Yuyv => PixelFormat::Yuyv,
            SyntheticFormat::Nv12 => PixelFormat::Nv12,
            SyntheticFormat::Rgb => PixelFormat::Rgb8,
        };
        Self {
            camera: name.into(),
            width: cfg.width,
            height: cfg.height,
            format,
            frames: cfg.frames,
            seq: 0,
            pacer: Pacer::new(fps),
        }
    }

    /// The square's left column, top row and side in frame `seq`.
    fn square(&self, seq: u64) -> (u64, u64, u64) {
        let (w, h) = (self.width as u64, self.height as u64);
        let side = (w.min(h) / 4).max(2);
        let bounce = |t: u64, span: u64| match span {
            0 => 0,
            _ if (t / span).is_multiple_of(2) => t % span,
            _ => span - t % span,
        };
        (bounce(seq * 7, w - side), bounce(seq * 5, h - side), side)
    }

    /// The colour bar under column `x` in frame `seq`.
    fn bar(&self, seq: u64, x: u32) -> [u8; 3] {
        BARS[(((x as u64 + seq * 4) * 8 / self.width as u64) % 8) as usize]
    }

    /// The RGB colour of pixel (x, y) in frame `seq`.
    pub fn pixel(&self, seq: u64, x: u32, y: u32) -> [u8; 3] {
        let (sx, sy, side) = self.square(seq);
        let (x64, y64) = (x as u64, y as u64);
        if (sx..sx + side).contains(&x64) && (sy..sy + side).contains(&y64) {
            [255, 255, 255]
        } else {
            self.bar(seq, x)
        }
    }

    fn render(&self, seq: u64) -> Vec<u8> {
        let h = self.height as usize;
        // Every row is one of two: bars only, or bars crossed by the square.
        let (_, sy, side) = self.square(seq);
        let crossing = |y: usize| (sy..sy + side).contains(&(y as u64));
        let bars: Vec<[u8; 3]> = (0..self.width).map(|x| self.bar(seq, x)).collect();
        let crossed: Vec<[u8; 3]> = (0..self.width)
            .map(|x| self.pixel(seq, x, sy as u32))
            .collect();
        let planes: Vec<(Vec<u8>, Vec<u8>)> = [&bars, &crossed]
            .iter()
            .map(|row| match self.format {
                PixelFormat::Rgb8 => (row.concat(), vec![]),
                PixelFormat::Yuyv => (
                    row.chunks_exact(2)
                        .flat_map(|p| {
                            let [y0, u0, v0] = rgb_to_ycbcr(p[0]);
                            let [y1, u1, v1] = rgb_to_ycbcr(p[1]);
                            let u = (u0 as u16 + u1 as u16).div_ceil(2) as u8;
                            let v = (v0 as u16 + v1 as u16).div_ceil(2) as u8;
                            [y0, u, y1, v]
                        })
                        .collect(),
                    vec![],
                ),
                PixelFormat::Nv12 => (
                    row.iter().map(|&p| rgb_to_ycbcr(p)[0]).collect(),
                    row.chunks_exact(2)
                        .flat_map(|p| {
                            let [_, u, v] = rgb_to_ycbcr(p[0]);
                            [u, v]
                        })
                        .collect(),
                ),
                _ => unreachable!("constructor only accepts yuyv, nv12, rgb"),
            })
            .collect();
        let plane = |y: usize| &planes[crossing(y) as usize];
        let mut out = Vec::with_capacity(planes[0].0.len() * h * 2);
        for y in 0..h {
            out.extend_from_slice(&plane(y).0);
        }
        // NV12: one chroma row per two luma rows.
        for y in (0..h).step_by(2) {
            out.extend_from_slice(&plane(y).1);
        }
        out
    }
}

impl FrameSource for SyntheticSource {
    fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError> {
        if self.frames != 0 && self.seq >= self.frames {
            return Ok(None);
        }
        if !self.pacer.wait() {
            return Ok(None);
        }
        let seq = self.seq;
        self.seq += 1;
        Ok(Some(Frame {
            camera: self.camera.clone(),
            seq,
            captured_at: SystemTime::now(),
            driver_timestamp: None,
            driver_sequence: None,
            lost_before: 0,
            width: self.width,
            height: self.height,
            format: self.format,
            stride: 0,
            data: self.render(seq),
        }))
    }

    fn stopper(&self) -> StopToken {
        self.pacer.stop.clone()
    }

    fn state(&self) -> SourceState {
        if self.frames != 0 && self.seq >= self.frames {
            SourceState::Ended
        } else {
            SourceState::Streaming
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(pixel_format: SyntheticFormat) -> SyntheticSource {
        let cfg = SyntheticCamera {
            width: 64,
            height: 32,
            pixel_format,
            frames: 3,
        };
        SyntheticSource::new("s", 0.0, &cfg)
    }

    #[test]
    fn sizes_and_end() {
        for (fmt, bytes) in [
            (SyntheticFormat::Rgb, 64 * 32 * 3),
            (SyntheticFormat::Yuyv, 64 * 32 * 2),
            (SyntheticFormat::Nv12, 64 * 32 * 3 / 2),
        ] {
            let mut s = source(fmt);
            let mut n = 0;
            while let Some(f) = s.next_frame().unwrap() {
                assert_eq!(f.data.len(), bytes, "{fmt:?}");
                assert_eq!(f.seq, n);
                n += 1;
            }
            assert_eq!(n, 3);
            assert_eq!(s.state(), SourceState::Ended);
        }
    }

    #[test]
    fn rendered_rows_match_the_pattern() {
        let s = source(SyntheticFormat::Rgb);
        for seq in [0, 3, 17] {
            let data = s.render(seq);
            for y in 0..32 {
                for x in 0..64 {
                    let i = ((y * 64 + x) * 3) as usize;
                    assert_eq!(data[i..i + 3], s.pixel(seq, x, y), "seq {seq} ({x},{y})");
                }
            }
        }
    }

    #[test]
    fn pattern_moves() {
        let mut s = source(SyntheticFormat::Rgb);
        let a = s.next_frame().unwrap().unwrap();
        let b = s.next_frame().unwrap().unwrap();
        assert_ne!(a.data, b.data);
    }
}
