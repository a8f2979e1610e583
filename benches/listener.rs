//! The HTTP listener under load on loopback, against the same daemon idle.
//!
//! One `stylecam run` process (CPU backend, demo model, embedded broker,
//! synthetic YUYV 640x480 cameras as fast as they can) started at
//! systemd's default soft limit of 1,024 open files, with no room to raise
//! it. Three phases, each BENCH_PHASE_S seconds (default 6):
//!
//! 1. idle: the peer — frames inferred per second and the daemon's RSS;
//! 2. flood: 1,100 TCP connections that never send a byte, held open from
//!    110 loopback addresses (127.0.1.x, so the listener's total cap is
//!    what they hit, not only the per-address one); `/healthz` asked every
//!    200 ms (its slowest answer), the frame rate, open-file errors in the
//!    log;
//! 3. config storm: 200 clients (each its own loopback address) asking
//!    `/api/config` as fast as they are answered; the frame rate, the peak
//!    RSS (sampled every 100 ms), answers and refusals.
//!
//! `cargo bench --bench listener` (BENCH_FLOOD=0: without phase 2). The bars (issue 35): `/healthz` within
//! 1 s under the flood; under the storm RSS within 2× of idle and frames at
//! ≥ 90% of the idle rate.

mod support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::os::fd::FromRawFd;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use stylecam::config::{BackendKind, CameraConfig, Config, SyntheticFormat, DEFAULT_TOML};
use support::free_port;

/// A TCP connection to 127.0.0.1:`port` from the loopback address `from`.
fn connect_from(from: Ipv4Addr, port: u16) -> std::io::Result<TcpStream> {
    // SAFETY: plain socket calls on a descriptor this function owns until
    // it is handed to TcpStream.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let stream = TcpStream::from_raw_fd(fd);
        let addr = |ip: Ipv4Addr, port: u16| libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(ip).to_be(),
            },
            sin_zero: [0; 8],
        };
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let local = addr(from, 0);
        if libc::bind(fd, (&local as *const libc::sockaddr_in).cast(), len) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let remote = addr(Ipv4Addr::LOCALHOST, port);
        if libc::connect(fd, (&remote as *const libc::sockaddr_in).cast(), len) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(stream)
    }
}

/// One GET from `from`: status code (0 when the connection was closed
/// unanswered) and body.
fn get_from(from: Ipv4Addr, port: u16, path: &str) -> (u16, Vec<u8>) {
    let Ok(mut s) = connect_from(from, port) else {
        return (0, vec![]);
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    if write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").is_err() {
        return (0, vec![]);
    }
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let Some(split) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return (0, vec![]);
    };
    let head = String::from_utf8_lossy(&buf[..split]);
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, buf[split + 4..].to_vec())
}

fn get(port: u16, path: &str) -> (u16, Vec<u8>) {
    get_from(Ipv4Addr::LOCALHOST, port, path)
}

fn inferred(port: u16) -> f64 {
    support::frames_inferred(&get(port, "/metrics").1)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

fn raise_own_nofile() {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the struct given.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut l);
        l.rlim_cur = l.rlim_max.min(8192);
        libc::setrlimit(libc::RLIMIT_NOFILE, &l);
    }
}

fn main() {
    let phase = Duration::from_secs(
        std::env::var("BENCH_PHASE_S")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(6),
    );
    raise_own_nofile();
    let dir = tempfile::tempdir().unwrap();
    let http = free_port();
    let repo = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut cfg: Config = toml::from_str(DEFAULT_TOML).unwrap();
    cfg.model.bundle = repo.join("assets/demo-bundle");
    cfg.model.backend = BackendKind::Cpu;
    cfg.mqtt.port = free_port();
    cfg.metrics.listen = format!("127.0.0.1:{http}");
    cfg.outbox.path = dir.path().join("outbox.redb");
    cfg.cameras = (0..2)
        .map(|i| {
            let mut c =
                CameraConfig::synthetic(&format!("cam{i}"), 640, 480, SyntheticFormat::Yuyv);
            c.fps = 0.0;
            // TOML integers are i64.
            c.synthetic_mut().unwrap().frames = i64::MAX as u64;
            c
        })
        .collect();
    let file = dir.path().join("stylecam.toml");
    std::fs::write(&file, toml::to_string(&cfg).unwrap()).unwrap();
    let log = dir.path().join("daemon.log");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_stylecam"));
    cmd.args(["run", "--config"])
        .arg(&file)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    use std::os::unix::process::CommandExt;
    // SAFETY: setrlimit is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            let l = libc::rlimit {
                rlim_cur: 1024,
                rlim_max: 1024,
            };
            libc::setrlimit(libc::RLIMIT_NOFILE, &l);
            Ok(())
        });
    }
    let mut daemon = cmd.spawn().expect("stylecam run");
    let pid = daemon.id();
    support::wait_for_port(http);
    // Warm up: the model loaded, the cameras running, the first check made.
    std::thread::sleep(Duration::from_secs(3));
    let rate = |run: &dyn Fn()| {
        let (n0, t0) = (inferred(http), Instant::now());
        run();
        (inferred(http) - n0) / t0.elapsed().as_secs_f64()
    };

    // 1. Idle.
    let idle_rss = rss_kib(pid);
    let idle = rate(&|| std::thread::sleep(phase));

    // 2. Flood of idle connections (BENCH_FLOOD=0 leaves it out: a daemon
    // from before the listener's bounds does not survive it).
    let flood_on = std::env::var("BENCH_FLOOD").map_or(true, |v| v != "0");
    let held: Vec<TcpStream> = (0..if flood_on { 1100 } else { 0 })
        .filter_map(|i| connect_from(Ipv4Addr::new(127, 0, 1, 1 + (i % 110) as u8), http).ok())
        .collect();
    let opened = held.len();
    let slowest = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let flood = rate(&|| {
        let t = Instant::now();
        while flood_on && t.elapsed() < phase {
            let asked = Instant::now();
            let (code, _) = get(http, "/healthz");
            if code != 200 {
                failed.fetch_add(1, Ordering::Relaxed);
            }
            slowest.fetch_max(asked.elapsed().as_micros() as u64, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    drop(held);

    // 3. 200 concurrent /api/config clients.
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicU64::new(0));
    let turned_away = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..200u32)
        .map(|i| {
            let (stop, answered, turned_away) =
                (stop.clone(), answered.clone(), turned_away.clone());
            std::thread::spawn(move || {
                let from = Ipv4Addr::new(127, 0, 2 + (i / 250) as u8, 1 + (i % 250) as u8);
                while !stop.load(Ordering::Relaxed) {
                    match get_from(from, http, "/api/config").0 {
                        200 => answered.fetch_add(1, Ordering::Relaxed),
                        _ => turned_away.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    let peak = Arc::new(AtomicU64::new(0));
    let storm = rate(&|| {
        let t = Instant::now();
        while t.elapsed() < phase {
            peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        let _ = c.join();
    }
    let alive = daemon.try_wait().unwrap().is_none();
    // SAFETY: kill sends a signal to the child we started.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let _ = daemon.wait();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let emfile = text.matches("Too many open files").count() + text.matches("os error 24").count();

    println!(
        "## HTTP listener under load (`cargo bench --bench listener`; stylecam run at a 1,024 open-file limit, 2 synthetic YUYV 640x480 cameras as fast as they can, cpu (tract) backend; {} s phases; peer: the same daemon idle in the same run)",
        phase.as_secs()
    );
    println!(
        "idle:   {idle:.1} frames/s inferred, RSS {:.1} MiB",
        idle_rss as f64 / 1024.0
    );
    println!(
        "flood:  {opened} idle connections held from 110 addresses: {flood:.1} frames/s ({:.3} of idle); /healthz slowest {:.1} ms, {} not 200 (bar: within 1 s); open-file errors in the log: {emfile}",
        flood / idle,
        slowest.load(Ordering::Relaxed) as f64 / 1e3,
        failed.load(Ordering::Relaxed)
    );
    println!(
        "storm:  200 concurrent /api/config clients: {storm:.1} frames/s ({:.3} of idle; bar ≥ 0.90); peak RSS {:.1} MiB ({:.2}× idle; bar ≤ 2×); {} answered, {} turned away",
        storm / idle,
        peak.load(Ordering::Relaxed) as f64 / 1024.0,
        peak.load(Ordering::Relaxed) as f64 / idle_rss as f64,
        answered.load(Ordering::Relaxed),
        turned_away.load(Ordering::Relaxed)
    );
    println!("daemon still running at the end: {alive}");
}
