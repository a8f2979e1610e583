use super::*;
use crate::preprocess::ResizeMode;

fn spec(resize: ResizeMode) -> Spec {
    Spec::imagenet(224, 224, resize)
}

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
    let (y0, y1) = (40, 72);
    blur_rows(&mut out, w, h, y0, y1);
    let before = laplacian_energy(&img, w, h, y0, y1);
    let after = laplacian_energy(&out, w, h, y0, y1);
    assert!(after < before * 0.001, "{after} vs {before}");
    let (a, b) = ((y0 * w * 3) as usize, (y1 * w * 3) as usize);
    assert_eq!(out[..a], img[..a], "above the band");
    assert_eq!(out[b..], img[b..], "below the band");
    // The mean is kept (a blur, not a black bar).
    let mean = |v: &[u8]| v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
    assert!((mean(&out[a..b]) - mean(&img[a..b])).abs() < 2.0);
    // Nothing to blur: unchanged.
    let mut same = img.clone();
    blur_rows(&mut same, w, h, 10, 10);
    assert_eq!(same, img);
}

/// The person's box grown by the margin and clipped: its head is the top
/// fraction of the person's own box, exactly when unclipped, covered
/// when the clip hid where the person's box was.
#[test]
fn the_head_is_the_top_of_the_persons_box_not_of_the_crop() {
    let (m, f, fh) = (0.1, 0.2, 240u32);
    let grown = |y0: f32, ph: f32| {
        BoxF::new(10.0, y0, 50.0, y0 + ph)
            .grow(m)
            .clip(320.0, fh as f32)
    };
    let covers = |got: (f32, f32), want: (f32, f32)| {
        assert!(
            got.0 <= want.0 + 1e-3 && got.1 >= want.1 - 1e-3,
            "{got:?} must cover {want:?}"
        );
        // And not much more than the person's height (no half-body blur).
        assert!(
            got.1 - got.0 < (want.1 - want.0) * 1.6,
            "{got:?} vs {want:?}"
        );
    };
    // Unclipped: exact.
    let (t, b) = person_head(&grown(50.0, 150.0), fh, m, f);
    assert!(
        (t - 50.0).abs() < 1e-3 && (b - 80.0).abs() < 1e-3,
        "{t} {b}"
    );
    // The margin cut at the top of the frame (the person at row 5).
    covers(person_head(&grown(5.0, 150.0), fh, m, f), (5.0, 35.0));
    // ...and at the bottom (the person's box ends 10 rows above it).
    covers(person_head(&grown(100.0, 130.0), fh, m, f), (100.0, 126.0));
    // Both: a person almost the frame's height.
    covers(person_head(&grown(4.0, 232.0), fh, m, f), (4.0, 50.4));
    // No margin: the crop's box is the person's.
    let (t, b) = person_head(&BoxF::new(10.0, 50.0, 50.0, 200.0), fh, 0.0, f);
    assert!(
        (t - 50.0).abs() < 1e-3 && (b - 80.0).abs() < 1e-3,
        "{t} {b}"
    );
}

/// A shorter-side crop of a standing person keeps the middle of the body:
/// a head at the crop's top is cut away (nothing blurred), a head near
/// the kept window's top is blurred in part, and a head in a near-square
/// crop lands where the resize puts it.
#[test]
fn shorter_side_crop_maps_the_head_or_drops_it() {
    let s = spec(ResizeMode::ShorterSideCrop);
    // 60 × 200: scaled 224/60, 747 rows high, rows 69.9..129.9 kept.
    assert_eq!(input_rows((10.0, 50.0), 60, 200, &s), None, "cropped away");
    assert_eq!(
        input_rows((60.0, 80.0), 60, 200, &s),
        Some((0, 38)),
        "partly inside"
    );
    // 200 × 220: scaled 1.12, 246 rows, 11 cut at the top.
    assert_eq!(
        input_rows((20.0, 60.0), 200, 220, &s),
        Some((11, 57)),
        "inside"
    );
    // Below the kept window: cut away too.
    assert_eq!(input_rows((140.0, 180.0), 60, 200, &s), None);
}

/// A letterbox keeps the whole crop: the head lands scaled (a wide crop
/// below the top padding); a head reaching above the crop (a clipped
/// margin) is kept to the crop's rows; one wholly outside is nothing.
#[test]
fn letterbox_maps_the_head_below_the_padding() {
    let s = spec(ResizeMode::Letterbox);
    // 60 × 200: 224 rows high, no vertical padding.
    assert_eq!(
        input_rows((20.0, 60.0), 60, 200, &s),
        Some((22, 68)),
        "inside"
    );
    assert_eq!(
        input_rows((-10.0, 30.0), 60, 200, &s),
        Some((0, 34)),
        "partly inside"
    );
    assert_eq!(input_rows((-30.0, -5.0), 60, 200, &s), None, "outside");
    // 200 × 60: 67 rows high from row 78 (padding above and below).
    assert_eq!(input_rows((0.0, 12.0), 200, 60, &s), Some((78, 92)));
}

/// Through [`head_rows`]: a standing person's crop (box grown by the
/// margin) with a shorter-side crop has no head in its input, the same
/// crop letterboxed has it at the top.
#[test]
fn a_standing_persons_head_is_cropped_away_with_a_shorter_side_crop() {
    let head = HeadBlur {
        fraction: 0.2,
        margin: 0.1,
    };
    let person = BoxF::new(300.0, 100.0, 360.0, 300.0);
    let b = person.grow(head.margin).clip(768.0, 576.0);
    let r = crate::detect::people::crop_rect(768, 576, &b);
    let short = head_rows(
        &b,
        576,
        r.y,
        r.w,
        r.h,
        &spec(ResizeMode::ShorterSideCrop),
        head,
    );
    assert_eq!(short, None);
    let (y0, y1) = head_rows(&b, 576, r.y, r.w, r.h, &spec(ResizeMode::Letterbox), head).unwrap();
    // The person's top 20% is rows 20..60 of the 240-row crop: 224/240.
    assert!(
        (18..=19).contains(&y0) && (56..=57).contains(&y1),
        "{y0}..{y1}"
    );
}
