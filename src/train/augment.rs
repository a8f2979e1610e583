//! Augmentation on CHW f32 images (already normalised): horizontal flip,
//! translation with zero padding, rotation (±15° in the recipe), random
//! resized crop and random erasing (Zhong et al. 2017). All draws come from
//! the caller's seeded [`Rng`], so a run is repeatable.

use crate::rng::Rng;

/// Which augmentations run, with their probabilities and ranges.
#[derive(Clone, Debug, PartialEq)]
pub struct Augment {
    pub flip: bool,
    /// Max shift in pixels (random crop of a zero-padded image).
    pub translate: usize,
    /// Max rotation in degrees (0 = off).
    pub rotate_deg: f32,
    /// Random resized crop: min fraction of the area kept (1 = off).
    pub crop_min_area: f32,
    /// Probability of erasing one random rectangle.
    pub erase_p: f32,
}

impl Augment {
    pub const NONE: Augment = Augment {
        flip: false,
        translate: 0,
        rotate_deg: 0.0,
        crop_min_area: 1.0,
        erase_p: 0.0,
    };

    /// The paper's recipe: random erasing, rotation ±15°, random resized crop,
    /// horizontal flip.
    pub fn recipe() -> Self {
        Self {
            flip: true,
            translate: 0,
            rotate_deg: 15.0,
            crop_min_area: 0.6,
            erase_p: 0.5,
        }
    }

    /// Applies the configured augmentations in place to one `[c, h, w]` image.
    pub fn apply(&self, img: &mut [f32], c: usize, h: usize, w: usize, rng: &mut Rng) {
        if self.flip && rng.uniform() < 0.5 {
            flip_h(img, c, h, w);
        }
        if self.rotate_deg > 0.0 || self.crop_min_area < 1.0 || self.translate > 0 {
            let angle = (rng.uniform() * 2.0 - 1.0) * self.rotate_deg;
            let area = self.crop_min_area + (1.0 - self.crop_min_area) * rng.uniform();
            let zoom = area.sqrt();
            let max_shift = self.translate as f32 + (1.0 - zoom) * 0.5 * h.min(w) as f32;
            let dx = (rng.uniform() * 2.0 - 1.0) * max_shift;
            let dy = (rng.uniform() * 2.0 - 1.0) * max_shift;
            warp(img, c, h, w, angle, zoom, dx, dy);
        }
        if self.erase_p > 0.0 && rng.uniform() < self.erase_p {
            erase(img, c, h, w, rng);
        }
    }
}

pub fn flip_h(img: &mut [f32], c: usize, h: usize, w: usize) {
    for row in img[..c * h * w].chunks_mut(w) {
        row.reverse();
    }
}

/// Output pixel (x, y) samples the input at the inverse of: rotate by
/// `angle_deg` about the centre, scale by 1/`zoom` (zoom < 1 crops in),
/// shift by (dx, dy). Bilinear; outside the image reads 0 (the mean after
/// normalisation).
#[allow(clippy::too_many_arguments)]
pub fn warp(
    img: &mut [f32],
    c: usize,
    h: usize,
    w: usize,
    angle_deg: f32,
    zoom: f32,
    dx: f32,
    dy: f32,
) {
    let src = img[..c * h * w].to_vec();
    let (sin, cos) = angle_deg.to_radians().sin_cos();
    let (cx, cy) = ((w as f32 - 1.0) / 2.0, (h as f32 - 1.0) / 2.0);
    for y in 0..h {
        for x in 0..w {
            let (u, v) = (x as f32 - cx - dx, y as f32 - cy - dy);
            let sx = (cos * u + sin * v) * zoom + cx;
            let sy = (-sin * u + cos * v) * zoom + cy;
            let (x0, y0) = (sx.floor(), sy.floor());
            let (fx, fy) = (sx - x0, sy - y0);
            for ch in 0..c {
                let plane = &src[ch * h * w..(ch + 1) * h * w];
                let at = |xx: f32, yy: f32| -> f32 {
                    if xx < 0.0 || yy < 0.0 || xx >= w as f32 || yy >= h as f32 {
                        0.0
                    } else {
                        plane[yy as usize * w + xx as usize]
                    }
                };
                let v = at(x0, y0) * (1.0 - fx) * (1.0 - fy)
                    + at(x0 + 1.0, y0) * fx * (1.0 - fy)
                    + at(x0, y0 + 1.0) * (1.0 - fx) * fy
                    + at(x0 + 1.0, y0 + 1.0) * fx * fy;
                img[ch * h * w + y * w + x] = v;
            }
        }
    }
}

/// Random erasing: a rectangle of 2–33% of the area, aspect 0.3–3.3, filled
/// with normal noise.
pub fn erase(img: &mut [f32], c: usize, h: usize, w: usize, rng: &mut Rng) {
    for _ in 0..10 {
        let area = (0.02 + 0.31 * rng.uniform()) * (h * w) as f32;
        let aspect = (0.3f32.ln() + (3.3f32.ln() - 0.3f32.ln()) * rng.uniform()).exp();
        let eh = (area * aspect).sqrt().round() as usize;
        let ew = (area / aspect).sqrt().round() as usize;
        if eh == 0 || ew == 0 || eh >= h || ew >= w {
            continue;
        }
        let y0 = (rng.uniform() * (h - eh) as f32) as usize;
        let x0 = (rng.uniform() * (w - ew) as f32) as usize;
        for ch in 0..c {
            for y in y0..y0 + eh {
                for x in x0..x0 + ew {
                    img[ch * h * w + y * w + x] = rng.normal();
                }
            }
        }
        return;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_warp_keeps_the_image() {
        let mut rng = Rng::new(1);
        let img: Vec<f32> = (0..2 * 5 * 6).map(|_| rng.normal()).collect();
        let mut out = img.clone();
        warp(&mut out, 2, 5, 6, 0.0, 1.0, 0.0, 0.0);
        assert!(img.iter().zip(&out).all(|(a, b)| (a - b).abs() < 1e-6));
    }

    #[test]
    fn shift_moves_pixels_and_flip_mirrors() {
        let mut img = vec![0.0; 16];
        img[5] = 1.0; // (x=1, y=1)
        let mut shifted = img.clone();
        warp(&mut shifted, 1, 4, 4, 0.0, 1.0, 1.0, 0.0);
        assert_eq!(shifted[6], 1.0);
        flip_h(&mut img, 1, 4, 4);
        assert_eq!(img[6], 1.0);
    }

    #[test]
    fn erasing_changes_a_rectangle_only() {
        let mut rng = Rng::new(3);
        let mut img = vec![0.0; 3 * 32 * 32];
        erase(&mut img, 3, 32, 32, &mut rng);
        let changed = img.iter().filter(|v| **v != 0.0).count();
        assert!(changed > 3 * 20 && changed < 3 * 32 * 32 / 2, "{changed}");
    }
}
