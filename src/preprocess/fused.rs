//! YUYV and NV12 → model input without a full-size RGB image.
//!
//! The reference path converts every pixel of the frame to RGB, then
//! resamples. Here the Y, U and V planes are resampled where they are (the
//! vertical pass runs over the packed bytes of each touched source row,
//! Y/U/V interleaved, so it vectorises; the horizontal pass picks each
//! plane out of that line), and only the model-sized result is converted,
//! with the reference's BT.601 coefficients, and normalised straight into
//! the CHW output. Chroma is resampled from its own grid (half width; for
//! NV12 also half height) with weights summed from the luma filter's, so a
//! chroma sample weighs exactly what its two (four) pixels would in the
//! reference, which replicates chroma to full size before filtering.
//!
//! Against the reference (the tests below, on three real photos at
//! 1280×720 and 640×480, both resize modes, 224 and 299; before
//! normalisation, in grey levels) the bound is max |difference| ≤ 12 and
//! mean ≤ 0.2 per channel. Measured: mean ≤ 0.15 everywhere; max ≤ 3.6 at
//! 1280×720, ≤ 10.3 at 640×480 (R and B, a few pixels). The differences
//! come from rounding (the reference rounds to u8 after conversion) and
//! clamping: at a sharp edge of a saturated colour, 4:2:x chroma gives
//! pixels outside the RGB cube; the reference clamps each before averaging,
//! we clamp the average. The less the frame is scaled down, the fewer
//! pixels share a sample and the more that shows.

use super::resize::{taps, Placement, Taps};
use super::{PreprocessError, Spec};
use crate::capture::{Frame, PixelFormat};

fn bad(frame: &Frame, reason: String) -> PreprocessError {
    PreprocessError::BadFrame {
        camera: frame.camera.to_string(),
        seq: frame.seq,
        reason,
    }
}

/// Output columns/rows inside the resized image, and the filters for them.
struct Grid {
    x0: usize,
    x1: usize,
    y0: usize,
    y1: usize,
    /// Luma, horizontal and vertical.
    hx: Taps,
    vy: Taps,
    /// Chroma, horizontal and (NV12) vertical.
    cx: Taps,
    cy: Taps,
}

impl Grid {
    fn new(w: u32, h: u32, chroma_h: u32, spec: &Spec) -> Self {
        let p = Placement::new(w, h, spec.width, spec.height, spec.resize);
        let x0 = p.offset_x.max(0) as usize;
        let x1 = (p.offset_x + p.resized_w as i64).min(spec.width as i64) as usize;
        let y0 = p.offset_y.max(0) as usize;
        let y1 = (p.offset_y + p.resized_h as i64).min(spec.height as i64) as usize;
        let (fx, fy) = (x0 as i64 - p.offset_x, y0 as i64 - p.offset_y);
        Self {
            hx: taps(w, p.resized_w, fx, x1 - x0),
            vy: taps(h, p.resized_h, fy, y1 - y0),
            cx: halved(&taps(w, p.resized_w, fx, x1 - x0)),
            cy: if chroma_h < h {
                halved(&taps(h, p.resized_h, fy, y1 - y0))
            } else {
                taps(h, p.resized_h, fy, y1 - y0)
            },
            x0,
            x1,
            y0,
            y1,
        }
    }
}

/// Luma taps → the taps of a plane at half resolution whose samples each
/// stand for two luma samples: a chroma sample weighs the sum of its two
/// pixels' weights. Exactly what replicating chroma to full size and
/// filtering there (the reference) computes.
fn halved(t: &Taps) -> Taps {
    let n = t.start.len();
    let ksize = t.ksize / 2 + 2;
    let mut out = Taps {
        start: Vec::with_capacity(n),
        len: Vec::with_capacity(n),
        weights: vec![0.0; ksize * n],
        ksize,
    };
    for i in 0..n {
        let (s, len) = (t.start[i], t.len[i].max(1));
        let first = s / 2;
        for k in 0..t.len[i] {
            out.weights[i * ksize + (s + k) / 2 - first] += t.weights[i * t.ksize + k];
        }
        out.start.push(first);
        out.len.push((s + len - 1) / 2 - first + 1);
    }
    out
}

/// Source sample range `[lo, hi)` the taps touch.
fn span(t: &Taps) -> (usize, usize) {
    let lo = t.start.iter().copied().min().unwrap_or(0);
    let hi = (0..t.start.len())
        .map(|i| t.start[i] + t.len[i])
        .max()
        .unwrap_or(0);
    (lo, hi.max(lo))
}

/// `line = Σ_j w_j · row(start_r + j)[first..first+len]`.
fn vertical(line: &mut [f32], data: &[u8], stride: usize, first: usize, t: &Taps, r: usize) {
    line.fill(0.0);
    let k = &t.weights[r * t.ksize..r * t.ksize + t.len[r]];
    let n = line.len();
    for (j, &w) in k.iter().enumerate() {
        let at = (t.start[r] + j) * stride + first;
        for (o, &v) in line.iter_mut().zip(&data[at..at + n]) {
            *o += w * v as f32;
        }
    }
}

/// Writes one output pixel from resampled Y, U, V (BT.601 limited range,
/// the reference's coefficients, clamped), normalised, in CHW.
#[inline]
fn put(out: &mut [f32], plane: usize, at: usize, yuv: [f32; 3], norm: &[(f32, f32); 3]) {
    let c = 298.0 / 256.0 * (yuv[0] - 16.0);
    let d = yuv[1] - 128.0;
    let e = yuv[2] - 128.0;
    let rgb = [
        c + 409.0 / 256.0 * e,
        c - 100.0 / 256.0 * d - 208.0 / 256.0 * e,
        c + 516.0 / 256.0 * d,
    ];
    for ch in 0..3 {
        out[ch * plane + at] = rgb[ch].clamp(0.0, 255.0) * norm[ch].0 - norm[ch].1;
    }
}

/// YUYV or NV12 `frame` → `out` (`spec.len()` values, CHW, normalised).
pub(super) fn yuv_into(frame: &Frame, spec: &Spec, out: &mut [f32]) -> Result<(), PreprocessError> {
    let (w, h) = (frame.width as usize, frame.height as usize);
    let stride = frame.row_bytes();
    frame.expected_len().map_err(|reason| bad(frame, reason))?;
    // The vertical filters need two rows.
    if h < 2 {
        return Err(bad(
            frame,
            format!("{:?} {w}x{h}: fewer than two rows", frame.format),
        ));
    }
    let chroma_h = match frame.format {
        PixelFormat::Nv12 => h.div_ceil(2),
        _ => h,
    };
    let g = Grid::new(frame.width, frame.height, chroma_h as u32, spec);
    let plane = spec.width as usize * spec.height as usize;
    let norm: [(f32, f32); 3] =
        std::array::from_fn(|c| (1.0 / (255.0 * spec.std[c]), spec.mean[c] / spec.std[c]));
    if g.x1 - g.x0 < spec.width as usize || g.y1 - g.y0 < spec.height as usize {
        out.fill(0.0); // letterbox padding: the mean, normalised
    }
    let (lx0, lx1) = span(&g.hx);
    let (cx0, cx1) = span(&g.cx);
    let d = &frame.data;
    match frame.format {
        PixelFormat::Yuyv => {
            // Bytes of the row the luma and chroma taps touch, from a whole
            // macropixel (4 bytes: Y0 U Y1 V).
            let b0 = (lx0 * 2).min(cx0 * 4) & !3;
            let b1 = (lx1 * 2).max(cx1 * 4).min(w * 2);
            let mut line = vec![0f32; b1 - b0];
            for r in 0..g.y1 - g.y0 {
                vertical(&mut line, d, stride, b0, &g.vy, r);
                let row = (g.y0 + r) * spec.width as usize;
                for i in 0..g.x1 - g.x0 {
                    let yuv = [
                        shifted(&line, &g.hx, i, 2, 0, b0),
                        shifted(&line, &g.cx, i, 4, 1, b0),
                        shifted(&line, &g.cx, i, 4, 3, b0),
                    ];
                    put(out, plane, row + g.x0 + i, yuv, &norm);
                }
            }
        }
        PixelFormat::Nv12 => {
            let chroma = &d[stride * h..];
            let mut yline = vec![0f32; lx1 - lx0];
            let c0 = cx0 * 2;
            let mut cline = vec![0f32; (cx1 * 2).min(w) - c0];
            for r in 0..g.y1 - g.y0 {
                vertical(&mut yline, d, stride, lx0, &g.vy, r);
                vertical(&mut cline, chroma, stride, c0, &g.cy, r);
                let row = (g.y0 + r) * spec.width as usize;
                for i in 0..g.x1 - g.x0 {
                    let yuv = [
                        shifted(&yline, &g.hx, i, 1, 0, lx0),
                        shifted(&cline, &g.cx, i, 2, 0, c0),
                        shifted(&cline, &g.cx, i, 2, 1, c0),
                    ];
                    put(out, plane, row + g.x0 + i, yuv, &norm);
                }
            }
        }
        _ => unreachable!(),
    }
    Ok(())
}

/// `Σ_k w_k · line[(start_i + k)·step + offset − first]`: one plane's
/// horizontal filter on a line that starts at byte `first` of the row.
#[inline]
fn shifted(line: &[f32], t: &Taps, i: usize, step: usize, offset: usize, first: usize) -> f32 {
    let k = &t.weights[i * t.ksize..i * t.ksize + t.len[i]];
    let base = t.start[i] * step + offset - first;
    let mut acc = 0.0;
    for (j, &w) in k.iter().enumerate() {
        acc += w * line[base + j * step];
    }
    acc
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::{preprocess_reference_into, ResizeMode, Spec};
    use super::*;
    use crate::capture::encode;

    pub(crate) fn photo(name: &str) -> image::RgbImage {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let path = match name {
            "astronaut" => root.join("assets/photos/astronaut.jpg"),
            n => root.join(format!("tests/data/photos/{n}.jpg")),
        };
        image::open(path).unwrap().into_rgb8()
    }

    pub(crate) fn frame(
        format: PixelFormat,
        w: u32,
        h: u32,
        data: Vec<u8>,
        stride: usize,
    ) -> Frame {
        Frame {
            stride,
            ..Frame::still("t", format, w, h, data)
        }
    }

    pub(crate) fn spec(size: u32, resize: ResizeMode) -> Spec {
        Spec::imagenet(size, size, resize)
    }

    /// Per channel (max, mean) |difference| in grey levels (0..=255).
    pub(crate) fn grey_diff(a: &[f32], b: &[f32], spec: &Spec) -> [(f32, f32); 3] {
        let plane = spec.width as usize * spec.height as usize;
        std::array::from_fn(|c| {
            let s = 255.0 * spec.std[c];
            let (mut max, mut sum) = (0f32, 0f64);
            for i in c * plane..(c + 1) * plane {
                let d = (a[i] - b[i]).abs() * s;
                max = max.max(d);
                sum += d as f64;
            }
            (max, (sum / plane as f64) as f32)
        })
    }

    fn check(format: PixelFormat, w: u32, h: u32, padded_stride: bool) -> [(f32, f32); 3] {
        let mut worst = [(0f32, 0f32); 3];
        for name in ["coffee", "chelsea", "astronaut"] {
            let scene = encode::scene(&photo(name), w, h);
            let (w_, h_) = (w as usize, h as usize);
            let (mut data, row) = match format {
                PixelFormat::Yuyv => (encode::rgb_to_yuyv(scene.as_raw(), w_, h_), w_ * 2),
                _ => (encode::rgb_to_nv12(scene.as_raw(), w_, h_), w_),
            };
            let mut stride = 0;
            if padded_stride {
                // Rows padded to a multiple of 64 bytes plus 64, as some drivers do.
                stride = (row + 127) / 64 * 64;
                let rows = data.len() / row;
                data = data
                    .chunks_exact(row)
                    .take(rows)
                    .flat_map(|r| {
                        r.iter()
                            .copied()
                            .chain(std::iter::repeat_n(0xAB, stride - row))
                    })
                    .collect();
            }
            let f = frame(format, w, h, data, stride);
            for mode in [ResizeMode::ShorterSideCrop, ResizeMode::Letterbox] {
                for size in [224, 299] {
                    let s = spec(size, mode);
                    let mut ours = vec![f32::NAN; s.len()];
                    let mut reference = vec![0.0; s.len()];
                    yuv_into(&f, &s, &mut ours).unwrap();
                    preprocess_reference_into(&f, &s, &mut reference).unwrap();
                    for (c, (max, mean)) in grey_diff(&ours, &reference, &s).into_iter().enumerate()
                    {
                        worst[c].0 = worst[c].0.max(max);
                        worst[c].1 = worst[c].1.max(mean);
                    }
                }
            }
        }
        eprintln!("{format:?} {w}x{h} (padded stride: {padded_stride}) vs reference, per channel (max, mean) grey levels: {worst:?}");
        for (max, mean) in worst {
            assert!(max <= 12.0 && mean <= 0.2, "{format:?} {w}x{h}: {worst:?}");
        }
        worst
    }

    #[test]
    fn yuyv_matches_the_reference_on_real_photos() {
        check(PixelFormat::Yuyv, 1280, 720, false);
        check(PixelFormat::Yuyv, 640, 480, true);
    }

    #[test]
    fn nv12_matches_the_reference_on_real_photos() {
        check(PixelFormat::Nv12, 1280, 720, false);
        check(PixelFormat::Nv12, 640, 480, true);
    }

    #[test]
    fn short_or_odd_frames_are_refused() {
        let s = spec(224, ResizeMode::ShorterSideCrop);
        let mut out = vec![0.0; s.len()];
        let f = frame(PixelFormat::Yuyv, 641, 480, vec![0; 641 * 480 * 2], 0);
        assert!(yuv_into(&f, &s, &mut out).is_err());
        let f = frame(PixelFormat::Nv12, 640, 480, vec![0; 640 * 480], 0);
        let e = yuv_into(&f, &s, &mut out).unwrap_err().to_string();
        assert!(e.contains("460800 bytes, got 307200"), "{e}");
    }
}
