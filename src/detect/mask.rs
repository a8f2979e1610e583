//! Privacy masks and regions: shapes in fractions of the frame (0..1, x to
//! the right, y down), so one config fits any resolution.
//!
//! A mask is painted black into the RGB frame before any model sees it;
//! everything downstream (detector input, crops, snapshots) is made from
//! the painted frame, so masked pixels reach nothing.

use super::BoxF;

pub use crate::config::Shape;

/// Paints every mask black into a packed RGB8 `w × h` frame; returns the
/// number of pixels painted.
pub fn paint(rgb: &mut [u8], w: u32, h: u32, masks: &[Shape]) -> usize {
    let mut painted = 0;
    for m in masks {
        let [x0, y0, x1, y1] = m.bounds(w, h);
        let b = BoxF::new(x0, y0, x1, y1).clip(w as f32, h as f32);
        let (x0, x1) = (
            b.x0.floor() as usize,
            (b.x1.ceil() as usize).min(w as usize),
        );
        let (y0, y1) = (
            b.y0.floor() as usize,
            (b.y1.ceil() as usize).min(h as usize),
        );
        for y in y0..y1 {
            for x in x0..x1 {
                if m.covers(x, y, w, h) {
                    let at = (y * w as usize + x) * 3;
                    rgb[at..at + 3].fill(0);
                    painted += 1;
                }
            }
        }
    }
    painted
}

/// The frame with every mask painted black: converted to RGB8 (the one
/// copy every model input is made from afterwards), metadata kept. A frame
/// that cannot be converted is an error, as it would be for the models.
pub fn apply(
    frame: crate::capture::Frame,
    masks: &[Shape],
) -> Result<crate::capture::Frame, crate::preprocess::PreprocessError> {
    if masks.is_empty() {
        return Ok(frame);
    }
    let (rgb, w, h) = crate::preprocess::to_rgb8(&frame)?;
    let mut rgb = rgb.into_owned();
    paint(&mut rgb, w, h, masks);
    Ok(crate::capture::Frame {
        width: w,
        height: h,
        format: crate::capture::PixelFormat::Rgb8,
        stride: 0,
        data: rgb,
        ..frame
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pattern_under_a_mask_changes_no_model_input() {
        use crate::capture::{Frame, PixelFormat};
        use crate::preprocess::{preprocess, ResizeMode, Spec};
        // A YUYV frame, and the same frame with a bright pattern painted
        // into its left third.
        let (w, h) = (96u32, 64u32);
        let plain: Vec<u8> = (0..w * h * 2).map(|i| (i % 200) as u8 + 16).collect();
        let mut patterned = plain.clone();
        for y in 0..h as usize {
            for x in 0..(w as usize / 3) {
                patterned[(y * w as usize + x) * 2] = if (x + y) % 2 == 0 { 235 } else { 16 };
            }
        }
        let masks = [Shape::Rect([0.0, 0.0, 0.4, 1.0])];
        let a = apply(
            Frame::still("c", PixelFormat::Yuyv, w, h, plain.clone()),
            &masks,
        )
        .unwrap();
        let b = apply(
            Frame::still("c", PixelFormat::Yuyv, w, h, patterned.clone()),
            &masks,
        )
        .unwrap();
        assert_eq!(
            a.data, b.data,
            "the masked frames are byte for byte the same"
        );
        let spec = Spec::imagenet(32, 32, ResizeMode::ShorterSideCrop);
        assert_eq!(
            preprocess(&a, &spec).unwrap(),
            preprocess(&b, &spec).unwrap()
        );
        // Unmasked, the pattern shows (the test can fail).
        let a = preprocess(&Frame::still("c", PixelFormat::Yuyv, w, h, plain), &spec).unwrap();
        let b = preprocess(
            &Frame::still("c", PixelFormat::Yuyv, w, h, patterned),
            &spec,
        )
        .unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn rect_and_polygon_paint_what_they_cover() {
        let (w, h) = (8u32, 4u32);
        let mut rgb = vec![200u8; (w * h * 3) as usize];
        let n = paint(&mut rgb, w, h, &[Shape::Rect([0.0, 0.0, 0.25, 1.0])]);
        assert_eq!(n, 8, "two columns of four rows");
        for y in 0..4 {
            for x in 0..8 {
                let v = rgb[(y * 8 + x) * 3];
                assert_eq!(v == 0, x < 2, "({x},{y})");
            }
        }
        // A triangle over the right half: the top-right corner is inside,
        // the bottom-left of the half is not.
        let mut rgb = vec![200u8; (w * h * 3) as usize];
        let tri = Shape::Polygon(vec![[0.5, 0.0], [1.0, 0.0], [1.0, 1.0]]);
        assert!(paint(&mut rgb, w, h, &[tri]) > 0);
        assert_eq!(rgb[7 * 3], 0);
        assert_eq!(rgb[(3 * 8 + 4) * 3], 200);
    }

    #[test]
    fn shapes_outside_the_frame_are_named() {
        let e = Shape::Rect([0.5, 0.0, 1.2, 1.0])
            .check("cameras[0].masks[1]")
            .unwrap_err();
        assert!(
            e.contains("cameras[0].masks[1]") && e.contains("0..=1"),
            "{e}"
        );
        assert!(Shape::Rect([0.5, 0.5, 0.5, 1.0])
            .check("m")
            .unwrap_err()
            .contains("empty"));
        assert!(Shape::Polygon(vec![[0.0, 0.0], [1.0, 1.0]])
            .check("m")
            .is_err());
        assert!(Shape::Polygon(vec![[0.0, 0.0], [1.0, 0.0], [0.5, -0.1]])
            .check("m")
            .is_err());
        assert!(Shape::Polygon(vec![[0.0, 0.0], [1.0, 0.0], [0.5, 1.0]])
            .check("m")
            .is_ok());
    }

    #[test]
    fn shapes_read_from_toml() {
        #[derive(serde::Deserialize)]
        struct T {
            m: Vec<Shape>,
        }
        let t: T =
            toml::from_str("m = [[0.0, 0.0, 0.5, 0.5], [[0.1, 0.1], [0.9, 0.1], [0.5, 0.9]]]")
                .unwrap();
        assert!(matches!(t.m[0], Shape::Rect(_)));
        assert!(matches!(&t.m[1], Shape::Polygon(p) if p.len() == 3));
    }
}
