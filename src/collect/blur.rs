//! The head blur of a collected crop (`collect.blur_head`). The head is a
//! property of the person, not of the classifier's input: the band is the
//! top `head_fraction` of the person's box ([`person_head`], undoing the
//! people stage's `margin`), mapped through the same resize the input went
//! through ([`input_rows`]: shorter-side crop or letterbox), and only the
//! part of it that lands in the input is blurred (nothing when the crop
//! cut the head away). The band's rows are box-blurred three times (close
//! to a Gaussian) with a radius of a tenth of the input's width, so that
//! faces are not kept recognisably ([`blur_rows`]); [`laplacian_energy`]
//! is the measure the bound is stated in (the band's high-frequency
//! energy).

use crate::detect::BoxF;
use crate::preprocess::{Placement, Spec};

/// Passes of the box blur (three approximate a Gaussian).
pub const PASSES: usize = 3;

/// What the head blur needs to know: the fraction of the person's box
/// that is the head (`collect.head_fraction`) and the margin the people
/// stage grew the box by before cutting the crop (`people.margin`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HeadBlur {
    pub fraction: f32,
    pub margin: f32,
}

/// The frame rows `(top, bottom)` of the head of the person whose crop box
/// is `grown`: the person's box grown by `margin` of its size per side,
/// then clipped to a frame `frame_h` pixels high. Unclipped, the person's
/// box is recovered exactly; where the clip cut the grown box, the rows
/// cover every person box that could have given it (a head at the top
/// of the frame is blurred from row 0).
pub fn person_head(grown: &BoxF, frame_h: u32, margin: f32, fraction: f32) -> (f32, f32) {
    let (m, f, fh) = (margin.max(0.0), fraction.max(0.0), frame_h as f32);
    let (y0, y1) = (grown.y0, grown.y1);
    let top_cut = y0 <= 0.0;
    let bottom_cut = y1 >= fh;
    match (top_cut, bottom_cut) {
        (false, false) => {
            let ph = (y1 - y0) / (1.0 + 2.0 * m);
            (y0 + m * ph, y0 + (m + f) * ph)
        }
        // The person's top lies in 0..=m·ph; the lowest head bottom is
        // when it lies at m·ph (the grown top exactly at 0).
        (true, false) => (0.0, y1 * (m + f) / (1.0 + 2.0 * m)),
        // The person's height lies between the grown box reaching just
        // the bottom and the person's own box reaching it.
        (false, true) => {
            let (lo, hi) = ((fh - y0) / (1.0 + 2.0 * m), (fh - y0) / (1.0 + m));
            (y0 + m * lo, y0 + (m + f) * hi)
        }
        (true, true) => (0.0, ((m + f) * fh).min(fh)),
    }
}

/// The rows `y0..y1` of the classifier's input (`spec`) that show crop
/// rows `head` (`(top, bottom)` in the `crop_w × crop_h` crop's pixels),
/// after the same resize the input went through: rounded outwards, kept
/// to the rows the resized crop covers. `None` when none of the head
/// lands in the input (a shorter-side crop cut it away).
pub fn input_rows(head: (f32, f32), crop_w: u32, crop_h: u32, spec: &Spec) -> Option<(u32, u32)> {
    let p = Placement::new(crop_w, crop_h, spec.width, spec.height, spec.resize);
    let s = p.resized_h as f64 / crop_h as f64;
    let at = |r: f32| p.offset_y as f64 + r as f64 * s;
    let lo = p.offset_y.max(0) as f64;
    let hi = (p.offset_y + p.resized_h as i64).min(spec.height as i64) as f64;
    let y0 = at(head.0).floor().max(lo);
    let y1 = at(head.1).ceil().min(hi);
    (y1 > y0).then_some((y0 as u32, y1 as u32))
}

/// The input rows to blur for a crop cut at `rect_y` (frame row of the
/// crop's top, `crop_w × crop_h`) from the grown-and-clipped box `grown`
/// in a frame `frame_h` high: [`person_head`] mapped by [`input_rows`].
pub fn head_rows(
    grown: &BoxF,
    frame_h: u32,
    rect_y: u32,
    crop_w: u32,
    crop_h: u32,
    spec: &Spec,
    head: HeadBlur,
) -> Option<(u32, u32)> {
    let (top, bottom) = person_head(grown, frame_h, head.margin, head.fraction);
    let y = rect_y as f32;
    input_rows((top - y, bottom - y), crop_w, crop_h, spec)
}

/// The blur's radius for an image `width` pixels wide: a tenth of the
/// width, at least 2 (22 px for a 224-pixel input: eyes, nose and mouth
/// are averaged together).
pub fn radius(width: u32) -> usize {
    (width as usize / 10).max(2)
}

/// Blurs rows `y0..y1` (the full width) of a packed RGB8 `width × height`
/// image in place. Only the band's own pixels enter the blur (edges
/// clamp), so the other rows stay exactly as they were.
pub fn blur_rows(rgb: &mut [u8], width: u32, height: u32, y0: u32, y1: u32) {
    let (y0, y1) = (y0.min(height) as usize, y1.min(height) as usize);
    let w = width as usize;
    if y1 <= y0 || w == 0 {
        return;
    }
    let rows = y1 - y0;
    let span = y0 * w * 3..y1 * w * 3;
    let r = radius(width);
    let mut band: Vec<f32> = rgb[span.clone()].iter().map(|&v| v as f32).collect();
    let mut tmp = vec![0f32; band.len()];
    for _ in 0..PASSES {
        box_pass(&band, &mut tmp, w, rows, r, true);
        box_pass(&tmp, &mut band, w, rows, r, false);
    }
    for (d, s) in rgb[span].iter_mut().zip(&band) {
        *d = s.round().clamp(0.0, 255.0) as u8;
    }
}

/// One box pass of radius `r` along rows (`horizontal`) or columns, with
/// clamped edges, by a running sum.
fn box_pass(src: &[f32], dst: &mut [f32], w: usize, h: usize, r: usize, horizontal: bool) {
    let (n, lines) = if horizontal { (w, h) } else { (h, w) };
    let at = |line: usize, i: usize| {
        if horizontal {
            (line * w + i) * 3
        } else {
            (i * w + line) * 3
        }
    };
    let norm = 1.0 / (2 * r + 1) as f32;
    for line in 0..lines {
        for c in 0..3 {
            let get = |i: isize| src[at(line, i.clamp(0, n as isize - 1) as usize) + c];
            let mut sum: f32 = (-(r as isize)..=r as isize).map(get).sum();
            for i in 0..n {
                dst[at(line, i) + c] = sum * norm;
                sum += get(i as isize + r as isize + 1) - get(i as isize - r as isize);
            }
        }
    }
}

/// Block size of [`laplacian_energy`]'s luma: 4 × 4 pixels averaged (the
/// detail of a face in a 224-pixel crop upscaled from a person a few dozen
/// pixels wide, above the 8-bit rounding noise of the PNG).
pub const BLOCK: usize = 4;

/// Mean squared 4-neighbour Laplacian of the luma of rows `y0..y1` of a
/// packed RGB8 image, averaged over [`BLOCK`]² blocks first: the band's
/// high-frequency energy at the scale of facial features.
pub fn laplacian_energy(rgb: &[u8], width: u32, height: u32, y0: u32, y1: u32) -> f64 {
    let w = width as usize;
    let (y0, y1) = (y0 as usize, (y1 as usize).min(height as usize));
    let (bw, bh) = (w / BLOCK, y1.saturating_sub(y0) / BLOCK);
    let mut luma = vec![0f64; bw * bh];
    for by in 0..bh {
        for bx in 0..bw {
            let mut sum = 0.0;
            for y in y0 + by * BLOCK..y0 + (by + 1) * BLOCK {
                for x in bx * BLOCK..(bx + 1) * BLOCK {
                    let p = &rgb[(y * w + x) * 3..(y * w + x) * 3 + 3];
                    sum += 0.299 * p[0] as f64 + 0.587 * p[1] as f64 + 0.114 * p[2] as f64;
                }
            }
            luma[by * bw + bx] = sum / (BLOCK * BLOCK) as f64;
        }
    }
    let at = |x: usize, y: usize| luma[y * bw + x];
    let (mut sum, mut n) = (0.0, 0usize);
    for y in 1..bh.saturating_sub(1) {
        for x in 1..bw.saturating_sub(1) {
            let l = at(x - 1, y) + at(x + 1, y) + at(x, y - 1) + at(x, y + 1) - 4.0 * at(x, y);
            sum += l * l;
            n += 1;
        }
    }
    if n == 0 {
        0.0
    } else {
        sum / n as f64
    }
}

#[cfg(test)]
mod tests;
