//! V4L2 cameras through the real ioctl path: the daemon and the CLI run
//! unmodified with `tests/fake_v4l2/fake_v4l2.c` preloaded (built here with
//! `cc`), which plays the kernel's side for a few fake nodes with frames
//! made from real photos, and injects faults (unplug, EIO, stall, ERROR
//! buffers, busy, dropped frames). What this proves and what it does not:
//! docs/tests.md.

use crate::common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use stylecam::capture::encode;

/// Builds the fake camera library (once per test process).
pub(crate) fn fake_lib() -> &'static Path {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("libfake_v4l2-{}.so", std::process::id()));
        let status = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
            .args(["-shared", "-fPIC", "-O2", "-Wall", "-Werror", "-o"])
            .arg(&out)
            .arg(repo().join("tests/fake_v4l2/fake_v4l2.c"))
            .args(["-ldl", "-lpthread"])
            .status()
            .expect("run the C compiler (cc)");
        assert!(status.success(), "building the fake camera failed");
        out
    })
}

pub(crate) fn photo(name: &str) -> image::RgbImage {
    let path = match name {
        "astronaut" => repo().join("assets/photos/astronaut.jpg"),
        "camera" => repo().join("assets/photos/camera.png"),
        n => repo().join(format!("tests/data/photos/{n}.jpg")),
    };
    image::open(path).unwrap().into_rgb8()
}

/// Frame files of one format at one size, one per photo.
fn frames(dir: &Path, fourcc: &str, w: u32, h: u32) -> Vec<PathBuf> {
    ["coffee", "chelsea", "astronaut"]
        .iter()
        .map(|name| {
            let scene = encode::scene(&photo(name), w, h);
            let (bytes, ext) = match fourcc {
                "YUYV" => (
                    encode::rgb_to_yuyv(scene.as_raw(), w as usize, h as usize),
                    "yuyv",
                ),
                "NV12" => (
                    encode::rgb_to_nv12(scene.as_raw(), w as usize, h as usize),
                    "nv12",
                ),
                "MJPG" => (encode::rgb_to_jpeg(&scene, 85), "jpg"),
                other => panic!("no frames for {other}"),
            };
            let path = dir.join(format!("{name}-{w}x{h}.{ext}"));
            std::fs::write(&path, bytes).unwrap();
            path
        })
        .collect()
}

/// The fake's line for one format: frames cycle through `files` (at most 16).
pub(crate) fn format_line(fourcc: &str, w: u32, h: u32, fps: u32, files: &[PathBuf]) -> String {
    let files: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
    format!("format {fourcc} {w} {h} {fps} {}", files.join(" "))
}

/// One fake node: its config lines.
struct Node {
    path: PathBuf,
    lines: Vec<String>,
}

/// Fake nodes in a temp dir that plays /dev (`video*` files, `v4l/by-id`).
pub(crate) struct Rig {
    dir: tempfile::TempDir,
    nodes: Vec<Node>,
}

impl Rig {
    pub(crate) fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            nodes: vec![],
        }
    }

    pub(crate) fn dev(&self) -> PathBuf {
        self.dir.path().join("dev")
    }

    /// Adds `videoN` with a by-id link; `formats` are `(fourcc, w, h, fps)`,
    /// each cycling through frames of three photos.
    fn node(
        &mut self,
        card: &str,
        formats: &[(&str, u32, u32, u32)],
        faults: &[(&str, i64)],
    ) -> PathBuf {
        let frames_dir = self.dir.path().join("frames");
        std::fs::create_dir_all(&frames_dir).unwrap();
        let formats: Vec<String> = formats
            .iter()
            .map(|&(fourcc, w, h, fps)| {
                format_line(fourcc, w, h, fps, &frames(&frames_dir, fourcc, w, h))
            })
            .collect();
        self.node_with(card, &formats, faults)
    }

    /// Adds `videoN` with a by-id link; `formats` are the fake's `format`
    /// lines ([`format_line`]).
    pub(crate) fn node_with(
        &mut self,
        card: &str,
        formats: &[String],
        faults: &[(&str, i64)],
    ) -> PathBuf {
        let dev = self.dev();
        std::fs::create_dir_all(dev.join("v4l/by-id")).unwrap();
        let path = dev.join(format!("video{}", self.nodes.len() * 2));
        std::fs::write(&path, b"").unwrap();
        let id = format!("usb-Fake_{}-video-index0", card.replace(' ', "_"));
        std::os::unix::fs::symlink(&path, dev.join("v4l/by-id").join(&id)).unwrap();
        let mut lines = vec![
            format!("node {}", path.display()),
            format!("card {card}"),
            format!("bus usb-0000:00:14.0-{}", self.nodes.len() + 1),
        ];
        lines.extend(formats.iter().cloned());
        for (name, v) in faults {
            lines.push(format!("fault {name} {v}"));
        }
        self.nodes.push(Node {
            path: dev.join("v4l/by-id").join(id),
            lines,
        });
        self.nodes.last().unwrap().path.clone()
    }

    /// A UVC metadata node next to the last one (not a capture node).
    fn meta_node(&mut self) {
        let path = self
            .dev()
            .join(format!("video{}", self.nodes.len() * 2 - 1));
        std::fs::write(&path, b"").unwrap();
        self.nodes.push(Node {
            path: path.clone(),
            lines: vec![format!("node {}", path.display()), "meta 1".into()],
        });
    }

    pub(crate) fn log_path(&self) -> PathBuf {
        self.dir.path().join("fake.log")
    }

    /// Environment for a process that should see the fake nodes.
    pub(crate) fn env(&self) -> Vec<(String, String)> {
        let cfg = self.dir.path().join("fake.conf");
        let text: Vec<String> = self.nodes.iter().flat_map(|n| n.lines.clone()).collect();
        std::fs::write(&cfg, text.join("\n") + "\n").unwrap();
        vec![
            ("LD_PRELOAD".into(), fake_lib().display().to_string()),
            ("FAKE_V4L2_CONFIG".into(), cfg.display().to_string()),
            (
                "FAKE_V4L2_LOG".into(),
                self.log_path().display().to_string(),
            ),
        ]
    }

    /// `stylecam run --config cfg` seeing the fake nodes.
    pub(crate) fn daemon(&self, cfg: &Path) -> Daemon {
        let mut cmd = stylecam();
        cmd.args(["run", "--config"]).arg(cfg).envs(self.env());
        Daemon::spawn(cmd)
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub(crate) fn count(&self, what: &str) -> usize {
        self.log().lines().filter(|l| l.starts_with(what)).count()
    }
}

fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let t = Instant::now();
    while !ok() {
        assert!(
            t.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn hand_written_uapi_matches_the_kernel_header() {
    use stylecam::capture::v4l2::sys;
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("layout");
    let ok = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .arg("-o")
        .arg(&exe)
        .arg(repo().join("tests/fake_v4l2/layout.c"))
        .status()
        .expect("cc");
    assert!(
        ok.success(),
        "compiling layout.c against linux/videodev2.h failed"
    );
    let out = Command::new(&exe).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let c: std::collections::HashMap<&str, u64> = text
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k, v.parse().ok()?))
        })
        .collect();
    let mut checked = 0;
    for (name, v) in sys::IOCTLS {
        assert_eq!(c[name], v, "{name}: ours {v:#x}, kernel {:#x}", c[name]);
        checked += 1;
    }
    for (name, v) in sys::SIZES {
        assert_eq!(c[&*format!("sizeof.{name}")], v as u64, "sizeof {name}");
        checked += 1;
    }
    for (name, v) in sys::OFFSETS {
        assert_eq!(c[&*format!("offsetof.{name}")], v as u64, "offsetof {name}");
        checked += 1;
    }
    assert_eq!(checked, 31);
    eprintln!("{checked} ioctl numbers, sizes and offsets match linux/videodev2.h");
}

#[test]
fn cameras_lists_fake_nodes_with_formats_sizes_rates_and_a_snippet() {
    let mut rig = Rig::new();
    let a = rig.node(
        "Door Cam",
        &[
            ("MJPG", 1280, 720, 30),
            ("MJPG", 640, 480, 30),
            ("YUYV", 640, 480, 15),
        ],
        &[],
    );
    rig.meta_node();
    rig.node("Till Cam", &[("NV12", 640, 480, 30)], &[]);
    let out = stylecam()
        .args(["cameras", "--dev"])
        .arg(rig.dev())
        .envs(rig.env())
        .output()
        .unwrap();
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    eprintln!("{text}");
    for want in [
        "Door Cam (driver fakecam, bus usb-0000:00:14.0-1)",
        "Till Cam (driver fakecam",
        "MJPG (Motion-JPEG):",
        "1280x720: 30, 15 fps",
        "640x480: 30, 15 fps",
        "YUYV (YUYV 4:2:2):",
        "640x480: 15, 7.5 fps",
        "NV12 (Y/UV 4:2:0):",
        "source = \"v4l2\"",
        "formats = [\"mjpeg\", \"yuyv\"]",
        "width = 1280\n    height = 720\n    fps = 30",
        "formats = [\"nv12\"]",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    assert!(
        text.contains(&format!("device = \"{}\"", a.display())),
        "the snippet uses the stable name:\n{text}"
    );
    assert!(text.contains(&format!("also: {}", a.display())));
    assert_eq!(
        text.matches("[[cameras]]").count(),
        2,
        "the metadata node is not listed:\n{text}"
    );

    let empty = tempfile::tempdir().unwrap();
    let out = stylecam()
        .args(["cameras", "--dev"])
        .arg(empty.path())
        .output()
        .unwrap();
    let text = output_text(&out);
    assert!(
        out.status.success() && text.contains("no V4L2 devices found"),
        "{text}"
    );
}

/// A daemon config with the given v4l2 camera tables.
fn config(dir: &Path, port: u16, device: &str, cameras: &str) -> PathBuf {
    let text = format!(
        r#"device = "{device}"
[model]
bundle = "{bundle}"
backend = "cpu"
{cameras}
[pipeline]
queue_depth = 2
[smoothing]
window = 1
enter_frames = 1
leave_frames = 1
[mqtt]
embedded = false
host = "127.0.0.1"
port = {port}
keep_alive_s = 5
health_interval_s = 1
[outbox]
path = "{outbox}"
"#,
        bundle = repo().join("assets/demo-bundle").display(),
        outbox = dir.join("outbox.redb").display(),
    );
    let path = dir.join("stylecam.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn camera(name: &str, device: &Path, formats: &str, w: u32, h: u32, extra: &str) -> String {
    format!(
        "[[cameras]]\nname = \"{name}\"\nsource = \"v4l2\"\ndevice = \"{}\"\nformats = [{formats}]\nwidth = {w}\nheight = {h}\nfps = 30.0\n{extra}\n",
        device.display()
    )
}

fn health_cameras(r: &Received) -> Vec<serde_json::Value> {
    r.json["cameras"].as_array().cloned().unwrap_or_default()
}

fn cam<'a>(cams: &'a [serde_json::Value], name: &str) -> Option<&'a serde_json::Value> {
    cams.iter().find(|c| c["name"] == name)
}

fn styles_of(all: &[Received], camera: &str) -> usize {
    kind(all, "styles")
        .iter()
        .filter(|r| r.topic.ends_with(&format!("/{camera}/styles")))
        .count()
}

/// Open fds and threads of a process.
fn resources(pid: u32) -> (usize, usize) {
    let n = |d: &str| {
        std::fs::read_dir(format!("/proc/{pid}/{d}"))
            .unwrap()
            .count()
    };
    (n("fd"), n("task"))
}

#[test]
fn daemon_streams_mjpeg_and_yuyv_and_survives_unplug_eio_and_stall() {
    if !available("mosquitto", mosquitto_path().is_some()) {
        return;
    }
    let mut rig = Rig::new();
    // `door` is unplugged after 45 frames for 1.5 s, then gets an EIO and a
    // 1.5 s stall; `till` streams throughout.
    let door = rig.node(
        "Door Cam",
        &[("MJPG", 1280, 720, 30)],
        &[
            ("unplug_after", 45),
            ("down_ms", 1500),
            ("cycles", 1),
            ("eio_at", 120),
            ("stall_at", 200),
            ("stall_ms", 1500),
            ("error_at", 30),
            ("drop_every", 50),
        ],
    );
    let till = rig.node("Till Cam", &[("YUYV", 640, 480, 30)], &[]);
    let broker = Mosquitto::start(free_port());
    let dir = tempfile::tempdir().unwrap();
    let cameras = camera(
        "door",
        &door,
        "\"mjpeg\"",
        1280,
        720,
        "backoff_min_ms = 100\nstall_frames = 15",
    ) + &camera("till", &till, "\"yuyv\"", 640, 480, "");
    let cfg = config(dir.path(), broker.port, "it-v4l2", &cameras);
    let sub = Collector::start(broker.port, "stylecam/it-v4l2/#", "it-v4l2-sub");
    let mut daemon = rig.daemon(&cfg);

    let validator = schema();
    // Both cameras produce events.
    sub.wait_for(
        "styles events from both cameras",
        Duration::from_secs(60),
        |all| styles_of(all, "door") >= 2 && styles_of(all, "till") >= 2,
    );
    // door goes away and the health message says so, while till keeps its rate.
    let all = sub.wait_for(
        "door reconnecting in a health message",
        Duration::from_secs(30),
        |all| {
            kind(all, "health").iter().any(|h| {
                cam(&health_cameras(h), "door").is_some_and(|c| c["state"] == "reconnecting")
            })
        },
    );
    let before_replug = styles_of(&all, "door");
    // It comes back by itself: events resume.
    sub.wait_for(
        "door streaming again with new events",
        Duration::from_secs(30),
        |all| rig.count("replug") >= 1 && styles_of(all, "door") > before_replug + 2,
    );
    assert!(rig.count("unplug") >= 1);
    // Then the EIO and the stall: two more reconnects, and it recovers from each.
    wait_until("the EIO and the stall", Duration::from_secs(40), || {
        rig.count("eio") >= 1 && rig.count("stall") >= 1
    });
    let all = sub.wait_for(
        "door recovered from EIO and stall",
        Duration::from_secs(40),
        |all| {
            kind(all, "health").last().is_some_and(|h| {
                cam(&health_cameras(h), "door").is_some_and(|c| {
                    c["reconnects"].as_u64() >= Some(3)
                        && c["state"] == "streaming"
                        && c["fps"].as_f64() > Some(10.0)
                })
            })
        },
    );
    let log = daemon.log_text();
    for want in [
        "the device is gone (unplugged)",
        "I/O error from the device",
        "(stalled stream)",
        "MJPG 1280x720 at 30 fps",
        "YUYV 640x480 at 30 fps",
    ] {
        assert!(log.contains(want), "log lacks {want:?}:\n{log}");
    }
    for r in &all {
        assert_valid(&validator, r);
    }
    // till kept its frame rate throughout: `streaming` and never
    // reconnecting in every health message, and ~30 frames per second of
    // health-message time from its first to its last (the per-message fps
    // is a 10-frame average, noisy on a loaded machine: only a sanity band).
    let healths = kind(&all, "health");
    let till: Vec<(f64, u64, String, f64, u64)> = healths
        .iter()
        .filter_map(|h| {
            let c = cam(&health_cameras(h), "till")?.clone();
            let at = humantime::parse_rfc3339(h.json["at"].as_str()?).ok()?;
            let at = at.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs_f64();
            Some((
                at,
                c["captured"].as_u64()?,
                c["state"].as_str()?.to_string(),
                c["fps"].as_f64()?,
                c["reconnects"].as_u64()?,
            ))
        })
        .filter(|t| t.1 > 0)
        .collect();
    assert!(till.len() >= 5, "{till:?}");
    for (_, _, state, fps, reconnects) in &till[1..] {
        assert_eq!((state.as_str(), *reconnects), ("streaming", 0), "{till:?}");
        assert!((10.0..=60.0).contains(fps), "{till:?}");
    }
    let (first, last) = (&till[0], &till[till.len() - 1]);
    let rate = (last.1 - first.1) as f64 / (last.0 - first.0);
    eprintln!(
        "till while door failed: {rate:.1} fps over {:.1} s",
        last.0 - first.0
    );
    assert!(
        (22.0..=36.0).contains(&rate),
        "till's rate moved while door failed: {rate:.1} fps; {till:?}"
    );
    let last = healths.last().unwrap();
    let cams = health_cameras(last);
    let d = cam(&cams, "door").unwrap();
    eprintln!("door in the last health message: {d}");
    assert!(
        d["lost"].as_u64().unwrap() >= 1,
        "the driver's sequence gaps are counted: {d}"
    );
    assert!(
        d["skipped"].as_u64().unwrap() >= 1,
        "the ERROR-flagged buffer was skipped: {d}"
    );
    assert!(d["last_error"].as_str().unwrap().contains("stalled"), "{d}");
    daemon.signal("TERM");
    assert!(daemon.wait(Duration::from_secs(20)).success());
}

#[test]
fn twenty_reconnect_cycles_leak_no_fd_mapping_or_thread() {
    if !available("mosquitto", mosquitto_path().is_some()) {
        return;
    }
    let mut rig = Rig::new();
    let cycles = 20;
    let flaky = rig.node(
        "Flaky Cam",
        &[("YUYV", 640, 480, 30)],
        &[("unplug_after", 8), ("down_ms", 100), ("cycles", cycles)],
    );
    let steady = rig.node("Steady Cam", &[("MJPG", 640, 480, 30)], &[]);
    let broker = Mosquitto::start(free_port());
    let dir = tempfile::tempdir().unwrap();
    let cameras = camera(
        "flaky",
        &flaky,
        "\"yuyv\"",
        640,
        480,
        "backoff_min_ms = 50\nbackoff_max_ms = 200",
    ) + &camera("steady", &steady, "\"mjpeg\"", 640, 480, "");
    let cfg = config(dir.path(), broker.port, "it-v4l2-leak", &cameras);
    let sub = Collector::start(broker.port, "stylecam/it-v4l2-leak/#", "it-v4l2-leak-sub");
    let mut daemon = rig.daemon(&cfg);
    let pid = daemon.child.id();
    let maps = || {
        std::fs::read_to_string(format!("/proc/{pid}/maps"))
            .unwrap()
            .matches("fake-v4l2")
            .count()
    };

    sub.wait_for("events from both cameras", Duration::from_secs(60), |all| {
        styles_of(all, "flaky") >= 1 && styles_of(all, "steady") >= 1
    });
    // Measured while both stream, after the first unplug cycle.
    wait_until("the first replug", Duration::from_secs(20), || {
        rig.count("replug") >= 1
    });
    wait_until("streaming after it", Duration::from_secs(20), || {
        rig.count("streamon") >= 3
    });
    let (fds0, threads0) = resources(pid);
    let maps0 = maps();
    wait_until("20 unplug cycles", Duration::from_secs(120), || {
        rig.count("unplug") >= cycles as usize
    });
    // The last cycle's replug and restart, then frames again.
    let streamons = rig.count("streamon");
    wait_until(
        "streaming after the last cycle",
        Duration::from_secs(20),
        || rig.count("replug") >= cycles as usize && rig.count("streamon") > streamons,
    );
    std::thread::sleep(Duration::from_millis(500));
    let (fds1, threads1) = resources(pid);
    let maps1 = maps();
    eprintln!("after {cycles} reconnect cycles: fds {fds0} -> {fds1}, threads {threads0} -> {threads1}, buffer mappings {maps0} -> {maps1}");
    assert_eq!(fds1, fds0, "open fds");
    assert_eq!(threads1, threads0, "threads");
    assert_eq!(maps1, maps0, "mapped buffers");
    assert!(
        maps0 >= 4,
        "the buffers of both cameras are mapped: {maps0}"
    );
    // Health goes out every second: one soon counts every reconnect (the
    // message just before the last replug may not, on a loaded machine).
    let flaky_reconnects = |r: &Received| {
        cam(&health_cameras(r), "flaky").map_or(0, |f| f["reconnects"].as_u64().unwrap_or(0))
    };
    sub.wait_for(
        "a health message counting every reconnect",
        Duration::from_secs(20),
        |all| {
            kind(all, "health")
                .into_iter()
                .any(|h| flaky_reconnects(h) >= cycles as u64)
        },
    );
    daemon.signal("TERM");
    assert!(daemon.wait(Duration::from_secs(20)).success());
}

#[test]
fn a_busy_or_absent_camera_is_retried_until_it_can_be_used() {
    if !available("mosquitto", mosquitto_path().is_some()) {
        return;
    }
    let mut rig = Rig::new();
    let busy = rig.node("Busy Cam", &[("NV12", 640, 480, 30)], &[("busy_opens", 3)]);
    let broker = Mosquitto::start(free_port());
    let dir = tempfile::tempdir().unwrap();
    let absent = rig.dev().join("video9");
    let cameras = camera("busy", &busy, "\"nv12\"", 640, 480, "backoff_min_ms = 100")
        + &camera(
            "absent",
            &absent,
            "\"yuyv\"",
            640,
            480,
            "backoff_min_ms = 100\nbackoff_max_ms = 400",
        );
    let cfg = config(dir.path(), broker.port, "it-v4l2-busy", &cameras);
    let sub = Collector::start(broker.port, "stylecam/it-v4l2-busy/#", "it-v4l2-busy-sub");
    let mut daemon = rig.daemon(&cfg);
    let all = sub.wait_for(
        "events from the busy camera once it is free",
        Duration::from_secs(60),
        |all| {
            styles_of(all, "busy") >= 2
                && kind(all, "health").last().is_some_and(|h| {
                    cam(&health_cameras(h), "absent")
                        .is_some_and(|c| c["connect_failures"].as_u64() >= Some(3))
                })
        },
    );
    let log = daemon.log_text();
    assert!(
        log.contains("busy: another program is streaming from the camera"),
        "{log}"
    );
    assert!(log.contains("not there (unplugged?)"), "{log}");
    let h = kind(&all, "health").last().copied().cloned().unwrap();
    let a = cam(&health_cameras(&h), "absent").unwrap().clone();
    assert_eq!(a["state"], "reconnecting", "{a}");
    assert_eq!(
        (a["captured"].as_u64(), a["reconnects"].as_u64()),
        (Some(0), Some(0)),
        "{a}"
    );
    let b = cam(&health_cameras(&h), "busy").unwrap().clone();
    assert!(
        b["connect_failures"].as_u64() >= Some(1) && b["state"] == "streaming",
        "{b}"
    );
    daemon.signal("TERM");
    assert!(daemon.wait(Duration::from_secs(20)).success());
}

/// Runs `body` in a copy of this test binary with the fake camera
/// preloaded (the test process itself cannot preload it).
fn in_preloaded_child(test: &str, rig: &Rig, body: impl FnOnce()) {
    if std::env::var_os("FAKE_V4L2_CHILD").is_some() {
        body();
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads", "1"])
        .envs(rig.env())
        .env("FAKE_V4L2_CHILD", "1")
        .env("FAKE_V4L2_DEV", rig.dev())
        .output()
        .unwrap();
    let text = output_text(&out);
    assert!(
        out.status.success() && text.contains("1 passed"),
        "child failed:\n{text}"
    );
    eprintln!("{text}");
}

#[test]
fn driver_timestamps_and_sequence_reach_the_frame() {
    use stylecam::capture::v4l2::{monotonic_now, V4l2Source};
    use stylecam::capture::{CaptureError, FrameSource, PixelFormat};
    let mut rig = Rig::new();
    // Set up the same rig in parent and child (the child reads the config
    // the parent wrote: same node paths under FAKE_V4L2_DEV).
    let dev = match std::env::var_os("FAKE_V4L2_DEV") {
        Some(d) => PathBuf::from(d).join("v4l/by-id/usb-Fake_Seq_Cam-video-index0"),
        None => rig.node(
            "Seq Cam",
            &[("YUYV", 320, 240, 30)],
            &[("drop_every", 5), ("error_at", 12)],
        ),
    };
    in_preloaded_child(
        "v4l2::driver_timestamps_and_sequence_reach_the_frame",
        &rig,
        || {
            let mut cfg =
                match stylecam::config::CameraConfig::v4l2("seq", dev.to_str().unwrap()).source {
                    stylecam::config::SourceConfig::V4l2(v) => v,
                    _ => unreachable!(),
                };
            cfg.width = 320;
            cfg.height = 240;
            let mut source = V4l2Source::new("seq", 30.0, &cfg);
            let mut frames = vec![];
            let mut skipped = 0;
            while frames.len() < 20 {
                match source.next_frame() {
                    Ok(Some(f)) => frames.push(f),
                    Err(CaptureError::Skipped { reason, .. }) => {
                        assert!(reason.contains("V4L2_BUF_FLAG_ERROR"), "{reason}");
                        skipped += 1;
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
            assert_eq!(skipped, 1, "the ERROR-flagged buffer is skipped");
            let now = monotonic_now();
            for (i, f) in frames.iter().enumerate() {
                assert_eq!(
                    (f.format, f.width, f.height, f.stride, f.data.len()),
                    (PixelFormat::Yuyv, 320, 240, 640, 320 * 240 * 2)
                );
                assert_eq!(f.seq, i as u64, "our own count has no gaps");
                let ts = f.driver_timestamp.expect("driver timestamp");
                assert!(
                    now - ts < Duration::from_secs(5),
                    "a CLOCK_MONOTONIC timestamp"
                );
                let age = std::time::SystemTime::now()
                    .duration_since(f.captured_at)
                    .unwrap();
                assert!(
                    age < Duration::from_secs(5),
                    "wall-clock time from the driver's timestamp"
                );
            }
            let seqs: Vec<u32> = frames.iter().map(|f| f.driver_sequence.unwrap()).collect();
            let lost: Vec<u32> = frames.iter().map(|f| f.lost_before).collect();
            eprintln!("driver sequence {seqs:?}, lost before each {lost:?}");
            for w in frames.windows(2) {
                let (a, b) = (&w[0], &w[1]);
                assert!(b.driver_timestamp > a.driver_timestamp);
                let dt = b.driver_timestamp.unwrap() - a.driver_timestamp.unwrap();
                assert!(
                    dt >= Duration::from_millis(25) * (1 + b.lost_before),
                    "timestamps follow the 30 fps clock: {dt:?}"
                );
            }
            let gaps: u32 = seqs.windows(2).map(|w| w[1] - w[0] - 1).sum();
            assert_eq!(
                gaps,
                lost.iter().sum::<u32>() + skipped,
                "every gap is a lost frame or the skipped one"
            );
            // The fake skips every 5th sequence number, and frame 12's buffer
            // was flagged: at least 3 gaps in 20 frames.
            assert!(lost.iter().filter(|&&l| l > 0).count() >= 3, "{lost:?}");
        },
    );
}

/// One HTTP GET to the daemon: (status code, body).
#[test]
fn metrics_parse_and_healthz_follows_a_lost_camera() {
    if !available("mosquitto", mosquitto_path().is_some())
        || !available("Python prometheus_client", python_has("prometheus_client"))
    {
        return;
    }
    let mut rig = Rig::new();
    // Unplugged after 90 frames (3 s) for 4 s: longer than the 1 s grace.
    let door = rig.node(
        "Door Cam",
        &[("MJPG", 640, 480, 30)],
        &[("unplug_after", 90), ("down_ms", 4000), ("cycles", 1)],
    );
    let till = rig.node("Till Cam", &[("NV12", 640, 480, 30)], &[]);
    let broker = Mosquitto::start(free_port());
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cameras = camera(
        "door",
        &door,
        "\"mjpeg\"",
        640,
        480,
        "backoff_min_ms = 100\nbackoff_max_ms = 400",
    ) + &camera("till", &till, "\"nv12\"", 640, 480, "");
    let cfg = config(dir.path(), broker.port, "it-metrics", &cameras);
    let text = std::fs::read_to_string(&cfg).unwrap()
        + &format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\ncamera_grace_s = 1\n");
    std::fs::write(&cfg, text).unwrap();
    let sub = Collector::start(broker.port, "stylecam/it-metrics/#", "it-metrics-sub");
    let daemon = rig.daemon(&cfg);
    sub.wait_for("events from both cameras", Duration::from_secs(60), |all| {
        styles_of(all, "door") >= 1 && styles_of(all, "till") >= 1
    });
    std::thread::sleep(Duration::from_secs(1)); // ~30 frames each
    let (code, body) = http_get(port, "/healthz").expect("healthz answers");
    assert_eq!(
        (code, body.trim()),
        (200, "{\"status\":\"ok\"}"),
        "while both stream"
    );

    // Scrape and parse with the Python client's OpenMetrics parser.
    let (code, metrics) = http_get(port, "/metrics").unwrap();
    assert_eq!(code, 200);
    let mut py = Command::new("python3")
        .arg(repo().join("tests/ref/parse_metrics.py"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        py.stdin
            .take()
            .unwrap()
            .write_all(metrics.as_bytes())
            .unwrap();
    }
    let out = py.wait_with_output().unwrap();
    assert!(out.status.success(), "the parser rejected:\n{metrics}");
    let families: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for name in [
        "stylecam_build",
        "stylecam_model",
        "stylecam_camera_frames",
        "stylecam_camera_fps",
        "stylecam_camera_state",
        "stylecam_camera_reconnects",
        "stylecam_camera_connect_failures",
        "stylecam_queue_depth",
        "stylecam_frames_inferred",
        "stylecam_inference_seconds",
        "stylecam_inference_batch_size",
        "stylecam_events",
        "stylecam_mqtt_acked",
        "stylecam_outbox_pending",
        "stylecam_outbox_dropped",
        "stylecam_mqtt_connected",
        "stylecam_mqtt_connection_errors",
    ] {
        assert!(
            families.get(name).is_some(),
            "{name} missing from\n{metrics}"
        );
    }
    let samples = |family: &str| families[family].as_array().unwrap().clone();
    let of = |family: &str, camera: &str, key: &str, val: &str| {
        samples(family)
            .iter()
            .find(|s| s[0]["camera"] == camera && (key.is_empty() || s[0][key] == val))
            .map(|s| s[1].as_f64().unwrap())
    };
    for cam in ["door", "till"] {
        assert!(
            of("stylecam_camera_frames", cam, "outcome", "captured") > Some(10.0),
            "{cam}"
        );
        assert_eq!(
            of("stylecam_camera_state", cam, "state", "streaming"),
            Some(1.0)
        );
        assert!(of("stylecam_camera_fps", cam, "", "") > Some(5.0));
        assert!(
            of("stylecam_queue_depth", cam, "", "").is_some_and(|d| d <= 2.0),
            "{cam}: at most pipeline.queue_depth"
        );
    }
    assert_eq!(samples("stylecam_mqtt_connected")[0][1], 1.0);
    assert!(samples("stylecam_inference_seconds")
        .iter()
        .any(|s| s[2] == "stylecam_inference_seconds_count" && s[1].as_f64() > Some(0.0)));
    let model = &samples("stylecam_model")[0][0];
    assert_eq!(model["backend"], "cpu", "{model}");

    // door goes away for 4 s: after the 1 s grace /healthz says why.
    wait_until("the unplug", Duration::from_secs(30), || {
        rig.count("unplug") >= 1
    });
    let mut unhealthy = None;
    wait_until("/healthz 503", Duration::from_secs(10), || {
        unhealthy = http_get(port, "/healthz").filter(|(c, _)| *c == 503);
        unhealthy.is_some()
    });
    let (_, body) = unhealthy.unwrap();
    let reasons: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(reasons["status"], "unhealthy");
    let why = reasons["reasons"][0].as_str().unwrap();
    assert!(
        why.contains("camera door has been reconnecting") && why.contains("camera_grace_s"),
        "{body}"
    );
    let (_, m) = http_get(port, "/metrics").unwrap();
    assert!(
        m.contains("stylecam_camera_state{camera=\"door\",state=\"reconnecting\"} 1"),
        "{m}"
    );
    // Back when it returns.
    wait_until("/healthz 200 again", Duration::from_secs(20), || {
        http_get(port, "/healthz").is_some_and(|(c, _)| c == 200)
    });
    assert!(rig.count("replug") >= 1);
    let (_, m) = http_get(port, "/metrics").unwrap();
    assert!(
        m.contains("stylecam_camera_reconnects_total{camera=\"door\"} 1"),
        "{m}"
    );
    drop(daemon);
}
