//! Camera pixels → 224×224 CHW f32 on one CPU thread, next to OpenCV
//! measured in the same run on the same frames (pip
//! `opencv-python-headless`, `cv2.setNumThreads(1)`: cvtColor + INTER_AREA
//! to the shorter side + centre crop + normalise; MJPEG with a full decode
//! and with `IMREAD_REDUCED_COLOR_{2,4}`).
//!
//! Frames: three real photos (tests/data/photos, assets/photos) scaled to
//! 1920×1080 and 1280×720, as YUYV, NV12 and MJPEG (quality 85). Ours: the
//! fused YUV paths, our full-size reference path, and MJPEG at reduced
//! scale through libjpeg-turbo (where libturbojpeg.so.0 is installed) and
//! through jpeg-decoder. Median of BENCH_RUNS (default 40) per frame,
//! averaged over the photos.
//!
//! `cargo bench --bench pixels` (docs/benchmarks.md has the figures).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Instant;
use stylecam::capture::{encode, Frame, PixelFormat};
use stylecam::preprocess::{
    mjpeg::{self, Decoder},
    mjpeg_into, preprocess_into, preprocess_reference_into, ResizeMode, Spec,
};

fn median_ms(runs: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut t: Vec<f64> = (0..runs)
        .map(|_| {
            let t0 = Instant::now();
            f();
            t0.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

fn frame(format: PixelFormat, w: u32, h: u32, data: Vec<u8>) -> Frame {
    Frame::still("bench", format, w, h, data)
}

fn main() {
    // jpeg-decoder decodes colour components on a rayon pool: one thread,
    // like every other row here.
    std::env::set_var("RAYON_NUM_THREADS", "1");
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let photos = [
        root.join("tests/data/photos/coffee.jpg"),
        root.join("tests/data/photos/chelsea.jpg"),
        root.join("assets/photos/astronaut.jpg"),
    ];
    let spec = Spec {
        width: 224,
        height: 224,
        resize: ResizeMode::ShorterSideCrop,
        mean: [0.485, 0.456, 0.406],
        std: [0.229, 0.224, 0.225],
    };
    let dir = tempfile::tempdir().unwrap();
    let mut files = vec![];
    // (case, ours-variant) → ms summed over photos
    let mut ours: BTreeMap<(String, &str), f64> = BTreeMap::new();
    let turbo = mjpeg::auto_decoder().starts_with("libjpeg-turbo");
    let mut out = vec![0f32; spec.len()];
    for (w, h) in [(1920u32, 1080u32), (1280, 720)] {
        for (p, path) in photos.iter().enumerate() {
            let scene = encode::scene(&image::open(path).unwrap().into_rgb8(), w, h);
            let (wu, hu) = (w as usize, h as usize);
            let cases = [
                (
                    "yuyv",
                    PixelFormat::Yuyv,
                    encode::rgb_to_yuyv(scene.as_raw(), wu, hu),
                ),
                (
                    "nv12",
                    PixelFormat::Nv12,
                    encode::rgb_to_nv12(scene.as_raw(), wu, hu),
                ),
                ("jpg", PixelFormat::Mjpeg, encode::rgb_to_jpeg(&scene, 85)),
            ];
            for (ext, format, data) in cases {
                let file = dir.path().join(format!("p{p}.{w}x{h}.{ext}"));
                std::fs::write(&file, &data).unwrap();
                files.push(file.display().to_string());
                let f = frame(format, w, h, data);
                let case = format!("{w}x{h} {}", if ext == "jpg" { "mjpeg" } else { ext });
                let mut add = |variant: &'static str, ms: f64| {
                    *ours.entry((case.clone(), variant)).or_default() += ms / photos.len() as f64;
                };
                add(
                    "reference",
                    median_ms(runs, || {
                        preprocess_reference_into(&f, &spec, &mut out).unwrap()
                    }),
                );
                if format == PixelFormat::Mjpeg {
                    if turbo {
                        add(
                            "turbojpeg",
                            median_ms(runs, || {
                                mjpeg_into(&f, &spec, &mut out, Decoder::TurboJpeg).unwrap()
                            }),
                        );
                    }
                    add(
                        "jpeg-decoder",
                        median_ms(runs, || {
                            mjpeg_into(&f, &spec, &mut out, Decoder::Rust).unwrap()
                        }),
                    );
                } else {
                    add(
                        "fused",
                        median_ms(runs, || preprocess_into(&f, &spec, &mut out).unwrap()),
                    );
                }
            }
        }
    }

    // OpenCV on the same files, same hour.
    let script = root.join("benches/peers/opencv_pixels.py");
    let cv = Command::new("python3")
        .arg(&script)
        .args(["224", &runs.to_string()])
        .args(&files)
        .output();
    let mut opencv: BTreeMap<(String, &str), f64> = BTreeMap::new();
    let mut reduced: BTreeMap<String, String> = BTreeMap::new();
    match cv {
        Ok(o) if o.status.success() => {
            for line in String::from_utf8_lossy(&o.stdout).lines() {
                let mut it = line.split_whitespace();
                let (Some(name), Some(ms)) =
                    (it.next(), it.next().and_then(|v| v.parse::<f64>().ok()))
                else {
                    continue;
                };
                let mut parts = name.split('.');
                let (_, dims, kind) = (
                    parts.next().unwrap(),
                    parts.next().unwrap(),
                    parts.next().unwrap(),
                );
                let (fmt, variant) = match kind {
                    "jpg-full" => ("mjpeg", "full decode"),
                    "jpg-reduced" => ("mjpeg", "reduced decode"),
                    k => (k, "cvtColor"),
                };
                if let Some(r) = it.next() {
                    reduced.insert(format!("{dims} {fmt}"), r.to_string());
                }
                *opencv
                    .entry((format!("{dims} {fmt}"), variant))
                    .or_default() += ms / photos.len() as f64;
            }
        }
        Ok(o) => eprintln!(
            "OpenCV peer failed (pip install opencv-python-headless): {}",
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .last()
                .unwrap_or("")
        ),
        Err(e) => eprintln!("OpenCV peer did not run (python3: {e})"),
    }

    println!("\nCamera frame → 224x224 CHW f32, one thread, ms per frame (median of {runs}, mean over 3 real photos)");
    println!("MJPEG decoders here: {}", mjpeg::auto_decoder());
    println!(
        "{:<16} {:<28} {:>9} {:>12}",
        "frame", "path", "ms", "vs OpenCV"
    );
    let cases: Vec<String> = {
        let mut c: Vec<String> = ours.keys().map(|(c, _)| c.clone()).collect();
        c.dedup();
        c
    };
    for case in cases {
        let peer = |v: &str| opencv.get(&(case.clone(), v)).copied();
        let (best_peer_name, best_peer) = if case.ends_with("mjpeg") {
            ("reduced decode", peer("reduced decode"))
        } else {
            ("cvtColor", peer("cvtColor"))
        };
        for ((c, variant), ms) in &ours {
            if *c != case {
                continue;
            }
            let ratio = best_peer
                .map(|p| format!("{:.2}x", ms / p))
                .unwrap_or_else(|| "-".into());
            println!(
                "{case:<16} {:<28} {ms:>9.2} {ratio:>12}",
                format!("ours: {variant}")
            );
        }
        for ((c, variant), ms) in &opencv {
            if *c == case {
                let label = if let (&"reduced decode", Some(r)) = (variant, reduced.get(&case)) {
                    format!("OpenCV: {variant} ({r})")
                } else {
                    format!("OpenCV: {variant}")
                };
                let mark = if *variant == best_peer_name {
                    "(peer)"
                } else {
                    ""
                };
                println!("{case:<16} {label:<28} {ms:>9.2} {mark:>12}");
            }
        }
    }
    println!("Ratios: our time / OpenCV's (cvtColor path for YUYV and NV12, reduced-decode path for MJPEG); below 1 is faster.");
}
