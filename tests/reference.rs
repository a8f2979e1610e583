//! Numeric fidelity against references run in the same test: our resize vs
//! Pillow on real photos. (Backends vs onnxruntime: `backend_suite.rs`.)

use crate::common::*;
use stylecam::capture;
use stylecam::config::CameraConfig;
use stylecam::preprocess::{resample_rgb, to_rgb8, Placement, ResizeMode};

#[test]
fn resize_matches_pillow_bilinear_on_real_photos() {
    if !available("python3 with Pillow", python_has("PIL")) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut cam = CameraConfig::files("ref", repo().join("assets/photos").to_str().unwrap());
    cam.files_mut().unwrap().looping = false;
    cam.fps = 0.0;
    let mut src = capture::open(&cam).unwrap();
    while let Some(frame) = src.next_frame().unwrap() {
        let (rgb, w, h) = to_rgb8(&frame).unwrap();
        let raw = dir.path().join("in.rgb");
        std::fs::write(&raw, &rgb).unwrap();
        // Mild (512→224), strong (512→37, where antialiasing matters), and a
        // non-square letterbox.
        for (tw, th, mode) in [
            (224, 224, ResizeMode::ShorterSideCrop),
            (37, 37, ResizeMode::ShorterSideCrop),
            (160, 96, ResizeMode::Letterbox),
            (96, 160, ResizeMode::ShorterSideCrop),
        ] {
            let p = Placement::new(w, h, tw, th, mode);
            let out = dir.path().join("out.rgb");
            python(
                "pillow_resize.py",
                &[
                    raw.to_str().unwrap(),
                    &w.to_string(),
                    &h.to_string(),
                    &p.resized_w.to_string(),
                    &p.resized_h.to_string(),
                    out.to_str().unwrap(),
                ],
            );
            let pil = std::fs::read(&out).unwrap();
            let ours = resample_rgb(&rgb, w, h, tw, th, mode);
            let (mut max, mut sum, mut n) = (0f32, 0f64, 0usize);
            for y in 0..th as i64 {
                for x in 0..tw as i64 {
                    let (rx, ry) = (x - p.offset_x, y - p.offset_y);
                    let inside =
                        rx >= 0 && ry >= 0 && rx < p.resized_w as i64 && ry < p.resized_h as i64;
                    for c in 0..3 {
                        let v = ours[((y * tw as i64 + x) * 3 + c) as usize];
                        if !inside {
                            assert!(v.is_nan(), "padding must be marked");
                            continue;
                        }
                        let r = pil[((ry * p.resized_w as i64 + rx) * 3 + c) as usize] as f32;
                        let d = (v - r).abs();
                        max = max.max(d);
                        sum += d as f64;
                        n += 1;
                    }
                }
            }
            let mean = sum / n as f64;
            eprintln!("{} {w}x{h} → {tw}x{th} {mode:?}: vs Pillow max {max:.2}, mean {mean:.3} grey levels", frame.camera);
            // Pillow rounds to u8 after each pass; we stay in f32.
            assert!(max <= 2.0 && mean <= 0.6, "max {max}, mean {mean}");
        }
    }
}
