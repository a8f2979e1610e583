//! `curves.png`: training loss (left) and validation macro F2 at t = 0.5
//! (right) per epoch, one coloured line per backbone (in `[train].backbones`
//! order: blue, orange, green, red, purple). Drawn with the `image` crate;
//! the figures themselves are in `log.csv`.

use image::{Rgb, RgbImage};

use super::run::EpochLog;

const COLOURS: [[u8; 3]; 5] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
];
const PANEL: (u32, u32) = (360, 240);
const MARGIN: u32 = 20;

fn line(img: &mut RgbImage, (x0, y0): (f32, f32), (x1, y1): (f32, f32), c: Rgb<u8>) {
    let steps = ((x1 - x0).abs().max((y1 - y0).abs()) as usize).max(1);
    for s in 0..=steps {
        let t = s as f32 / steps as f32;
        let (x, y) = (x0 + (x1 - x0) * t, y0 + (y1 - y0) * t);
        for (dx, dy) in [(0, 0), (1, 0), (0, 1)] {
            let (px, py) = (x as i64 + dx, y as i64 + dy);
            if px >= 0 && py >= 0 && (px as u32) < img.width() && (py as u32) < img.height() {
                img.put_pixel(px as u32, py as u32, c);
            }
        }
    }
}

/// One panel at horizontal offset `ox`: axes, quarter grid lines, a line per
/// series (x = epoch, y scaled to [0, max]).
fn panel(img: &mut RgbImage, ox: u32, series: &[Vec<(usize, f32)>]) {
    let (w, h) = (PANEL.0 - 2 * MARGIN, PANEL.1 - 2 * MARGIN);
    let (x0, y0) = ((ox + MARGIN) as f32, (MARGIN + h) as f32);
    let grid = Rgb([225, 225, 225]);
    for q in 1..=4 {
        let y = y0 - h as f32 * q as f32 / 4.0;
        line(img, (x0, y), (x0 + w as f32, y), grid);
    }
    let axis = Rgb([60, 60, 60]);
    line(img, (x0, y0), (x0 + w as f32, y0), axis);
    line(img, (x0, y0), (x0, y0 - h as f32), axis);
    let max_epoch = series
        .iter()
        .flatten()
        .map(|p| p.0)
        .max()
        .unwrap_or(1)
        .max(2);
    let max_y = series
        .iter()
        .flatten()
        .map(|p| p.1)
        .fold(0.0f32, f32::max)
        .max(1e-6);
    for (k, s) in series.iter().enumerate() {
        let c = Rgb(COLOURS[k % COLOURS.len()]);
        let at = |(e, v): (usize, f32)| {
            (
                x0 + w as f32 * (e - 1) as f32 / (max_epoch - 1) as f32,
                y0 - h as f32 * v / max_y,
            )
        };
        for pair in s.windows(2) {
            line(img, at(pair[0]), at(pair[1]), c);
        }
        if let [only] = s.as_slice() {
            let (x, y) = at(*only);
            line(img, (x - 2.0, y), (x + 2.0, y), c);
        }
    }
}

/// Renders the log; `backbones` fixes the colour order.
pub fn curves(log: &[EpochLog], backbones: &[String]) -> RgbImage {
    let mut img = RgbImage::from_pixel(PANEL.0 * 2, PANEL.1, Rgb([255, 255, 255]));
    let pick = |f: &dyn Fn(&EpochLog) -> f32| -> Vec<Vec<(usize, f32)>> {
        backbones
            .iter()
            .map(|b| {
                log.iter()
                    .filter(|e| &e.backbone == b)
                    .map(|e| (e.epoch, f(e)))
                    .collect()
            })
            .collect()
    };
    panel(&mut img, 0, &pick(&|e| e.loss));
    panel(&mut img, PANEL.0, &pick(&|e| e.val_macro_f2 as f32));
    img
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_a_line_per_backbone() {
        let log: Vec<EpochLog> = (1..=3)
            .flat_map(|e| {
                [("a", 1.0), ("b", 2.0)].map(|(b, k)| EpochLog {
                    backbone: b.into(),
                    epoch: e,
                    loss: k / e as f32,
                    val_macro_f2: 0.1 * k as f64 * e as f64,
                    val_f2: vec![],
                    images_per_s: 1.0,
                })
            })
            .collect();
        let img = curves(&log, &["a".into(), "b".into()]);
        let count = |c: [u8; 3]| img.pixels().filter(|p| p.0 == c).count();
        assert!(count(COLOURS[0]) > 100 && count(COLOURS[1]) > 100);
    }
}
