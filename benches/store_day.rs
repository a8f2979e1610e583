//! A store day on one box (issue 36's "must show"): how many cameras this
//! machine serves in people mode when the detector runs (a) on every
//! whole frame (today), (b) on every 2nd frame (`detect_every = 2`), or
//! (c) only when motion or a tracked person asks for it, at most
//! `detect_fps` = 5 times a second (the new default: the whole frame;
//! squares at the detector's resolution with
//! `STORE_DAY_PEOPLE='whole_frame_at = 0.6'`); and what (b) and (c)
//! miss against (a): people, their final tags, the far small ones; what an
//! idle camera costs; how the lights and an all-motion scene are handled;
//! how a crowd's regions are spread.
//!
//! Each frame enters as an MJPEG camera delivers it (the JPEG file's bytes,
//! all read into memory first): decoding is part of the measured cost.
//! The bundle is EfficientNet-Lite0's ImageNet garment classifier with
//! the SSDLite person detector (made under `target/bench-data/store-day/`);
//! each model runs on the faster of tract and onnxruntime on this machine
//! (timed first), one thread per inference. CPU = the thread's CPU time
//! (`CLOCK_THREAD_CPUTIME_ID`) over decode, motion, detector, tracker,
//! schedule and every due crop classified for real. Cameras served =
//! cores × 1000 / (CPU ms per camera-second of video), as docs/benchmarks.md
//! "people, when due" counts them.
//!
//! Streams: `/var/cache/stylecam-tests/storeday-v1` (tests/ref/store_day.py,
//! docs/store-day.md): `day` (240 s, 30% busy), `walkway` (vtest.avi, 100%
//! busy), `light`, `screen`. Without that cache only the walkway runs.
//! `STORE_DAY_ONLY=walkway,day` picks streams, `STORE_DAY_FRAMES=N` cuts
//! each to its first N frames, `STORE_DAY_MODES=a,c` picks modes (quick
//! checks; not for the figures); `STORE_DAY_BACKEND=cpu` runs both models
//! on tract (the backend of the earlier people-mode figures) instead of
//! the faster.
//!
//! `cargo bench --profile dev --features train,cuda --bench store_day`

#[path = "store_day/compare.rs"]
mod compare;
#[path = "store_day/far.rs"]
mod far;
#[path = "store_day/report.rs"]
mod report;
#[path = "store_day/run.rs"]
mod run;
#[path = "store_day/setup.rs"]
mod setup;

use run::Mode;
use setup::*;
use std::path::PathBuf;
use stylecam::bundle::Bundle;
use stylecam::config::BackendKind;
use stylecam::detect::Detector;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let ssdlite = cache_root().join("ssdlite-v1");
    if !ssdlite.join(".complete").exists() {
        skip(&format!(
            "{} is missing: run the people tests first (cargo nextest run --features train,cuda --test integration -E 'test(/people/)')",
            ssdlite.display()
        ));
    }
    let load_before = loadavg();
    let bundle_dir = bundle(&repo, &ssdlite);
    let bundle = Bundle::load(&bundle_dir).unwrap();
    let root = cache_root().join("storeday-v1");
    let only: Option<Vec<String>> = std::env::var("STORE_DAY_ONLY")
        .ok()
        .map(|s| s.split(',').map(str::to_string).collect());
    let wanted = |n: &str| only.as_ref().is_none_or(|o| o.iter().any(|x| x == n));
    let cut: Option<usize> = std::env::var("STORE_DAY_FRAMES")
        .ok()
        .and_then(|s| s.parse().ok());
    let have_day = root.join(".complete").exists();
    if !have_day {
        eprintln!(
            "{} is missing (made by .ci/run or tests/ref/store_day.py): the walkway only",
            root.display()
        );
    }
    let mut streams = vec![];
    for name in ["day", "walkway", "light", "screen"] {
        if !wanted(name) {
            continue;
        }
        let mut s = match (have_day, name) {
            (true, _) => stream(&root, name),
            (false, "walkway") => frames("walkway", &ssdlite.join("video"), 10.0),
            _ => continue,
        };
        if let Some(n) = cut {
            s.frames.truncate(n);
            for g in &mut s.segments {
                g.start = g.start.min(n);
                g.end = g.end.min(n);
            }
        }
        streams.push(s);
    }
    assert!(!streams.is_empty(), "no stream picked");
    let probe_frame = &streams
        .iter()
        .find(|s| s.name == "walkway")
        .unwrap_or(&streams[0])
        .frames[0];
    let mut backends = pick_backends(&bundle, probe_frame);
    // `STORE_DAY_BACKEND=cpu` (or `onnxruntime`): both models on it, not the faster.
    match std::env::var("STORE_DAY_BACKEND").as_deref() {
        Ok("cpu") => {
            (backends.detector, backends.classifier) = (BackendKind::Cpu, BackendKind::Cpu)
        }
        Ok("onnxruntime") => {
            (backends.detector, backends.classifier) =
                (BackendKind::Onnxruntime, BackendKind::Onnxruntime)
        }
        _ => {}
    }
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    report::header(&bundle, &backends, cores, &load_before);
    let mut classifier = stylecam::infer::open(&options(backends.classifier), &bundle).unwrap();
    let mut summary = vec![];
    for s in &streams {
        let modes: &[Mode] = match s.name.as_str() {
            "day" | "walkway" => &[Mode::Every, Mode::EverySecond, Mode::Gated],
            _ => &[Mode::Every, Mode::Gated],
        };
        let mut runs = vec![];
        for &mode in modes {
            if !modes_wanted(mode) {
                continue;
            }
            let detector = Detector::open(&bundle, &options(backends.detector)).unwrap();
            let (p0, t0) = (process_cpu_ns(), std::time::Instant::now());
            let r = run::run(s, mode, detector, classifier.as_mut(), &bundle);
            let process_ms = (process_cpu_ns() - p0) as f64 / 1e6;
            eprintln!(
                "{} {}: {:.1} s wall, thread CPU {:.0} ms, process CPU {:.0} ms",
                s.name,
                mode.short(),
                t0.elapsed().as_secs_f64(),
                r.cpu_ms(),
                process_ms
            );
            runs.push((mode, r, process_ms));
        }
        let far = (s.name == "walkway" && modes_wanted(Mode::Gated)).then(|| {
            let mut d = Detector::open(&bundle, &options(backends.detector)).unwrap();
            far::probe(s, &mut d, 8)
        });
        summary.push(report::stream(
            s,
            &runs,
            far.as_ref(),
            &bundle.decision(),
            cores,
        ));
    }
    report::summary(&summary, &load_before, &loadavg());
}

/// `STORE_DAY_MODES=a,b` runs only those modes (quick checks; (a) is the
/// reference of the others, keep it).
fn modes_wanted(mode: Mode) -> bool {
    std::env::var("STORE_DAY_MODES").map_or(true, |m| m.split(',').any(|x| x == mode.short()))
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_string()
}
