//! `stylecam soak`: the daemon (this binary, `run --config`) with N
//! synthetic cameras, an embedded broker and the demo bundle for a set
//! time, its resident memory, open fds and threads sampled from /proc;
//! reports start, end, the slope after warm-up and the RSS growth.
//!
//! With `--faults`: a mosquitto of its own (with persistence) instead of
//! the embedded broker, a real subscriber (`scripts/soak_subscriber.py`,
//! paho-mqtt, embedded in this binary) that de-duplicates by (device,
//! camera, epoch, seq), and faults on a schedule — the broker stopped and
//! restarted, a SIGHUP reload, the broker stopped while the outbox's disk
//! is full (a small tmpfs, where it can be mounted), and once a SIGKILL of
//! the daemon and a
//! restart — then a quiet drain and a graceful stop. The verdict: events
//! decided (each stream's highest seq) = events received, no seq missing.

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
    pub faults: Option<Faults>,
}

/// The fault schedule of `--faults`.
pub struct Faults {
    /// One fault this often, in turn: broker restart, reload, disk full,
    /// reload (and one SIGKILL at half time).
    pub every: Duration,
    /// How long the broker stays down, and the disk full.
    pub outage: Duration,
    /// No faults for this long before the end: the outbox drains.
    pub drain: Duration,
    pub mosquitto: std::path::PathBuf,
    pub python: std::path::PathBuf,
    /// The user-space fake V4L2 camera (`tests/fake_v4l2/fake_v4l2.c`
    /// built with `cc -shared -fPIC … -ldl -lpthread`): one more camera
    /// through the real ioctl path, unplugged every `unplug_every` of its
    /// frames for 3 s.
    pub fake_camera: Option<std::path::PathBuf>,
    pub unplug_every: Duration,
}

/// The subscriber script, written next to the soak's config.
const SUBSCRIBER: &str = include_str!("../../scripts/soak_subscriber.py");

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

fn config(outbox_dir: &Path, plan: &Plan, port: u16) -> String {
    let mut text = format!(
        "device = \"soak\"\n[model]\nbundle = {bundle:?}\nbackend = \"cpu\"\n[pipeline]\nqueue_depth = 2\n[mqtt]\nembedded = {embedded}\nhost = \"127.0.0.1\"\nport = {port}\nhealth_interval_s = 60\n[outbox]\npath = {outbox:?}\n[metrics]\nlisten = \"\"\n",
        bundle = plan.bundle.display().to_string(),
        embedded = plan.faults.is_none(),
        outbox = outbox_dir.join("outbox.redb").display().to_string(),
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

/// A child process killed (SIGTERM, then reaped) when dropped.
struct Child {
    what: &'static str,
    child: std::process::Child,
}

impl Child {
    fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, sig) };
    }

    /// SIGTERM and wait (SIGKILL after 20 s).
    fn stop(&mut self) -> Option<std::process::ExitStatus> {
        self.signal(libc::SIGTERM);
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        log::warn!("soak: the {} did not stop within 20 s: killed", self.what);
        let _ = self.child.kill();
        self.child.wait().ok()
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.stop();
        }
    }
}

/// Children die with the soak (Ctrl-C, kill).
fn with_parent(cmd: &mut std::process::Command) -> &mut std::process::Command {
    // SAFETY: prctl in the forked child before exec, async-signal-safe.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(cmd, || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    cmd
}

/// The fake camera's node, frames and config in `dir`; the environment
/// the daemon needs to see it, and the camera's config table.
fn fake_camera(
    lib: &Path,
    dir: &Path,
    fps: f64,
    unplug_every: Duration,
) -> Result<(Vec<(String, String)>, String)> {
    let dev = dir.join("dev");
    std::fs::create_dir_all(&dev)?;
    let node = dev.join("video0");
    std::fs::write(&node, b"")?;
    let (w, h) = (640u32, 480u32);
    let mut files = vec![];
    for i in 0..3u32 {
        // Three different pictures: the tags change as the frames cycle.
        let img = image::RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([
                ((x * (i + 1) / 3) % 256) as u8,
                ((y * (3 - i) / 2) % 256) as u8,
                (((x + y) * (i + 2) / 5) % 256) as u8,
            ])
        });
        let path = dev.join(format!("frame{i}.yuyv"));
        std::fs::write(
            &path,
            stylecam::capture::encode::rgb_to_yuyv(img.as_raw(), w as usize, h as usize),
        )?;
        files.push(path.display().to_string());
    }
    let conf = dir.join("fake.conf");
    std::fs::write(
        &conf,
        format!(
            "node {}\ncard Soak Cam\nbus usb-0000:00:14.0-1\nformat YUYV {w} {h} {} {}\nfault unplug_after {}\nfault down_ms 3000\nfault cycles 100000\n",
            node.display(),
            fps.round().max(1.0) as u32,
            files.join(" "),
            ((unplug_every.as_secs_f64() * fps) as u64).max(1),
        ),
    )?;
    let env = vec![
        ("LD_PRELOAD".to_string(), lib.display().to_string()),
        ("FAKE_V4L2_CONFIG".to_string(), conf.display().to_string()),
        (
            "FAKE_V4L2_LOG".to_string(),
            dir.join("fake.log").display().to_string(),
        ),
    ];
    let camera = format!(
        "[[cameras]]\nname = \"soak-v4l2\"\nsource = \"v4l2\"\ndevice = \"{}\"\nformats = [\"yuyv\"]\nwidth = {w}\nheight = {h}\nfps = {fps}\nbackoff_min_ms = 200\n",
        node.display()
    );
    Ok((env, camera))
}

fn daemon(cfg: &Path, env: &[(String, String)]) -> Result<Child> {
    let exe = std::env::current_exe().context("finding this binary")?;
    let child = with_parent(&mut std::process::Command::new(exe))
        .args(["run", "--config"])
        .arg(cfg)
        .envs(env.iter().cloned())
        .env(
            "RUST_LOG",
            std::env::var("SOAK_LOG")
                .unwrap_or_else(|_| "warn,rumqttd=off,tracing::span=off".into()),
        )
        .stdout(std::process::Stdio::null())
        .spawn()
        .context("starting the daemon")?;
    Ok(Child {
        what: "daemon",
        child,
    })
}

fn mosquitto(f: &Faults, dir: &Path, port: u16) -> Result<Child> {
    let conf = dir.join("mosquitto.conf");
    let data = dir.join("mosquitto");
    std::fs::create_dir_all(&data)?;
    // Started as root, mosquitto drops to its own user: it must be able
    // to save its sessions there (or a restart forgets the subscriber's).
    std::fs::set_permissions(&data, std::os::unix::fs::PermissionsExt::from_mode(0o777))?;
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {}/\nmax_queued_messages 0\nlog_dest stderr\nlog_type all\nlog_timestamp_format %H:%M:%S\n",
            data.display()
        ),
    )?;
    let child = with_parent(&mut std::process::Command::new(&f.mosquitto))
        .arg("-c")
        .arg(&conf)
        .stdout(std::process::Stdio::null())
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join("mosquitto.log"))?,
        )
        .spawn()
        .with_context(|| format!("starting {}", f.mosquitto.display()))?;
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if t.elapsed() > Duration::from_secs(10) {
            bail!(
                "mosquitto did not listen on port {port} within 10 s (see {})",
                dir.join("mosquitto.log").display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(Child {
        what: "broker",
        child,
    })
}

fn subscriber(f: &Faults, dir: &Path, port: u16) -> Result<(Child, std::path::PathBuf)> {
    use std::io::BufRead;
    let script = dir.join("soak_subscriber.py");
    std::fs::write(&script, SUBSCRIBER)?;
    let out = dir.join("subscriber.json");
    let mut child = with_parent(&mut std::process::Command::new(&f.python))
        .arg(&script)
        .args(["--port", &port.to_string(), "--device", "soak", "--out"])
        .arg(&out)
        .args(
            std::env::var_os("SOAK_TRACE")
                .map(|t| vec![std::ffi::OsString::from("--trace"), t])
                .unwrap_or_default(),
        )
        .stdout(std::process::Stdio::piped())
        .spawn()
        .with_context(|| {
            format!(
                "starting {} (the subscriber needs paho-mqtt: pip install paho-mqtt)",
                f.python.display()
            )
        })?;
    let stdout = child.stdout.take().expect("piped");
    let mut line = String::new();
    std::io::BufReader::new(stdout).read_line(&mut line)?;
    if line.trim() != "subscribed" {
        bail!("the subscriber did not subscribe (is paho-mqtt installed? pip install paho-mqtt)");
    }
    Ok((
        Child {
            what: "subscriber",
            child,
        },
        out,
    ))
}

/// A small tmpfs for the outbox, so the disk can be filled; unmounted
/// when dropped. `None` where mounting is not allowed.
struct Disk {
    path: std::path::PathBuf,
}

impl Disk {
    fn mount(path: std::path::PathBuf) -> Option<Self> {
        std::fs::create_dir_all(&path).ok()?;
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=32m", "stylecam-soak"])
            .arg(&path)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Self { path })
    }

    /// Fills the disk up; the filler is removed by `free`.
    fn fill(&self) -> u64 {
        use std::io::Write;
        let Ok(mut f) = std::fs::File::create(self.path.join("filler")) else {
            return 0;
        };
        let chunk = vec![0u8; 64 << 10];
        let mut n = 0;
        while f.write_all(&chunk).is_ok() {
            n += chunk.len() as u64;
        }
        // The last partial chunk too.
        while f.write_all(&chunk[..512]).is_ok() {
            n += 512;
        }
        n
    }

    fn free(&self) {
        let _ = std::fs::remove_file(self.path.join("filler"));
    }
}

impl Drop for Disk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(&self.path)
            .status();
    }
}

static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn on_interrupt(_: libc::c_int) {
    INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
}

fn interrupted() -> bool {
    INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst)
}

/// Sleeps `d`, or less when Ctrl-C or SIGTERM came.
fn nap(d: Duration) {
    let t = Instant::now();
    while t.elapsed() < d && !interrupted() {
        std::thread::sleep((d - t.elapsed()).min(Duration::from_millis(200)));
    }
}

pub fn soak(plan: &Plan) -> Result<()> {
    if plan.cameras == 0 {
        bail!("--cameras must be at least 1");
    }
    // Ctrl-C or SIGTERM end the run early but cleanly: the daemon, broker
    // and subscriber stop, the tmpfs is unmounted, the summary printed.
    // SAFETY: the handler only stores to an atomic (async-signal-safe).
    unsafe {
        libc::signal(
            libc::SIGINT,
            on_interrupt as *const () as libc::sighandler_t,
        );
        libc::signal(
            libc::SIGTERM,
            on_interrupt as *const () as libc::sighandler_t,
        );
    }
    let dir = tempfile::Builder::new()
        .prefix("stylecam-soak-")
        .tempdir()
        .context("creating a temporary folder")?;
    if std::env::var_os("SOAK_KEEP").is_some() {
        println!("soak: keeping {}", dir.path().display());
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .context("finding a free port for the broker")?;
    let mut broker = None;
    let mut sub = None;
    let mut disk = None;
    if let Some(f) = &plan.faults {
        broker = Some(mosquitto(f, dir.path(), port)?);
        sub = Some(subscriber(f, dir.path(), port)?);
        disk = Disk::mount(dir.path().join("disk"));
    }
    let outbox_dir = disk
        .as_ref()
        .map_or(dir.path().to_path_buf(), |d| d.path.clone());
    let cfg = dir.path().join("soak.toml");
    let mut text = config(&outbox_dir, plan, port);
    let mut env = vec![];
    if let Some((lib, f)) = plan
        .faults
        .as_ref()
        .and_then(|f| f.fake_camera.as_ref().map(|l| (l, f)))
    {
        let (e, camera) = fake_camera(lib, dir.path(), plan.fps, f.unplug_every)?;
        env = e;
        text.push_str(&camera);
    }
    std::fs::write(&cfg, text)?;
    let mut child = daemon(&cfg, &env)?;
    println!(
        "soak: {} synthetic 640x480 cameras at {} fps, demo bundle on the cpu backend, {}; {} (warm-up {}), a sample every {}",
        plan.cameras,
        plan.fps,
        if plan.faults.is_some() { "mosquitto and a paho-mqtt subscriber" } else { "embedded broker" },
        humantime::format_duration(plan.duration),
        humantime::format_duration(plan.warmup),
        humantime::format_duration(plan.interval)
    );
    if let Some(f) = &plan.faults {
        println!(
            "faults: one every {} (broker stopped for {}, a reload, the broker stopped with the outbox's disk full for {}{}, a reload), a SIGKILL and restart at half time, none in the last {}{}",
            humantime::format_duration(f.every),
            humantime::format_duration(f.outage),
            humantime::format_duration(f.outage),
            if disk.is_some() { "" } else { " — skipped: no tmpfs can be mounted here" },
            humantime::format_duration(f.drain),
            match &f.fake_camera {
                Some(_) => format!(
                    "; a fake V4L2 camera unplugged for 3 s every {} of frames",
                    humantime::format_duration(f.unplug_every)
                ),
                None => String::new(),
            }
        );
    }
    println!(
        "{:>8} {:>10} {:>5} {:>8}",
        "t (s)", "RSS (KiB)", "fds", "threads"
    );
    let t0 = Instant::now();
    // Samples per daemon process (a SIGKILL starts a new one).
    let mut runs: Vec<(f64, Vec<Sample>)> = vec![(0.0, vec![])];
    let mut next_sample = plan.interval;
    let mut next_fault = plan.faults.as_ref().map(|f| f.every);
    let mut fault_n = 0usize;
    let mut killed = false;
    let mut injected: std::collections::BTreeMap<&str, usize> = Default::default();
    while t0.elapsed() < plan.duration {
        let now = t0.elapsed();
        let wake = next_fault.map_or(next_sample, |f| f.min(next_sample));
        nap(wake
            .saturating_sub(now)
            .min(plan.duration.saturating_sub(now)));
        if interrupted() {
            println!(
                "{:>8.0} interrupted: stopping and reporting what ran",
                t0.elapsed().as_secs_f64()
            );
            break;
        }
        if let Some(status) = child.child.try_wait()? {
            bail!(
                "the daemon exited early ({status}) after {:.0} s",
                t0.elapsed().as_secs_f64()
            );
        }
        let now = t0.elapsed();
        if now >= next_sample {
            next_sample += plan.interval;
            if let Some(s) = sample(child.child.id(), t0) {
                println!(
                    "{:>8.0} {:>10} {:>5} {:>8}",
                    s.t, s.rss_kib, s.fds, s.threads
                );
                runs.last_mut().expect("one run").1.push(s);
            }
        }
        let (Some(f), Some(at)) = (&plan.faults, next_fault) else {
            continue;
        };
        if now < at {
            continue;
        }
        next_fault = Some(at + f.every).filter(|n| *n + f.drain < plan.duration);
        let t = now.as_secs_f64();
        if !killed && now >= plan.duration / 2 {
            killed = true;
            child.signal(libc::SIGKILL);
            let _ = child.child.wait();
            std::thread::sleep(Duration::from_secs(2));
            child = daemon(&cfg, &env)?;
            runs.push((t0.elapsed().as_secs_f64(), vec![]));
            println!("{t:>8.0} fault: daemon SIGKILLed, started again");
            *injected.entry("daemon SIGKILL + restart").or_default() += 1;
            continue;
        }
        match fault_n % 4 {
            0 => {
                if let Some(b) = broker.as_mut() {
                    b.stop();
                }
                nap(f.outage);
                broker = Some(mosquitto(f, dir.path(), port)?);
                println!(
                    "{t:>8.0} fault: broker stopped for {} s, started again",
                    f.outage.as_secs()
                );
                *injected.entry("broker restart").or_default() += 1;
            }
            // The disk fills while the broker is away: the outbox must
            // grow then (with the broker up it rarely writes new pages).
            2 if disk.is_some() => {
                let d = disk.as_ref().expect("mounted");
                if let Some(b) = broker.as_mut() {
                    b.stop();
                }
                let filled = d.fill();
                nap(f.outage);
                d.free();
                nap(f.outage / 2);
                broker = Some(mosquitto(f, dir.path(), port)?);
                println!(
                    "{t:>8.0} fault: broker stopped and the outbox's disk full for {} s ({} KiB filler), then the disk freed and the broker started",
                    f.outage.as_secs(),
                    filled >> 10
                );
                *injected
                    .entry("disk full during a broker outage")
                    .or_default() += 1;
            }
            _ => {
                child.signal(libc::SIGHUP);
                println!("{t:>8.0} fault: SIGHUP (reload)");
                *injected.entry("reload").or_default() += 1;
            }
        }
        fault_n += 1;
    }
    let exited = child.stop();
    // What the subscriber received once the daemon is gone.
    let delivery = match sub.as_mut() {
        Some(s) => {
            std::thread::sleep(Duration::from_secs(3));
            s.0.stop();
            let out = &s.1;
            let text = std::fs::read_to_string(out)
                .with_context(|| format!("the subscriber wrote no {}", out.display()))?;
            Some(serde_json::from_str::<serde_json::Value>(&text)?)
        }
        None => None,
    };
    drop(broker);
    drop(disk);
    let fake_log = std::fs::read_to_string(dir.path().join("fake.log")).unwrap_or_default();
    if std::env::var_os("SOAK_KEEP").is_some() {
        // Left for a look (mosquitto.log, subscriber.json).
        std::mem::forget(dir);
    }
    let (run_start, samples) = runs.pop().expect("one run");
    let warm: Vec<Sample> = samples
        .iter()
        .copied()
        .filter(|s| s.t >= run_start + plan.warmup.as_secs_f64())
        .collect();
    let (Some(first), Some(w0), Some(last)) = (samples.first(), warm.first(), warm.last()) else {
        bail!("too few samples after the warm-up of the last daemon run: run longer than --warmup (twice it with --faults)");
    };
    let growth = (last.rss_kib as f64 - w0.rss_kib as f64) / w0.rss_kib as f64 * 100.0;
    let pts = |f: &dyn Fn(&Sample) -> f64| -> Vec<(f64, f64)> {
        warm.iter().map(|s| (s.t, f(s))).collect()
    };
    println!(
        "\nsoak summary ({} samples of the {}daemon run from {run_start:.0} s, {} after warm-up; daemon exit: {})",
        samples.len(),
        if plan.faults.is_some() { "last " } else { "" },
        warm.len(),
        exited.map_or("unknown".into(), |s| s.to_string())
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
    let mut lost = 0;
    if let Some(d) = &delivery {
        let mut faults: Vec<String> = injected.iter().map(|(k, n)| format!("{k} ×{n}")).collect();
        if plan
            .faults
            .as_ref()
            .is_some_and(|f| f.fake_camera.is_some())
        {
            let count = |what: &str| fake_log.lines().filter(|l| l.starts_with(what)).count();
            faults.push(format!(
                "camera unplugged ×{} (replugged ×{})",
                count("unplug "),
                count("replug ")
            ));
        }
        println!(
            "  faults  {}",
            if faults.is_empty() {
                "none (run longer than --fault-every + the drain)".into()
            } else {
                faults.join(", ")
            }
        );
        let streams = d["streams"].as_array().cloned().unwrap_or_default();
        let (mut decided, mut received) = (0, 0);
        for s in &streams {
            decided += s["highest_seq"].as_u64().unwrap_or(0);
            received += s["received"].as_u64().unwrap_or(0);
            lost += s["missing"].as_u64().unwrap_or(0);
            println!(
                "  stream  camera {} epoch {}: {} of {} received",
                s["camera"], s["epoch"], s["received"], s["highest_seq"]
            );
            if s["missing"].as_u64().unwrap_or(0) > 0 {
                println!(
                    "  MISSING camera {} epoch {}: {} of {} (first: {})",
                    s["camera"], s["epoch"], s["missing"], s["highest_seq"], s["missing_first"]
                );
            }
        }
        println!(
            "  events  decided {decided} (the streams' highest seq, {} streams), received {received} distinct, {lost} missing, {} duplicates dropped by the subscriber, {} subscriber connects ({} resuming its session)",
            streams.len(),
            d["duplicates"],
            d["connects"],
            d["sessions_resumed"]
        );
        if decided == 0 {
            bail!("no event reached the subscriber");
        }
    }
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
    if lost > 0 {
        bail!("{lost} event(s) decided but never received");
    }
    if interrupted() {
        bail!("interrupted before the end");
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
