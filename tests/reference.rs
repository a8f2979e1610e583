//! Numeric fidelity against references run in the same test: the CPU
//! backend vs onnxruntime on models with random weights, and our resize vs
//! Pillow on real photos.

use crate::common::*;
use stylecam::bundle::demo::{cnn, CnnShape};
use stylecam::capture;
use stylecam::config::CameraConfig;
use stylecam::infer::{cpu::CpuBackend, Backend};
use stylecam::preprocess::{resample_rgb, to_rgb8, Placement, ResizeMode};
use stylecam::styles::simulate::Rng;

fn compare_with_ort(name: &str, model: &std::path::Path, sample: [usize; 3], n: usize) -> f32 {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(7);
    let input: Vec<f32> = (0..n * sample.iter().product::<usize>())
        .map(|_| rng.normal())
        .collect();
    let mut backend = CpuBackend::load(model, sample).unwrap();
    let ours = backend.infer(&input, n).unwrap();
    let (inp, out) = (dir.path().join("in.f32"), dir.path().join("out.f32"));
    write_f32(&inp, &input);
    let shape = format!("{n},{},{},{}", sample[0], sample[1], sample[2]);
    python(
        "ort_run.py",
        &[
            model.to_str().unwrap(),
            inp.to_str().unwrap(),
            &shape,
            out.to_str().unwrap(),
        ],
    );
    let theirs = read_f32(&out);
    assert_eq!(ours.len(), theirs.len());
    let diff = ours
        .iter()
        .zip(&theirs)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    eprintln!(
        "{name}: batch {n}, {} outputs, max abs diff tract vs onnxruntime = {diff:.2e}",
        ours.len()
    );
    // Spread of the outputs, so agreement is not trivially uniform.
    let spread = theirs.iter().cloned().fold(f32::MIN, f32::max)
        - theirs.iter().cloned().fold(f32::MAX, f32::min);
    assert!(
        spread > 0.05,
        "{name}: outputs barely vary ({spread}); the comparison would prove little"
    );
    diff
}

#[test]
fn cpu_backend_agrees_with_onnxruntime_on_random_weight_models() {
    if !available(
        "python3 with onnxruntime and numpy",
        python_has("onnxruntime, numpy"),
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let resnet = dir.path().join("resnet_style.onnx");
    let shape = CnnShape::resnet_style();
    std::fs::write(&resnet, cnn(11, &shape, None)).unwrap();
    let s = shape.input as usize;
    assert!(
        compare_with_ort(
            "resnet-style (BN, max-pool, 8 residual blocks)",
            &resnet,
            [3, s, s],
            2
        ) < 1e-4
    );
    let demo = repo().join("assets/demo-bundle/model.onnx");
    assert!(compare_with_ort("demo bundle", &demo, [3, 224, 224], 1) < 1e-4);
    assert!(compare_with_ort("demo bundle", &demo, [3, 224, 224], 3) < 1e-4);
}

#[test]
fn resize_matches_pillow_bilinear_on_real_photos() {
    if !available("python3 with Pillow", python_has("PIL")) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut cam = CameraConfig::files("ref", repo().join("assets/photos").to_str().unwrap());
    cam.looping = false;
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
