//! A synthetic multi-label garment dataset for the ablation: procedural
//! images whose visual cues depend on the labels, with label rows drawn with
//! the real JD label statistics (marginals, sports ⇒ casual,
//! P(lady | office_lady) ≈ 0.98, japanese and korean never together; see
//! [`crate::styles::simulate::jd_like_labels`]).
//!
//! Each image is a textured "garment" on a background. Each style present
//! adds its cue: a patch of the style's own hue and pattern (disc, square,
//! stripes or checks) at a random place, size and contrast; faint cues make
//! some labels hard, and random distractor patches of in-between hues add
//! false alarms. The cues are learnable but not trivially separable, so
//! the recipe's parts (augmentation, cost-sensitive loss, relations,
//! thresholds) each have something to fix.

use crate::rng::Rng;
use crate::styles::simulate::jd_like_labels;

/// `n` RGB images (`size`×`size`, HWC u8) with their 13-class label rows.
pub fn generate(n: usize, size: usize, seed: u64) -> (Vec<Vec<u8>>, Vec<Vec<f32>>) {
    let labels = jd_like_labels(n, seed);
    let mut rng = Rng::new(seed ^ 0x5eed_ca11);
    let images = labels.iter().map(|row| draw(row, size, &mut rng)).collect();
    (images, labels)
}

fn hue_rgb(h: f32, v: f32) -> [f32; 3] {
    // HSV with full saturation.
    let h6 = (h.rem_euclid(1.0)) * 6.0;
    let x = 1.0 - (h6 % 2.0 - 1.0).abs();
    let (r, g, b) = match h6 as usize {
        0 => (1.0, x, 0.0),
        1 => (x, 1.0, 0.0),
        2 => (0.0, 1.0, x),
        3 => (0.0, x, 1.0),
        4 => (x, 0.0, 1.0),
        _ => (1.0, 0.0, x),
    };
    [r * v * 255.0, g * v * 255.0, b * v * 255.0]
}

fn draw(row: &[f32], size: usize, rng: &mut Rng) -> Vec<u8> {
    let mut img = vec![0f32; size * size * 3];
    // Background: a grey level with noise; the garment: a lighter blob.
    let bg = 60.0 + 80.0 * rng.uniform();
    let (gx, gy) = (
        size as f32 * (0.4 + 0.2 * rng.uniform()),
        size as f32 * (0.4 + 0.2 * rng.uniform()),
    );
    let gr = size as f32 * (0.3 + 0.1 * rng.uniform());
    for y in 0..size {
        for x in 0..size {
            let inside = ((x as f32 - gx).powi(2) + (y as f32 - gy).powi(2)).sqrt() < gr;
            let base = if inside { bg + 50.0 } else { bg };
            for c in 0..3 {
                img[(y * size + x) * 3 + c] = base + 12.0 * rng.normal();
            }
        }
    }
    let classes = row.len();
    let mut patches: Vec<(f32, usize, f32)> = (0..classes)
        .filter(|&a| row[a] >= 0.5)
        .map(|a| (a as f32 / classes as f32, a % 4, 0.35 + 0.6 * rng.uniform()))
        .collect();
    // Distractors: hues halfway between two classes' hues.
    let distractors = (rng.uniform() * 2.5) as usize;
    for _ in 0..distractors {
        let k = (rng.uniform() * classes as f32) as usize;
        patches.push((
            (k as f32 + 0.5) / classes as f32,
            k % 4,
            0.3 + 0.5 * rng.uniform(),
        ));
    }
    for (hue, pattern, alpha) in patches {
        let colour = hue_rgb(hue, 0.75 + 0.25 * rng.uniform());
        let half = size as f32 * (0.09 + 0.07 * rng.uniform());
        let cx = half + rng.uniform() * (size as f32 - 2.0 * half);
        let cy = half + rng.uniform() * (size as f32 - 2.0 * half);
        let period = 3.0 + 2.0 * rng.uniform();
        for y in 0..size {
            for x in 0..size {
                let (dx, dy) = (x as f32 - cx, y as f32 - cy);
                if dx.abs() > half || dy.abs() > half {
                    continue;
                }
                let on = match pattern {
                    0 => dx * dx + dy * dy <= half * half,
                    1 => true,
                    2 => (((dy + half) / period) as usize).is_multiple_of(2),
                    _ => (((dx + half) / period) as usize + ((dy + half) / period) as usize)
                        .is_multiple_of(2),
                };
                if on {
                    for c in 0..3 {
                        let p = &mut img[(y * size + x) * 3 + c];
                        *p = (1.0 - alpha) * *p + alpha * colour[c];
                    }
                }
            }
        }
    }
    img.iter().map(|v| v.clamp(0.0, 255.0) as u8).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_depend_on_labels_and_are_repeatable() {
        let (a, la) = generate(20, 32, 7);
        let (b, lb) = generate(20, 32, 7);
        assert_eq!(a, b);
        assert_eq!(la, lb);
        assert_eq!(a[0].len(), 32 * 32 * 3);
        assert!(la.iter().all(|r| {
            let k = r.iter().filter(|v| **v == 1.0).count();
            (1..=5).contains(&k)
        }));
    }
}
