//! Separable resampling with Pillow's `BILINEAR` filter (a triangle whose
//! support widens with the downscale factor, so strong downscales average
//! every source pixel instead of aliasing). Computed in f32; Pillow rounds
//! to u8 after each pass, so the two agree to about one grey level.

use super::ResizeMode;

/// Where the resized image lands in the output: `(offset, resized size)` per axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub resized_w: u32,
    pub resized_h: u32,
    /// Output x of resized column 0 (negative when cropping).
    pub offset_x: i64,
    pub offset_y: i64,
}

impl Placement {
    pub fn new(src_w: u32, src_h: u32, dst_w: u32, dst_h: u32, mode: ResizeMode) -> Self {
        let sx = dst_w as f64 / src_w as f64;
        let sy = dst_h as f64 / src_h as f64;
        let s = match mode {
            ResizeMode::ShorterSideCrop => sx.max(sy),
            ResizeMode::Letterbox => sx.min(sy),
        };
        let fit = |src: u32, dst: u32, scale_is_this_axis: bool| {
            if scale_is_this_axis {
                dst
            } else {
                ((src as f64 * s).round() as u32).max(1)
            }
        };
        let resized_w = fit(src_w, dst_w, s == sx);
        let resized_h = fit(src_h, dst_h, s == sy);
        Self {
            resized_w,
            resized_h,
            offset_x: (dst_w as i64 - resized_w as i64) / 2,
            offset_y: (dst_h as i64 - resized_h as i64) / 2,
        }
    }
}

/// Filter taps of one output sample: first source index and weights.
pub(super) struct Taps {
    pub(super) start: Vec<usize>,
    pub(super) len: Vec<usize>,
    pub(super) weights: Vec<f32>,
    pub(super) ksize: usize,
}

/// Pillow's `precompute_coeffs` for a triangle filter, for output samples
/// `first..first+count` of an axis resized from `in_size` to `out_size`.
pub(super) fn taps(in_size: u32, out_size: u32, first: i64, count: usize) -> Taps {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let mut t = Taps {
        start: vec![],
        len: vec![],
        weights: vec![0.0; ksize * count],
        ksize,
    };
    for i in 0..count {
        let xx = (first + i as i64) as f64;
        let center = (xx + 0.5) * scale;
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
        let n = xmax.saturating_sub(xmin);
        let k = &mut t.weights[i * ksize..i * ksize + ksize];
        let mut total = 0.0;
        for (x, w) in k.iter_mut().take(n).enumerate() {
            let d = ((x + xmin) as f64 - center + 0.5) / filterscale;
            let v = (1.0 - d.abs()).max(0.0);
            *w = v as f32;
            total += v;
        }
        if total != 0.0 {
            for w in k.iter_mut().take(n) {
                *w = (*w as f64 / total) as f32;
            }
        }
        t.start.push(xmin);
        t.len.push(n);
    }
    t
}

/// Resizes packed RGB8 into a `dst_w × dst_h` HWC f32 image (values 0..=255).
/// Pixels outside the resized image (letterbox padding) are NaN.
///
/// The vertical pass runs first, over contiguous source rows (it
/// vectorises), then the horizontal pass on the few output rows. In exact
/// arithmetic the order does not matter; in f32 it changes results by far
/// less than one grey level.
pub fn resample_rgb(
    rgb: &[u8],
    src_w: u32,
    src_h: u32,
    dst_w: u32,
    dst_h: u32,
    mode: ResizeMode,
) -> Vec<f32> {
    let p = Placement::new(src_w, src_h, dst_w, dst_h, mode);
    // Output columns/rows that fall inside the resized image.
    let x0 = p.offset_x.max(0) as usize;
    let x1 = (p.offset_x + p.resized_w as i64).min(dst_w as i64) as usize;
    let y0 = p.offset_y.max(0) as usize;
    let y1 = (p.offset_y + p.resized_h as i64).min(dst_h as i64) as usize;
    let (cols, rows) = (x1 - x0, y1 - y0);
    let hx = taps(src_w, p.resized_w, x0 as i64 - p.offset_x, cols);
    let vy = taps(src_h, p.resized_h, y0 as i64 - p.offset_y, rows);

    // Source columns the horizontal taps touch.
    let col_lo = hx.start.first().copied().unwrap_or(0);
    let col_hi = (0..cols)
        .map(|i| hx.start[i] + hx.len[i])
        .max()
        .unwrap_or(0);
    let sw = src_w as usize;
    let span = (col_hi - col_lo) * 3;

    let dw = dst_w as usize;
    let mut out = vec![f32::NAN; dw * dst_h as usize * 3];
    let mut line = vec![0f32; span];
    for r in 0..rows {
        // Vertical: one row of the touched columns, from contiguous source rows.
        line.fill(0.0);
        let k = &vy.weights[r * vy.ksize..r * vy.ksize + vy.len[r]];
        for (j, &w) in k.iter().enumerate() {
            let sy = vy.start[r] + j;
            let src = &rgb[sy * sw * 3 + col_lo * 3..sy * sw * 3 + col_lo * 3 + span];
            for (o, &v) in line.iter_mut().zip(src) {
                *o += w * v as f32;
            }
        }
        // Horizontal: the output row, NaN left where there is padding.
        let dst = &mut out[((y0 + r) * dw + x0) * 3..((y0 + r) * dw + x1) * 3];
        for (i, d) in dst.chunks_exact_mut(3).enumerate() {
            let k = &hx.weights[i * hx.ksize..i * hx.ksize + hx.len[i]];
            let from = (hx.start[i] - col_lo) * 3;
            let px = &line[from..from + k.len() * 3];
            let mut acc = [0f32; 3];
            for (w, p) in k.iter().zip(px.chunks_exact(3)) {
                acc[0] += w * p[0];
                acc[1] += w * p[1];
                acc[2] += w * p[2];
            }
            d.copy_from_slice(&acc);
        }
    }
    out
}
