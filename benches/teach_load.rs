//! The daemon's frame rate while the box trains (issue 37: "within 10% of
//! its rate without training").
//!
//! One `stylecam run` process in people mode on vtest.avi's frames (the
//! SSDLite cache, `/var/cache/stylecam-tests/ssdlite-v1/video`, made by
//! tests/people.rs; STYLECAM_TEST_CACHE moves it), at the camera's usual
//! 10 fps, looping; the model is the ImageNet EfficientNet-Lite0 bundle with
//! the SSDLite detector added (`stylecam detector add --preset ssdlite`, as
//! scripts/people-demo.sh does). 500 labelled crops of vtest.avi's people
//! (`tests/data/vtest-people`, regenerated as benches/teach.rs does: the 415
//! labelled crops and 85 of them again under new names) sit in its
//! `collect.dir` with their labels in `teach.dir/labels.csv`. Phases of
//! BENCH_PHASE_S seconds (default 30), the rates read from `/metrics`
//! (frames analysed: `stylecam_camera_frames_total{outcome="captured"}`,
//! as the people stage detects on the camera's thread and a late frame
//! delays the next; crops classified: `stylecam_frames_inferred_total`)
//! and the CPU of the daemon's own threads from `/proc`:
//!
//! 1. idle;
//! 2. the page's training job (`POST /api/teach/start` through the page's
//!    write check), one run after another until the phase is over, the
//!    feature cache removed before each so every run extracts its features;
//! 3. idle;
//! 4. `nice -n 19 stylecam train --preset quick` as a separate process (how
//!    an admin runs it from a shell), the same way;
//! 5. idle;
//! 6. `setsid nice -n 19 stylecam train --preset quick`: the same in a
//!    session of its own, as from an admin's login shell (with the
//!    kernel's autogroup scheduling a session is a group of its own, and
//!    nice only ranks threads inside their group);
//! 7. idle;
//!
//! then, the daemon stopped, the same CLI training alone (3 runs). Prints
//! the machine's load before starting, the backends, each phase's rate,
//! the ratios against the goal 0.90 and the training wall times.
//!
//! `cargo bench --features train --bench teach_load` (BENCH_BACKEND picks
//! the daemon's model.backend, default auto).

#[allow(dead_code)]
mod support;
#[allow(dead_code)]
#[path = "support/vtest_people.rs"]
mod vtest_people;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::free_port;
use vtest_people::*;
#[path = "teach_load/probe.rs"]
mod probe;
#[path = "teach_load/setup.rs"]
mod setup;
use probe::*;
use setup::*;

fn skip(why: &str) -> ! {
    println!("SKIP: {why}");
    std::process::exit(0)
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_stylecam"))
}

/// One training through the page's job: its wall time and the run's
/// backend line.
fn job_run(port: u16, session: &(String, String), teach: &Path, log: &Path) -> (f64, String) {
    std::fs::remove_dir_all(teach.join("features")).ok();
    let origin = format!("http://localhost:{port}");
    let t = Instant::now();
    let (code, _, body) = request(
        port,
        "POST",
        "/api/teach/start",
        &[
            ("Cookie", &session.0),
            ("X-Stylecam-Csrf", &session.1),
            ("Origin", &origin),
            ("Content-Type", "application/json"),
        ],
    );
    assert_eq!(code, 200, "POST /api/teach/start: {body}");
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let run = json(port, "/api/teach", &session.0)["run"].clone();
        assert_ne!(run["state"], "failed", "the training failed: {run}");
        if run["state"] == "finished" {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            let backend = log
                .lines()
                .rfind(|l| l.contains("quick training: features of") && l.contains(" on "))
                .unwrap_or("")
                .to_string();
            return (t.elapsed().as_secs_f64(), backend);
        }
        assert!(t.elapsed() < Duration::from_secs(900), "{run}");
    }
}

/// How the CLI training is started.
#[derive(Clone, Copy, PartialEq)]
enum How {
    /// `nice -n 19`, in the bench's session (the daemon's).
    Nice,
    /// `setsid nice -n 19`: a session of its own, as from an admin's login
    /// shell (with autogroup scheduling: a group of its own).
    Shell,
    /// Plain, the daemon stopped.
    Alone,
}

/// One `stylecam train --preset quick`: wall time and its output's
/// backend line.
fn cli_run(w: &Path, n: usize, how: How, people: &Path, lite0: &Path) -> (f64, String) {
    let out = w.join(format!("cli/{n}"));
    let cache = w.join(format!("cli/{n}-cache"));
    let mut cmd = match how {
        How::Alone => bin(),
        How::Nice | How::Shell => {
            let mut c = Command::new(if how == How::Shell { "setsid" } else { "nice" });
            if how == How::Shell {
                c.arg("nice");
            }
            c.args(["-n", "19", env!("CARGO_BIN_EXE_stylecam")]);
            c
        }
    };
    cmd.env("RUST_LOG", "info")
        .args(["train", "--preset", "quick", "--crops"])
        .arg(w.join("collect"))
        .arg("--labels")
        .arg(w.join("teach/labels.csv"))
        .arg("--features")
        .arg(lite0)
        .arg("--current")
        .arg(people)
        .arg("--out")
        .arg(&out)
        .arg("--cache")
        .arg(&cache);
    let t = Instant::now();
    let o = cmd.output().unwrap();
    let s = t.elapsed().as_secs_f64();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "stylecam train --preset quick: {text}");
    let backend = text
        .lines()
        .find(|l| l.contains("quick training: features of"))
        .unwrap_or("")
        .to_string();
    (s, backend.trim().to_string())
}

/// Runs `train` back to back until `phase` is over: the rate over the
/// trainings' span, and each training's wall time.
fn under_load(
    (port, pid): (u16, u32),
    phase: Duration,
    mut train: impl FnMut(usize) -> (f64, String),
) -> Phase {
    let a = count(port, pid);
    let (mut times, mut backend) = (vec![], String::new());
    while times.is_empty() || a.at.elapsed() < phase {
        let (s, b) = train(times.len());
        times.push(s);
        backend = b;
    }
    Phase {
        rate: rate(&a, &count(port, pid)),
        times,
        backend,
    }
}

struct Phase {
    rate: Rate,
    times: Vec<f64>,
    backend: String,
}

fn idle((port, pid): (u16, u32), phase: Duration) -> Rate {
    let a = count(port, pid);
    std::thread::sleep(phase);
    rate(&a, &count(port, pid))
}

fn times(v: &[f64]) -> String {
    let s: Vec<String> = v.iter().map(|t| format!("{t:.1}")).collect();
    let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
    format!("{mean:.1} s (runs: {})", s.join(", "))
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let phase = Duration::from_secs(
        std::env::var("BENCH_PHASE_S")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(30),
    );
    let backend = std::env::var("BENCH_BACKEND").unwrap_or_else(|_| "auto".into());
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let data = std::env::var("STYLECAM_TEST_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| "/var/cache/stylecam-tests".into())
        .join("ssdlite-v1");
    if !data.join(".complete").exists() {
        skip(&format!(
            "{} is missing: run the people tests first (cargo nextest run --test main -E 'test(/people/)')",
            data.display()
        ));
    }
    let w = repo.join("target/bench-data/teach-load");
    std::fs::remove_dir_all(w.join("run")).ok();
    let lite0 = lite0(&repo, &w);
    let people = w.join("people");
    if !people.join("detector.onnx").exists() {
        std::fs::remove_dir_all(&people).ok();
        copy_dir(&lite0, &people);
        let o = bin()
            .args(["detector", "add"])
            .arg(&people)
            .arg("--onnx")
            .arg(data.join("detector.onnx"))
            .args(["--preset", "ssdlite"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let w = w.join("run");
    let n = crops(
        &repo,
        &data.join("video"),
        &lite0,
        &w.join("collect"),
        &w.join("teach"),
    );
    let (classes, _, _) = vtest_people(&repo);

    let http = free_port();
    let cfg = w.join("stylecam.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"device = "teach-load"
[model]
bundle = "{people}"
backend = "{backend}"
[[cameras]]
name = "walkway"
source = "files"
path = "{video}"
loop = true
fps = 10.0
analyze = "people"
[mqtt]
embedded = true
port = {mqtt}
[outbox]
path = "{outbox}"
[metrics]
listen = "127.0.0.1:{http}"
[collect]
dir = "{collect}"
[teach]
dir = "{teach}"
features = "{lite0}"
classes = {classes:?}
"#,
            people = people.display(),
            video = data.join("video").display(),
            mqtt = free_port(),
            outbox = w.join("outbox.redb").display(),
            collect = w.join("collect").display(),
            teach = w.join("teach").display(),
            lite0 = lite0.display(),
        ),
    )
    .unwrap();

    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "# The daemon while it trains: people mode on vtest.avi at 10 fps, {} CPU cores, {n} labelled crops, phases of {} s\n",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        phase.as_secs()
    );
    println!("load average before (1, 5, 15 min): {}", load.trim());
    let log = w.join("daemon.log");
    let mut daemon = bin()
        .args(["run", "--config"])
        .arg(&cfg)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("stylecam run");
    support::wait_for_port(http);
    // Warm up: the models loaded, frames flowing.
    let t = Instant::now();
    let pid = daemon.id();
    while count(http, pid).inferred < 20.0 {
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "no frames inferred: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    std::thread::sleep(Duration::from_secs(5));
    let session = page_session(http);
    let status = json(http, "/api/status", &session.0);
    println!("daemon: model {} on {}", status["model"], status["backend"]);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    for l in text.lines().filter(|l| {
        let l = l.to_lowercase();
        l.contains("backend") || l.contains("detector") || l.contains("onnxruntime")
    }) {
        println!("daemon log: {}", l.trim());
    }

    let idle1 = idle((http, pid), phase);
    let job = under_load((http, pid), phase, |_| {
        job_run(http, &session, &w.join("teach"), &log)
    });
    let idle2 = idle((http, pid), phase);
    let cli = under_load((http, pid), phase, |i| {
        cli_run(&w, i, How::Nice, &people, &lite0)
    });
    let idle3 = idle((http, pid), phase);
    let shell = under_load((http, pid), phase, |i| {
        cli_run(&w, 50 + i, How::Shell, &people, &lite0)
    });
    let idle4 = idle((http, pid), phase);
    // SAFETY: kill on the daemon this bench started.
    unsafe { libc::kill(daemon.id() as i32, libc::SIGINT) };
    let _ = daemon.wait();
    let alone: Vec<f64> = (0..3)
        .map(|i| cli_run(&w, 100 + i, How::Alone, &people, &lite0).0)
        .collect();

    println!(
        "training's features: page job: {}; CLI: {}\n",
        job.backend, cli.backend
    );
    println!("| phase | frames analysed / s | crops classified / s | crops dropped (lag) / s | daemon's own threads, cores busy | trainings, wall time each |");
    println!("|---|---:|---:|---:|---:|---|");
    let row = |name: &str, r: Rate, t: &str| {
        println!(
            "| {name} | {:.2} | {:.2} | {:.2} | {:.2} | {t} |",
            r.captured, r.inferred, r.dropped, r.cores
        )
    };
    row("1. idle", idle1, "-");
    row(
        "2. page job (POST /api/teach/start)",
        job.rate,
        &times(&job.times),
    );
    row("3. idle", idle2, "-");
    row(
        "4. nice -n 19 stylecam train --preset quick",
        cli.rate,
        &times(&cli.times),
    );
    row("5. idle", idle3, "-");
    row(
        "6. setsid nice -n 19 stylecam train --preset quick (a session of its own)",
        shell.rate,
        &times(&shell.times),
    );
    row("7. idle", idle4, "-");
    println!(
        "| training alone (daemon stopped) | - | - | - | - | {} |",
        times(&alone)
    );
    let base = (idle1.captured + idle2.captured) / 2.0;
    let base2 = (idle2.captured + idle3.captured) / 2.0;
    let base3 = (idle3.captured + idle4.captured) / 2.0;
    println!(
        "\nframes analysed, ratio while training / idle (goal >= 0.90): page job {:.3} (against the mean of phases 1 and 3), CLI {:.3} (phases 3 and 5), CLI in a session of its own {:.3} (phases 5 and 7)",
        job.rate.captured / base,
        cli.rate.captured / base2,
        shell.rate.captured / base3
    );
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average after: {}", load.trim());
}
