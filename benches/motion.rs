//! Motion's cost per frame next to OpenCV doing the same steps in the same
//! run (tests/ref/motion_peer.py, `cv2.setNumThreads(1)`), and Frigate's
//! published figure (about 0.4 ms a frame at 100 px high, a constant from
//! its docs, not measured here).
//!
//! Frames: the first 300 of vtest.avi (768×576, 10 fps) as the JPEGs the
//! people tests keep (/var/cache/stylecam-tests/ssdlite-v1/video, made by
//! tests/ref/ssdlite.py; `STYLECAM_TEST_CACHE` moves it), sent as MJPEG
//! frames, grey image at 100 rows (133×100), default `[cameras.motion]`.
//! Rows: the motion steps on a given grey image; the grey image from the
//! JPEG (ours: `Luma::of`, decoded at 1/4 scale by libjpeg-turbo; OpenCV:
//! `IMREAD_REDUCED_GRAYSCALE_4` + `INTER_AREA`) plus the steps; the grey
//! image from a full-size grey plane (what Frigate resizes: the Y plane of
//! the decoded stream) plus the steps. Each frame timed once, one thread;
//! median and mean over the 300 frames. Boxes per frame and how many match
//! (IoU ≥ 0.5) between ours and OpenCV's, on OpenCV's own grey images and
//! on ours.
//!
//! `cargo bench --profile dev --features train,cuda --bench motion`

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;
use stylecam::capture::{Frame, PixelFormat};
use stylecam::config::MotionConfig;
use stylecam::detect::motion::{Luma, Motion};
use stylecam::detect::BoxF;

/// Frigate's published cost of its motion detector at 100 px high.
const FRIGATE_PUBLISHED_MS: f64 = 0.4;
const FRAMES: usize = 300;

fn stats(ms: &mut [f64]) -> (f64, f64) {
    ms.sort_by(f64::total_cmp);
    (ms[ms.len() / 2], ms.iter().sum::<f64>() / ms.len() as f64)
}

fn video_dir() -> PathBuf {
    let root =
        std::env::var("STYLECAM_TEST_CACHE").unwrap_or_else(|_| "/var/cache/stylecam-tests".into());
    PathBuf::from(root).join("ssdlite-v1/video")
}

fn matched(ours: &[BoxF], theirs: &[BoxF]) -> usize {
    let mut used = vec![false; theirs.len()];
    let mut n = 0;
    for a in ours {
        let best = theirs
            .iter()
            .enumerate()
            .filter(|(j, b)| !used[*j] && a.iou(b) >= 0.5)
            .max_by(|x, y| a.iou(x.1).total_cmp(&a.iou(y.1)));
        if let Some((j, _)) = best {
            used[j] = true;
            n += 1;
        }
    }
    n
}

fn peer(args: &[&str]) -> serde_json::Value {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/ref/motion_peer.py");
    let out = Command::new("python3")
        .arg(script)
        .args(args)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "motion_peer.py failed (pip install opencv-python-headless numpy):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("motion_peer.py JSON")
}

fn boxes(v: &serde_json::Value) -> Vec<Vec<BoxF>> {
    v["boxes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            f.as_array()
                .unwrap()
                .iter()
                .map(|b| {
                    let c: Vec<f32> = b
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|x| x.as_f64().unwrap() as f32)
                        .collect();
                    BoxF::new(c[0], c[1], c[2], c[3])
                })
                .collect()
        })
        .collect()
}

fn main() {
    let dir = video_dir();
    let mut names: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(d) => d
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
            .collect(),
        Err(_) => {
            eprintln!(
                "SKIP: no vtest frames in {} (run the people tests once: tests/ref/ssdlite.py prepare makes them)",
                dir.display()
            );
            return;
        }
    };
    names.sort();
    names.truncate(FRAMES);
    let jpegs: Vec<Frame> = names
        .iter()
        .map(|p| {
            Frame::still(
                "bench",
                PixelFormat::Mjpeg,
                768,
                576,
                std::fs::read(p).unwrap(),
            )
        })
        .collect();
    // Full-size grey planes (decoded outside the timing).
    let planes: Vec<Frame> = names
        .iter()
        .map(|p| {
            let g = image::open(p).unwrap().into_luma8();
            let (w, h) = g.dimensions();
            Frame::still("bench", PixelFormat::Gray8, w, h, g.into_raw())
        })
        .collect();
    let config = MotionConfig::default();
    let rows = config.frame_height;

    // The grey images (ours), then the steps alone on them.
    let mut t_luma = vec![];
    let mut lumas = vec![];
    for f in &jpegs {
        let t0 = Instant::now();
        let l = Luma::of(f, rows, &[]).unwrap();
        t_luma.push(t0.elapsed().as_secs_f64() * 1e3);
        lumas.push(l);
    }
    let mut motion = Motion::new(&config);
    let (mut t_steps, mut ours) = (vec![], vec![]);
    for l in &lumas {
        let t0 = Instant::now();
        let m = motion.update(l);
        t_steps.push(t0.elapsed().as_secs_f64() * 1e3);
        ours.push(m.boxes);
    }
    let mut motion = Motion::new(&config);
    let mut t_jpeg = vec![];
    for f in &jpegs {
        let t0 = Instant::now();
        let l = Luma::of(f, rows, &[]).unwrap();
        std::hint::black_box(motion.update(&l));
        t_jpeg.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    let mut motion = Motion::new(&config);
    let mut t_plane = vec![];
    for f in &planes {
        let t0 = Instant::now();
        let l = Luma::of(f, rows, &[]).unwrap();
        std::hint::black_box(motion.update(&l));
        t_plane.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    let (w, h) = (lumas[0].width, lumas[0].height);

    // OpenCV: its own grey images from the JPEGs, then ours.
    let own = peer(&[
        "--frames",
        dir.to_str().unwrap(),
        "--count",
        &FRAMES.to_string(),
        "--rows",
        &rows.to_string(),
    ]);
    let tmp = tempfile::tempdir().unwrap();
    let raw = tmp.path().join("grey.raw");
    std::fs::write(
        &raw,
        lumas
            .iter()
            .flat_map(|l| l.data.clone())
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    let same = peer(&[
        "--grey",
        raw.to_str().unwrap(),
        "--width",
        &w.to_string(),
        "--rows",
        &h.to_string(),
        "--frame-size",
        "768x576",
    ]);
    let ms = |v: &serde_json::Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    let cv_steps = ms(&same, "ms_steps");
    let cv_jpeg = ms(&own, "ms_decode_reduced_grey") + ms(&own, "ms_resize_reduced") + cv_steps;
    let cv_plane = ms(&own, "ms_resize_full") + cv_steps;

    let (s_med, s_mean) = stats(&mut t_steps);
    let (j_med, j_mean) = stats(&mut t_jpeg);
    let (p_med, p_mean) = stats(&mut t_plane);
    let (l_med, _) = stats(&mut t_luma);
    println!(
        "motion on {} vtest frames (768x576 MJPEG), grey image {w}x{h}, one thread, ms/frame (median, mean over frames); OpenCV {}",
        jpegs.len(),
        own["opencv"].as_str().unwrap_or("?")
    );
    println!("{:<58} {:>8} {:>8} {:>8}", "", "ours", "(mean)", "OpenCV");
    println!(
        "{:<58} {s_med:>8.3} {s_mean:>8.3} {cv_steps:>8.3}",
        "motion steps, grey image given"
    );
    println!(
        "{:<58} {j_med:>8.3} {j_mean:>8.3} {cv_jpeg:>8.3}",
        "grey image from the JPEG (1/4-scale decode) + steps"
    );
    println!(
        "{:<58} {l_med:>8.3} {:>8} {:>8.3}",
        "  of which the grey image",
        "",
        ms(&own, "ms_decode_reduced_grey") + ms(&own, "ms_resize_reduced")
    );
    println!(
        "{:<58} {p_med:>8.3} {p_mean:>8.3} {cv_plane:>8.3}",
        "grey image from a full-size grey plane (Y) + steps"
    );
    println!(
        "{:<58} {:>8} {:>8} {:>8}",
        "OpenCV: full-size grey JPEG decode (not used by either)",
        "",
        "",
        format!("{:.3}", ms(&own, "ms_decode_full_grey"))
    );
    println!(
        "Frigate, published (not measured): about {FRIGATE_PUBLISHED_MS} ms a frame at 100 px high"
    );
    println!(
        "ratios: steps ours/OpenCV {:.2}; from the Y plane ours/OpenCV {:.2}, ours/Frigate-published {:.2}; from the JPEG ours/OpenCV {:.2}",
        s_med / cv_steps,
        p_med / cv_plane,
        p_med / FRIGATE_PUBLISHED_MS,
        j_med / cv_jpeg
    );
    for (name, v) in [
        ("same grey images", &same),
        ("OpenCV's own grey images", &own),
    ] {
        let theirs = boxes(v);
        let n_ours: usize = ours.iter().map(Vec::len).sum();
        let n_theirs: usize = theirs.iter().map(Vec::len).sum();
        let m: usize = ours.iter().zip(&theirs).map(|(a, b)| matched(a, b)).sum();
        let frames_with = |b: &[Vec<BoxF>]| b.iter().filter(|f| !f.is_empty()).count();
        println!(
            "boxes, {name}: ours {:.2}/frame ({} frames with motion), OpenCV {:.2}/frame ({} frames); matched at IoU >= 0.5: {m} ({:.1}% of ours, {:.1}% of OpenCV's)",
            n_ours as f64 / ours.len() as f64,
            frames_with(&ours),
            n_theirs as f64 / theirs.len() as f64,
            frames_with(&theirs),
            100.0 * m as f64 / n_ours.max(1) as f64,
            100.0 * m as f64 / n_theirs.max(1) as f64,
        );
    }
}
