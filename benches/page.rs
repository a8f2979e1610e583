//! What the status page costs the pipeline, and what it weighs.
//!
//! One in-process daemon (CPU backend, demo model, the embedded broker)
//! with synthetic YUYV 640x480 cameras running as fast as they can, so any
//! CPU the page takes shows as fewer inferred frames. Phases alternate:
//! page closed, then page open — a client doing each second what the
//! page's script does (`/api/status`, one `/api/snapshot` per camera, the
//! detail view's `/api/camera`) — and the inference rate of each phase is
//! read from `/metrics` at its ends (read the same way in both). The peer
//! is the same daemon with the page closed, in the same run.
//!
//! The ratio is the median over the pairs of (open / the closed phase just
//! before it), so a slow drift of the machine cancels out.
//!
//! `cargo bench --bench page`; BENCH_CAMERAS (default 2), BENCH_PHASES
//! (pairs, default 8) and BENCH_PHASE_S (seconds, default 5).

mod support;

use std::io::{Read, Write};
use std::time::{Duration, Instant};
use stylecam::config::{BackendKind, CameraConfig, Config, SyntheticFormat, DEFAULT_TOML};
use support::{free_port, run_daemon, wait_for_port};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One GET on loopback: status code and body.
fn get(port: u16, path: &str) -> (u16, Vec<u8>) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let split = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&buf[..split]);
    let code = head.split(' ').nth(1).unwrap().parse().unwrap();
    (code, buf[split + 4..].to_vec())
}

/// CPU time this process (the daemon and the page's client) has used, in
/// seconds (`/proc/self/stat`: utime + stime, in clock ticks).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of the line; 12 and 13 after the command's `)`.
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    // SAFETY: sysconf reads a constant.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

fn inferred(port: u16) -> f64 {
    support::frames_inferred(&get(port, "/metrics").1)
}

/// What the open page asks for in one second; the bytes it got.
fn page_second(port: u16, cameras: usize) -> usize {
    let mut bytes = get(port, "/api/status").1.len();
    for i in 0..cameras {
        let (code, jpeg) = get(port, &format!("/api/snapshot?camera=cam{i}"));
        assert_eq!(code, 200, "a snapshot of cam{i}");
        bytes += jpeg.len();
    }
    bytes + get(port, "/api/camera?name=cam0").1.len()
}

fn main() {
    let cameras = env("BENCH_CAMERAS", 2);
    let phases = env("BENCH_PHASES", 8);
    let phase = Duration::from_secs(env("BENCH_PHASE_S", 5) as u64);
    let http = free_port();
    let repo = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut cfg: Config = toml::from_str(DEFAULT_TOML).unwrap();
    cfg.model.bundle = repo.join("assets/demo-bundle");
    cfg.model.backend = BackendKind::Cpu;
    cfg.mqtt.port = free_port();
    cfg.metrics.listen = format!("127.0.0.1:{http}");
    let outbox = tempfile::tempdir().unwrap();
    cfg.outbox.path = outbox.path().join("outbox.redb");
    cfg.cameras = (0..cameras)
        .map(|i| {
            let mut c =
                CameraConfig::synthetic(&format!("cam{i}"), 640, 480, SyntheticFormat::Yuyv);
            c.fps = 0.0;
            c.synthetic_mut().unwrap().frames = u64::MAX;
            c
        })
        .collect();

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let measure = std::thread::spawn(move || {
        wait_for_port(http);
        // Warm up: the model loaded, the cameras running.
        std::thread::sleep(Duration::from_secs(3));
        let weight: usize = ["/", "/app.js", "/app.css"]
            .iter()
            .map(|p| get(http, p).1.len())
            .sum();
        let mut closed = vec![];
        let mut open = vec![];
        // CPU ms per inferred frame, closed and open.
        let mut cpu = [vec![], vec![]];
        let mut per_second = vec![];
        for _ in 0..phases {
            for page_open in [false, true] {
                let (n0, t0, c0) = (inferred(http), Instant::now(), cpu_seconds());
                while t0.elapsed() < phase {
                    let tick = Instant::now();
                    if page_open {
                        per_second.push(page_second(http, cameras));
                    }
                    std::thread::sleep(Duration::from_secs(1).saturating_sub(tick.elapsed()));
                }
                let n = inferred(http) - n0;
                cpu[page_open as usize].push((cpu_seconds() - c0) * 1e3 / n);
                let fps = n / t0.elapsed().as_secs_f64();
                if page_open { &mut open } else { &mut closed }.push(fps);
            }
        }
        let _ = stop_tx.send(());
        (weight, closed, open, per_second, cpu)
    });
    run_daemon(cfg, async {
        let _ = stop_rx.await;
    });
    let (weight, closed, open, per_second, cpu) = measure.join().unwrap();

    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (c, o) = (mean(&closed), mean(&open));
    println!(
        "## Status page: cost and weight (`cargo bench --bench page`; {cameras} synthetic YUYV 640x480 cameras as fast as they can, cpu (tract) backend, {phases} × {} s closed / open, alternating)",
        phase.as_secs()
    );
    let fmt = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.1}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!(
        "frames/s inferred, page closed: {c:.1} (phases: {})",
        fmt(&closed)
    );
    println!(
        "frames/s inferred, page open:   {o:.1} (phases: {})",
        fmt(&open)
    );
    let mut ratios: Vec<f64> = closed.iter().zip(&open).map(|(c, o)| o / c).collect();
    ratios.sort_by(f64::total_cmp);
    let median = (ratios[(ratios.len() - 1) / 2] + ratios[ratios.len() / 2]) / 2.0;
    println!(
        "open / closed: median of the pairs {median:.3} ({:+.1}%), of the means {:.3}; the issue's bar: no more than 2% lower",
        (median - 1.0) * 100.0,
        o / c,
    );
    let (cc, co) = (mean(&cpu[0]), mean(&cpu[1]));
    println!(
        "CPU per inferred frame (the whole process, the page's client included): closed {cc:.2} ms, open {co:.2} ms: {:+.1}%",
        (co / cc - 1.0) * 100.0
    );
    println!(
        "page weight: {:.1} KB (HTML + JS + CSS, uncompressed, embedded in the binary); while open: {:.1} KB/s (status JSON, {cameras} snapshot JPEGs, one camera's decisions)",
        weight as f64 / 1024.0,
        per_second.iter().sum::<usize>() as f64 / per_second.len().max(1) as f64 / 1024.0
    );
}
