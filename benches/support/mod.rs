//! What the daemon benchmarks share: a free port, mosquitto, and one
//! in-process daemon run.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use stylecam::config::Config;
use stylecam::daemon;
use stylecam::telemetry::{Metrics, Snapshot};

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The installed mosquitto, if any (not every benchmark publishes to one).
#[allow(dead_code)]
pub fn mosquitto() -> Option<&'static str> {
    ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
}

/// Waits until something listens on 127.0.0.1:`port` (10 s at most).
pub fn wait_for_port(port: u16) {
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "nothing opened port {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs the daemon on `cfg` in this process (two runtime workers) until
/// `stop` completes or every camera ends: its final counters and the wall
/// time in seconds.
#[allow(dead_code)]
pub fn run_daemon(cfg: Config, stop: impl Future<Output = ()>) -> (Snapshot, f64) {
    let parts = daemon::Parts::open(cfg.validate().unwrap()).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let t = Instant::now();
    let snap = rt
        .block_on(daemon::run(parts, Arc::new(Metrics::default()), stop, None))
        .unwrap();
    (snap, t.elapsed().as_secs_f64())
}

/// `stylecam_frames_inferred_total` from a `/metrics` body.
#[allow(dead_code)]
pub fn frames_inferred(metrics: &[u8]) -> f64 {
    String::from_utf8_lossy(metrics)
        .lines()
        .find(|l| l.starts_with("stylecam_frames_inferred_total"))
        .and_then(|l| l.split_whitespace().last()?.parse().ok())
        .expect("stylecam_frames_inferred_total in /metrics")
}
