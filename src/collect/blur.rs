//! The head blur of a collected crop (`collect.blur_head`): the top
//! `head_fraction` of the image, box-blurred three times (close to a
//! Gaussian) with a radius of a tenth of the crop's width, so that faces
//! are not kept recognisably; and the measure the bound is stated in
//! ([`laplacian_energy`]: the band's high-frequency energy).

/// Passes of the box blur (three approximate a Gaussian).
pub const PASSES: usize = 3;

/// The band blurred: rows `0..band_rows(h, fraction)`.
pub fn band_rows(height: u32, fraction: f32) -> u32 {
    ((height as f32 * fraction).round() as u32).min(height)
}

/// The blur's radius for a crop `width` pixels wide: a tenth of the width,
/// at least 2 (22 px for a 224-pixel input: eyes, nose and mouth are
/// averaged together).
pub fn radius(width: u32) -> usize {
    (width as usize / 10).max(2)
}

/// Blurs the top `fraction` of a packed RGB8 `width × height` image in
/// place. Only the band's own pixels enter the blur (edges clamp), so the
/// rows below stay exactly as they were.
pub fn blur_head(rgb: &mut [u8], width: u32, height: u32, fraction: f32) {
    let rows = band_rows(height, fraction) as usize;
    let w = width as usize;
    if rows == 0 || w == 0 {
        return;
    }
    let r = radius(width);
    let mut band: Vec<f32> = rgb[..rows * w * 3].iter().map(|&v| v as f32).collect();
    let mut tmp = vec![0f32; band.len()];
    for _ in 0..PASSES {
        box_pass(&band, &mut tmp, w, rows, r, true);
        box_pass(&tmp, &mut band, w, rows, r, false);
    }
    for (d, s) in rgb[..rows * w * 3].iter_mut().zip(&band) {
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
mod tests {
    use super::*;

    #[test]
    fn the_band_is_smoothed_and_the_rest_untouched() {
        let (w, h) = (64u32, 128u32);
        // A checkerboard of 8-pixel squares: all detail.
        let img: Vec<u8> = (0..w * h)
            .flat_map(|i| {
                let (x, y) = (i % w, i / w);
                let v = if (x / 8 + y / 8) % 2 == 0 { 250 } else { 5 };
                [v, v, v]
            })
            .collect();
        let mut out = img.clone();
        blur_head(&mut out, w, h, 0.25);
        let rows = band_rows(h, 0.25);
        assert_eq!(rows, 32);
        let before = laplacian_energy(&img, w, h, 0, rows);
        let after = laplacian_energy(&out, w, h, 0, rows);
        assert!(after < before * 0.001, "{after} vs {before}");
        let split = (rows * w * 3) as usize;
        assert_eq!(out[split..], img[split..]);
        // The mean is kept (a blur, not a black bar).
        let mean = |v: &[u8]| v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
        assert!((mean(&out[..split]) - mean(&img[..split])).abs() < 2.0);
        // Nothing to blur: unchanged.
        let mut same = img.clone();
        blur_head(&mut same, w, h, 0.0);
        assert_eq!(same, img);
    }
}
