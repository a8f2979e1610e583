//! `stylecam soak`: the daemon (this binary, `run --config`) with N
//! synthetic cameras, an embedded broker and the demo bundle for a set
//! time, its resident memory, open fds and threads sampled from /proc;
//! reports start, end, the slope after warm-up and the RSS growth.

use anyhow::{bail, Context, Result};
use std::path::Path;
use std::time::{Duration, Instant};

/// What the soak run is asked to do.
pub struct Plan {
    pub cameras: usize,
    pub duration: Duration,
    pub interval: Duration,
    pub warmup: Duration,
    pub fps: f64,
    pub bundle: std::path::PathBuf,
    /// Fail (exit non-zero) when RSS grows more than this after warm-up (%).
    pub max_rss_growth: Option<f64>,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    t: f64,
    rss_kib: u64,
    fds: usize,
    threads: usize,
}

fn sample(pid: u32, t0: Instant) -> Option<Sample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        status
            .lines()
            .find(|l| l.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    Some(Sample {
        t: t0.elapsed().as_secs_f64(),
        rss_kib: field("VmRSS:")?,
        fds: std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count(),
        threads: field("Threads:")? as usize,
    })
}

/// Least-squares slope of `y` over `t`, per minute.
fn slope_per_min(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let (mt, my) = (
        points.iter().map(|p| p.0).sum::<f64>() / n,
        points.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let num: f64 = points.iter().map(|p| (p.0 - mt) * (p.1 - my)).sum();
    let den: f64 = points.iter().map(|p| (p.0 - mt).powi(2)).sum();
    if den == 0.0 {
        0.0
    } else {
        num / den * 60.0
    }
}

fn config(dir: &Path, plan: &Plan, port: u16) -> String {
    let mut text = format!(
        "device = \"soak\"\n[model]\nbundle = {bundle:?}\nbackend = \"cpu\"\n[pipeline]\nqueue_depth = 2\n[mqtt]\nembedded = true\nhost = \"127.0.0.1\"\nport = {port}\nhealth_interval_s = 60\n[outbox]\npath = {outbox:?}\n[metrics]\nlisten = \"\"\n",
        bundle = plan.bundle.display().to_string(),
        outbox = dir.join("outbox.redb").display().to_string(),
    );
    for i in 0..plan.cameras {
        let format = ["yuyv", "nv12", "rgb"][i % 3];
        text.push_str(&format!(
            "[[cameras]]\nname = \"soak-{i}\"\nsource = \"synthetic\"\nwidth = 640\nheight = 480\npixel_format = \"{format}\"\nfps = {}\n",
            plan.fps
        ));
    }
    text
}

pub fn soak(plan: &Plan) -> Result<()> {
    if plan.cameras == 0 {
        bail!("--cameras must be at least 1");
    }
    let dir = tempfile::Builder::new()
        .prefix("stylecam-soak-")
        .tempdir()
        .context("creating a temporary folder")?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .context("finding a free port for the embedded broker")?;
    let cfg = dir.path().join("soak.toml");
    std::fs::write(&cfg, config(dir.path(), plan, port))?;
    let exe = std::env::current_exe().context("finding this binary")?;
    let mut cmd = std::process::Command::new(exe);
    // The daemon goes when the soak does (Ctrl-C, kill).
    // SAFETY: prctl in the forked child before exec, async-signal-safe.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    let mut child = cmd
        .args(["run", "--config"])
        .arg(&cfg)
        .env("RUST_LOG", "warn,rumqttd=off,tracing::span=off")
        .stdout(std::process::Stdio::null())
        .spawn()
        .context("starting the daemon")?;
    let pid = child.id();
    println!(
        "soak: {} synthetic 640x480 cameras at {} fps, demo bundle on the cpu backend, embedded broker; {} (warm-up {}), a sample every {}",
        plan.cameras,
        plan.fps,
        humantime::format_duration(plan.duration),
        humantime::format_duration(plan.warmup),
        humantime::format_duration(plan.interval)
    );
    println!(
        "{:>8} {:>10} {:>5} {:>8}",
        "t (s)", "RSS (KiB)", "fds", "threads"
    );
    let t0 = Instant::now();
    let mut samples = vec![];
    while t0.elapsed() < plan.duration {
        std::thread::sleep(
            plan.interval
                .min(plan.duration.saturating_sub(t0.elapsed())),
        );
        if let Some(status) = child.try_wait()? {
            bail!(
                "the daemon exited early ({status}) after {:.0} s",
                t0.elapsed().as_secs_f64()
            );
        }
        if let Some(s) = sample(pid, t0) {
            println!(
                "{:>8.0} {:>10} {:>5} {:>8}",
                s.t, s.rss_kib, s.fds, s.threads
            );
            samples.push(s);
        }
    }
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let exited = child.wait()?;
    let warm: Vec<Sample> = samples
        .iter()
        .copied()
        .filter(|s| s.t >= plan.warmup.as_secs_f64())
        .collect();
    let (Some(first), Some(w0), Some(last)) = (samples.first(), warm.first(), warm.last()) else {
        bail!("too few samples after the warm-up: run longer than --warmup");
    };
    let growth = (last.rss_kib as f64 - w0.rss_kib as f64) / w0.rss_kib as f64 * 100.0;
    let pts = |f: &dyn Fn(&Sample) -> f64| -> Vec<(f64, f64)> {
        warm.iter().map(|s| (s.t, f(s))).collect()
    };
    println!(
        "\nsoak summary ({} samples, {} after warm-up; daemon exit: {exited})",
        samples.len(),
        warm.len()
    );
    println!("  RSS     first {} KiB, after warm-up {} KiB, end {} KiB: growth after warm-up {growth:+.2}%, slope {:+.1} KiB/min", first.rss_kib, w0.rss_kib, last.rss_kib, slope_per_min(&pts(&|s| s.rss_kib as f64)));
    println!(
        "  fds     first {}, after warm-up {}, end {}, slope {:+.3}/min",
        first.fds,
        w0.fds,
        last.fds,
        slope_per_min(&pts(&|s| s.fds as f64))
    );
    println!(
        "  threads first {}, after warm-up {}, end {}, slope {:+.3}/min",
        first.threads,
        w0.threads,
        last.threads,
        slope_per_min(&pts(&|s| s.threads as f64))
    );
    if let Some(max) = plan.max_rss_growth {
        if growth > max {
            bail!("RSS grew {growth:.2}% after warm-up, more than --max-rss-growth {max}%");
        }
        if last.fds != w0.fds || last.threads != w0.threads {
            bail!(
                "fds {} -> {} or threads {} -> {} changed after warm-up",
                w0.fds,
                last.fds,
                w0.threads,
                last.threads
            );
        }
        println!("  within --max-rss-growth {max}%, fds and threads flat");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::slope_per_min;

    #[test]
    fn slope_is_per_minute() {
        let pts: Vec<(f64, f64)> = (0..10)
            .map(|i| (i as f64 * 6.0, 100.0 + i as f64))
            .collect();
        assert!((slope_per_min(&pts) - 10.0).abs() < 1e-9);
        assert_eq!(slope_per_min(&[(0.0, 5.0)]), 0.0);
    }
}
