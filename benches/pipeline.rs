//! Whole-pipeline benchmark on the CPU backend, with peers measured in the
//! same run:
//!
//! 1. N synthetic YUYV cameras (640x480; paced, then as fast as they can) through
//!    capture → preprocess → infer → decide → publish to a real broker
//!    (mosquitto when installed, else the embedded one): frames/s and the
//!    mean time per frame of each stage.
//! 2. Our preprocessing vs Pillow (resize + crop + normalise) on the same
//!    640x480 RGB frame.
//! 3. Our CPU backend (tract) vs onnxruntime on the demo model, per frame,
//!    at batch 1 and 4.
//!
//! `cargo bench --bench pipeline`; BENCH_CAMERAS (default 4), BENCH_FRAMES
//! (per camera, default 150) and BENCH_FPS (per camera for the paced run,
//! default 10; a second run is unpaced) change the load.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use stylecam::bundle::Bundle;
use stylecam::capture::{self, Frame, PixelFormat};
use stylecam::config::{CameraConfig, Config, DEFAULT_TOML};
use stylecam::daemon::{
    self,
    metrics::{Metrics, Stage, STAGES},
};
use stylecam::infer::{cpu::CpuBackend, Backend};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn python_ms(script: &str, args: &[String]) -> Option<f64> {
    let out = Command::new("python3")
        .arg(script)
        .args(args)
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A broker for the run: mosquitto if installed, else the embedded one.
fn broker() -> (u16, Option<std::process::Child>, &'static str) {
    let port = free_port();
    for path in ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"] {
        if std::path::Path::new(path).exists() {
            let child = Command::new(path)
                .args(["-p", &port.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .ok();
            std::thread::sleep(Duration::from_millis(300));
            return (port, child, "mosquitto");
        }
    }
    #[cfg(feature = "embedded-broker")]
    {
        stylecam::publish::broker::start("127.0.0.1", port).expect("embedded broker");
        (port, None, "embedded rumqttd")
    }
    #[cfg(not(feature = "embedded-broker"))]
    panic!("the benchmark needs mosquitto or the embedded-broker feature")
}

fn pipeline(repo: &std::path::Path, fps: f64) {
    let cameras = env("BENCH_CAMERAS", 4);
    let frames = env("BENCH_FRAMES", 150) as u64;
    let (port, mut child, broker_name) = broker();
    let mut cfg: Config = toml::from_str(DEFAULT_TOML).unwrap();
    cfg.model.bundle = repo.join("assets/demo-bundle");
    cfg.model.backend = "cpu".into();
    cfg.mqtt.embedded = false;
    cfg.mqtt.port = port;
    cfg.pipeline.queue_depth = 4;
    let outbox_dir = tempfile::tempdir().unwrap();
    cfg.outbox.path = outbox_dir.path().join("outbox.redb");
    cfg.cameras = (0..cameras)
        .map(|i| {
            let mut c = CameraConfig::files(&format!("cam{i}"), "unused");
            c.source = "synthetic".into();
            c.pixel_format = "yuyv".into();
            c.width = 640;
            c.height = 480;
            c.fps = fps;
            c.frames = frames;
            c
        })
        .collect();
    let cfg = cfg.validate().unwrap();
    let bundle = Bundle::load(&cfg.model.bundle).unwrap();
    let backend = stylecam::infer::select("cpu", &bundle).unwrap();
    let sources = daemon::open_cameras(&cfg).unwrap();
    let metrics = Arc::new(Metrics::default());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let t = Instant::now();
    let snap = rt
        .block_on(daemon::run(
            &cfg,
            bundle,
            backend,
            sources,
            metrics,
            std::future::pending(),
        ))
        .unwrap();
    let wall = t.elapsed().as_secs_f64();
    let pace = if fps > 0.0 {
        format!("{fps} fps each")
    } else {
        "unpaced (overload: as fast as they can)".into()
    };
    println!("## Pipeline: {cameras} synthetic YUYV 640x480 cameras x {frames} frames, {pace}, CPU backend (tract), broker: {broker_name}");
    println!(
        "frames/s inferred: {:.1} ({} inferred, {} dropped as stale, {:.1} s)",
        snap.frames_inferred as f64 / wall,
        snap.frames_inferred,
        snap.frames_dropped,
        wall
    );
    println!(
        "events: {} decided, {} acked by the broker",
        snap.events, snap.events_acked
    );
    println!("mean time per frame by stage (capture and preprocess run on the camera threads, in parallel):");
    for (stage, d) in STAGES.iter().zip(snap.stage_mean) {
        let note = match stage {
            Stage::Capture if fps > 0.0 => "  (includes waiting for the camera's next frame)",
            _ => "",
        };
        let ms = d.as_secs_f64() * 1e3;
        println!("  {:<11} {ms:>8.3} ms{note}", format!("{stage:?}"));
    }
    if let Some(c) = child.as_mut() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

fn preprocess_vs_pillow(repo: &std::path::Path) {
    let iters = 60;
    let mut cam = CameraConfig::files("b", "unused");
    cam.source = "synthetic".into();
    cam.pixel_format = "rgb".into();
    cam.fps = 0.0;
    let mut src = capture::open(&cam).unwrap();
    let frame: Frame = src.next_frame().unwrap().unwrap();
    assert_eq!(frame.format, PixelFormat::Rgb8);
    let spec = stylecam::bundle::demo::demo_spec();
    let _ = stylecam::preprocess::preprocess(&frame, &spec).unwrap();
    let t = Instant::now();
    for _ in 0..iters {
        std::hint::black_box(stylecam::preprocess::preprocess(&frame, &spec).unwrap());
    }
    let ours = t.elapsed().as_secs_f64() / iters as f64 * 1e3;
    let mut yuyv = cam.clone();
    yuyv.pixel_format = "yuyv".into();
    let yframe = capture::open(&yuyv).unwrap().next_frame().unwrap().unwrap();
    let t = Instant::now();
    for _ in 0..iters {
        std::hint::black_box(stylecam::preprocess::preprocess(&yframe, &spec).unwrap());
    }
    let ours_yuyv = t.elapsed().as_secs_f64() / iters as f64 * 1e3;
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("frame.rgb");
    std::fs::write(&raw, &frame.data).unwrap();
    let script = repo.join("benches/peers/pillow_preprocess.py");
    let args = vec![
        raw.display().to_string(),
        "640".into(),
        "480".into(),
        "224".into(),
        iters.to_string(),
    ];
    println!("\n## Preprocessing 640x480 → 224x224 CHW f32 (resize shorter side, centre crop, mean/std), one core");
    println!("stylecam CPU, RGB input:  {ours:.3} ms/frame");
    println!("stylecam CPU, YUYV input: {ours_yuyv:.3} ms/frame (conversion included)");
    match python_ms(script.to_str().unwrap(), &args) {
        Some(pil) => println!(
            "Pillow + numpy, RGB:      {pil:.3} ms/frame  → stylecam/Pillow time ratio {:.2}",
            ours / pil
        ),
        None => println!("Pillow + numpy: not measured (python3 with Pillow and numpy not found)"),
    }
}

fn backend_vs_onnxruntime(repo: &std::path::Path) {
    let model = repo.join("assets/demo-bundle/model.onnx");
    let mut backend = CpuBackend::load(&model, [3, 224, 224]).unwrap();
    println!("\n## Inference, demo model (224x224), per frame: tract (ours) vs onnxruntime");
    for batch in [1usize, 4] {
        let input = vec![0.1f32; batch * 3 * 224 * 224];
        backend.infer(&input, batch).unwrap();
        let iters = 40 / batch;
        let t = Instant::now();
        for _ in 0..iters {
            std::hint::black_box(backend.infer(&input, batch).unwrap());
        }
        let ours = t.elapsed().as_secs_f64() / (iters * batch) as f64 * 1e3;
        let peer = python_ms(
            repo.join("benches/peers/ort_latency.py").to_str().unwrap(),
            &[
                model.display().to_string(),
                batch.to_string(),
                "224".into(),
                iters.to_string(),
            ],
        );
        match peer {
            Some(ort) => println!("batch {batch}: tract {ours:.3} ms/frame, onnxruntime {ort:.3} ms/frame → tract/ort {:.2}", ours / ort),
            None => println!("batch {batch}: tract {ours:.3} ms/frame (onnxruntime not found)"),
        }
    }
}

fn main() {
    // `cargo bench` passes --bench; nothing else is accepted.
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    println!(
        "stylecam pipeline benchmark ({} cores)\n",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    preprocess_vs_pillow(&repo);
    backend_vs_onnxruntime(&repo);
    println!();
    pipeline(&repo, env("BENCH_FPS", 10) as f64);
    println!();
    pipeline(&repo, 0.0);
}
