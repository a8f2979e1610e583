//! The Debian package under a real systemd: a minimal Debian 12 (made by
//! debootstrap in `.ci/run`, kept in /var/cache/stylecam-tests) boots with
//! systemd as PID 1 in systemd-nspawn; the test installs the `.deb` with
//! apt inside and drives the service as an operator would: READY and
//! STATUS in `systemctl show`, /healthz and events acknowledged by the
//! packaged embedded broker, `systemctl reload` (good and bad config) with
//! the same PID and MQTT session, a frozen daemon killed by the watchdog
//! and restarted, a V4L2 camera (the fake camera, LD_PRELOADed by a
//! drop-in, unplugged once) on the onnxruntime backend with a reload, no
//! sandbox denial in the journal, journal priorities,
//! the engine oneshot, the retained `offline` after `systemctl stop`, and
//! purge removing the state.
//!
//! The container shares this machine's network (so ports are free ones,
//! set by a drop-in) and is entered with nsenter: the host's PID 1 is not
//! systemd, so machinectl and `systemd-run -M` do not work here. Both the
//! pure cgroup v2 hierarchy and `--system-call-filter=bpf` are needed, or
//! `DevicePolicy=` is silently not enforced. Resource limits (`MemoryMax=`)
//! are not enforced in such a container.

use crate::common::*;
use crate::package::{build_deb, is_root};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The pristine root filesystem (`.ci/run` makes it with debootstrap).
fn rootfs_cache() -> PathBuf {
    std::env::var_os("STYLECAM_TEST_ROOTFS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/stylecam-tests/bookworm-minbase"))
}

/// A booted container: systemd-nspawn and the container's PID 1 (as this
/// machine numbers it).
struct Container {
    nspawn: Child,
    init: u32,
    _root: tempfile::TempDir,
    /// The container's root filesystem, seen from here.
    rootfs: PathBuf,
    log: PathBuf,
}

fn children(pid: u32) -> Vec<u32> {
    let mut out = vec![];
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for t in tasks.flatten() {
        if let Ok(c) = std::fs::read_to_string(t.path().join("children")) {
            out.extend(c.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
        }
    }
    out
}

/// Removes the empty cgroup folders nspawn leaves where the host's PID 1
/// is not systemd (deepest first).
fn remove_leftover_cgroups() {
    for top in ["/sys/fs/cgroup/unified", "/sys/fs/cgroup/systemd"] {
        for name in ["payload", "supervisor"] {
            let dir = Path::new(top).join(name);
            if dir.is_dir() {
                let _ = Command::new("find")
                    .arg(&dir)
                    .args(["-depth", "-type", "d", "-exec", "rmdir", "{}", ";"])
                    .status();
            }
        }
    }
}

impl Container {
    fn boot(cache: &Path, debs: &Path) -> Self {
        remove_leftover_cgroups();
        let root = tempfile::tempdir().unwrap();
        let rootfs = root.path().join("rootfs");
        let t = Instant::now();
        let cp = Command::new("cp")
            .arg("-a")
            .arg(cache)
            .arg(&rootfs)
            .status()
            .unwrap();
        assert!(cp.success(), "copying {}", cache.display());
        eprintln!(
            "nspawn: root filesystem copied in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        let log = root.path().join("console.log");
        let t = Instant::now();
        let nspawn = Command::new("systemd-nspawn")
            .env("SYSTEMD_NSPAWN_UNIFIED_HIERARCHY", "1")
            .arg("-D")
            .arg(&rootfs)
            .args([
                "-b",
                "--register=no",
                "--keep-unit",
                "--console=read-only",
                "--system-call-filter=bpf",
            ])
            .arg(format!("--bind-ro={}:/debs", debs.display()))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::from(
                std::fs::File::create(root.path().join("nspawn.err")).unwrap(),
            ))
            .spawn()
            .unwrap();
        let mut c = Self {
            init: 0,
            nspawn,
            _root: root,
            rootfs,
            log,
        };
        while c.init == 0 {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "nspawn started no PID 1"
            );
            c.init = children(c.nspawn.id()).into_iter().next().unwrap_or(0);
            std::thread::sleep(Duration::from_millis(50));
        }
        loop {
            let state = c.sh("systemctl is-system-running");
            let state = String::from_utf8_lossy(&state.stdout).trim().to_string();
            if state == "running" || state == "degraded" {
                eprintln!(
                    "nspawn: systemd {state} after {:.1} s",
                    t.elapsed().as_secs_f64()
                );
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "the container did not boot ({state}):\n{}",
                std::fs::read_to_string(&c.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        c
    }

    /// Runs `script` with /bin/sh inside the container (all its namespaces).
    fn sh(&self, script: &str) -> Output {
        Command::new("nsenter")
            .args([
                "-t",
                &self.init.to_string(),
                "-m",
                "-u",
                "-i",
                "-n",
                "-p",
                "-C",
                "--",
            ])
            .args([
                "/usr/bin/env",
                "-i",
                "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
                "LANG=C.UTF-8",
            ])
            .args(["/bin/sh", "-c", script])
            .output()
            .unwrap()
    }

    /// `sh`, which must succeed; its standard output.
    fn ok(&self, script: &str) -> String {
        let out = self.sh(script);
        assert!(
            out.status.success(),
            "`{script}` in the container: {}",
            output_text(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `systemctl show UNIT -p KEY`'s value.
    fn show(&self, unit: &str, key: &str) -> String {
        self.ok(&format!("systemctl show {unit} -p {key} --value"))
            .trim()
            .to_string()
    }

    fn journal(&self, args: &str) -> String {
        self.ok(&format!("journalctl --no-pager -o cat {args}"))
    }

    /// Waits until stylecam.service is active with a `serving` status; its PID.
    fn wait_serving(&self, timeout: Duration) -> u32 {
        let t = Instant::now();
        loop {
            let active = self.show("stylecam", "ActiveState");
            let status = self.show("stylecam", "StatusText");
            if active == "active" && status.starts_with("serving") {
                return self.show("stylecam", "MainPID").parse().unwrap();
            }
            assert!(
                t.elapsed() < timeout,
                "stylecam.service is {active} ({status:?}):\n{}",
                self.journal("-u stylecam -u stylecam-engine")
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = self.sh("systemctl poweroff");
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(_)) = self.nspawn.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.nspawn.kill();
        let _ = self.nspawn.wait();
        remove_leftover_cgroups();
    }
}

fn online_count(sub: &Collector) -> usize {
    sub.all()
        .iter()
        .filter(|r| r.json["kind"] == "status" && r.json["state"] == "online")
        .count()
}

fn styles(sub: &Collector) -> usize {
    sub.all()
        .iter()
        .filter(|r| r.json["kind"] == "styles")
        .count()
}

#[test]
fn the_package_under_a_real_systemd() {
    let tools = Command::new("systemd-nspawn")
        .arg("--version")
        .output()
        .is_ok()
        && Command::new("nsenter").arg("--version").output().is_ok();
    let cache = rootfs_cache();
    if !available(
        "root, systemd-nspawn, nsenter and a debootstrapped Debian 12 (.ci/run makes it)",
        is_root() && tools && cache.join("usr/lib/systemd/systemd").exists(),
    ) {
        return;
    }
    if !available("mosquitto", mosquitto_path().is_some()) {
        return;
    }
    let t0 = Instant::now();
    let debs = tempfile::tempdir().unwrap();
    let Some(deb) = build_deb(debs.path()) else {
        return;
    };
    let deb_name = deb.file_name().unwrap().to_str().unwrap().to_string();
    let c = Container::boot(&cache, debs.path());
    let booted = t0.elapsed();

    // Free ports on this machine's network (shared with the container),
    // a short watchdog, before the package starts the service.
    let (mqtt, http) = (free_port(), free_port());
    c.ok(&format!(
        "mkdir -p /etc/systemd/system/stylecam.service.d && cat > /etc/systemd/system/stylecam.service.d/test.conf <<EOF
[Service]
WatchdogSec=6
RestartSec=1
Environment=STYLECAM_DEVICE=it-nspawn STYLECAM_MQTT__PORT={mqtt} STYLECAM_METRICS__LISTEN=127.0.0.1:{http}
EOF"
    ));
    let t = Instant::now();
    c.ok(&format!(
        "DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends /debs/{deb_name} 2>&1"
    ));
    let installed = t.elapsed();
    let pid = c.wait_serving(Duration::from_secs(60));
    let ready = t.elapsed();
    eprintln!(
        "installed in {:.1} s, READY and serving {:.1} s after the install began (PID {pid})",
        installed.as_secs_f64(),
        ready.as_secs_f64()
    );
    let status = c.show("stylecam", "StatusText");
    assert!(
        status.contains("stylecam-demo"),
        "STATUS= names the model: {status}"
    );

    // /healthz and events acknowledged by the packaged embedded broker.
    let sub = Collector::start(mqtt, "stylecam/it-nspawn/#", "it-sub-nspawn");
    sub.wait_for(
        "events through the embedded broker",
        Duration::from_secs(60),
        |all| all.iter().filter(|r| r.json["kind"] == "styles").count() >= 2,
    );
    let health = http_get(http, "/healthz");
    assert_eq!(health.as_ref().map(|h| h.0), Some(200), "{health:?}");
    let metrics = http_get(http, "/metrics").unwrap().1;
    let acked = metrics
        .lines()
        .find_map(|l| l.strip_prefix("stylecam_mqtt_acked_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(acked > 0.0, "events acknowledged: {acked}");

    // systemctl reload: same PID, same MQTT session (no second `online`).
    let onlines = online_count(&sub);
    let t = Instant::now();
    c.ok("systemctl reload stylecam");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        c.show("stylecam", "MainPID"),
        pid.to_string(),
        "reload keeps the PID"
    );
    assert_eq!(c.show("stylecam", "ActiveState"), "active");
    assert_eq!(online_count(&sub), onlines, "reload keeps the MQTT session");
    let before = styles(&sub);
    sub.wait_for("events after the reload", Duration::from_secs(30), |all| {
        all.iter().filter(|r| r.json["kind"] == "styles").count() > before
    });
    let reloaded = t.elapsed();
    // A config that does not validate: the reload fails, the daemon goes on.
    c.ok("cp /etc/stylecam/stylecam.toml /root/good.toml && sed -i 's/^queue_depth = .*/queue_depth = 0/' /etc/stylecam/stylecam.toml");
    c.ok("systemctl reload stylecam");
    std::thread::sleep(Duration::from_secs(2));
    c.ok("cp /root/good.toml /etc/stylecam/stylecam.toml");
    assert_eq!(c.show("stylecam", "MainPID"), pid.to_string());
    assert_eq!(c.show("stylecam", "ActiveState"), "active");

    // A frozen daemon: the watchdog kills it and systemd starts it again.
    let t = Instant::now();
    c.ok(&format!("kill -STOP {pid}"));
    let new_pid = loop {
        let now: u32 = c.show("stylecam", "MainPID").parse().unwrap_or(0);
        if now != 0 && now != pid && c.show("stylecam", "ActiveState") == "active" {
            break now;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "no watchdog restart:\n{}",
            c.journal("-u stylecam")
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let restarted = t.elapsed();
    c.wait_serving(Duration::from_secs(60));
    let journal = c.journal("-u stylecam");
    assert!(journal.contains("Watchdog timeout"), "{journal}");
    assert!(c.show("stylecam", "NRestarts").parse::<u32>().unwrap() >= 1);
    eprintln!(
        "frozen PID {pid}: killed by the watchdog and restarted as {new_pid} in {:.1} s",
        restarted.as_secs_f64()
    );

    // The engine oneshot ran and succeeded (nothing to build: no TensorRT).
    assert_eq!(c.show("stylecam-engine", "Result"), "success");
    let engine = c.journal("-u stylecam-engine");
    assert!(engine.contains("nothing to build"), "{engine}");

    // A V4L2 camera and the onnxruntime backend under the same sandbox: the
    // fake camera (LD_PRELOADed by a drop-in, answering for a node under
    // /opt, unplugged once) and the PyPI wheel's libonnxruntime, copied in;
    // a reload; events through the outbox. The denial scan below covers it.
    let ort = crate::backend_suite::ort_library().filter(|p| p.exists());
    if available(
        "onnxruntime (the PyPI wheel, or ORT_DYLIB_PATH)",
        ort.is_some(),
    ) {
        let ort = ort.unwrap();
        let opt = c.rootfs.join("opt/stylecam-test");
        std::fs::create_dir_all(&opt).unwrap();
        std::fs::copy(crate::v4l2::fake_lib(), opt.join("libfake_v4l2.so")).unwrap();
        let ort_name = ort.file_name().unwrap().to_str().unwrap().to_string();
        std::fs::copy(&ort, opt.join(&ort_name)).unwrap();
        std::fs::write(opt.join("video0"), b"").unwrap();
        let mut files = vec![];
        for name in ["coffee", "chelsea"] {
            let photo = image::open(repo().join(format!("tests/data/photos/{name}.jpg")))
                .unwrap()
                .into_rgb8();
            let scene = stylecam::capture::encode::scene(&photo, 640, 480);
            std::fs::write(
                opt.join(format!("{name}.yuyv")),
                stylecam::capture::encode::rgb_to_yuyv(scene.as_raw(), 640, 480),
            )
            .unwrap();
            files.push(format!("/opt/stylecam-test/{name}.yuyv"));
        }
        std::fs::write(
            opt.join("fake.conf"),
            format!(
                "node /opt/stylecam-test/video0\ncard Door Cam\nbus usb-0000:00:14.0-1\nformat YUYV 640 480 10 {}\nfault unplug_after 40\nfault down_ms 1000\nfault cycles 1\n",
                files.join(" ")
            ),
        )
        .unwrap();
        c.ok(&format!(
            "cat >> /etc/stylecam/stylecam.toml <<EOF
[[cameras]]
name = \"door\"
source = \"v4l2\"
device = \"/opt/stylecam-test/video0\"
formats = [\"yuyv\"]
width = 640
height = 480
fps = 10.0
backoff_min_ms = 200
EOF
cat > /etc/systemd/system/stylecam.service.d/camera.conf <<EOF
[Service]
Environment=LD_PRELOAD=/opt/stylecam-test/libfake_v4l2.so FAKE_V4L2_CONFIG=/opt/stylecam-test/fake.conf
Environment=STYLECAM_MODEL__BACKEND=onnxruntime STYLECAM_MODEL__ONNXRUNTIME_LIBRARY=/opt/stylecam-test/{ort_name}
EOF
systemctl daemon-reload && systemctl restart stylecam"
        ));
        c.wait_serving(Duration::from_secs(60));
        let status = c.show("stylecam", "StatusText");
        assert!(
            status.contains("onnxruntime"),
            "STATUS= names the backend: {status}"
        );
        let door = |all: &[Received]| {
            all.iter()
                .filter(|r| r.json["kind"] == "styles" && r.json["camera"] == "door")
                .count()
        };
        // Frames the V4L2 camera delivered, and its reconnects (/metrics).
        let counter = |name: &str| -> u64 {
            let metrics = http_get(http, "/metrics").map(|m| m.1).unwrap_or_default();
            metrics
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .unwrap_or(0.0) as u64
        };
        let captured =
            || counter("stylecam_camera_frames_total{camera=\"door\",outcome=\"captured\"} ");
        let cam = Collector::start(mqtt, "stylecam/it-nspawn/#", "it-sub-nspawn-door");
        cam.wait_for(
            "a tag event from the V4L2 camera, on onnxruntime",
            Duration::from_secs(60),
            |all| door(all) >= 1,
        );
        // Unplugged after 40 frames, back 1 s later: it streams again.
        let t = Instant::now();
        while counter("stylecam_camera_reconnects_total{camera=\"door\"} ") < 1 {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "no reconnect of the unplugged camera:\n{}",
                c.journal("-u stylecam")
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        let streams_on = |what: &str| {
            let from = captured();
            let t = Instant::now();
            while captured() < from + 10 {
                assert!(
                    t.elapsed() < Duration::from_secs(30),
                    "the V4L2 camera delivers no frames {what}:\n{}",
                    c.journal("-u stylecam")
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        };
        streams_on("after the replug");
        let journal = c.journal("-u stylecam");
        assert!(
            journal.contains("camera door") && journal.contains("unplugged"),
            "the daemon said the camera was unplugged:\n{journal}"
        );
        c.ok("systemctl reload stylecam");
        streams_on("after a reload");
        eprintln!(
            "V4L2 camera (fake, LD_PRELOAD) and onnxruntime ({ort_name}) under the sandbox: {} events from it, a reload",
            door(&cam.all())
        );
    }

    // Journal priorities: our error (the bad reload) at -p warning, our
    // info lines not.
    let warnings = c.journal("-u stylecam -p warning");
    assert!(
        warnings.contains("queue_depth"),
        "the failed reload at warning or worse:\n{warnings}"
    );
    assert!(
        !warnings.contains("mqtt: connected"),
        "info lines stay out of -p warning:\n{warnings}"
    );
    assert!(c.journal("-u stylecam -p info").contains("mqtt: connected"));

    // No sandbox denial anywhere in the units' journals. One line is the
    // container's, not the sandbox's: nspawn sharing this machine's
    // network drops CAP_NET_ADMIN, so systemd cannot bring up `lo` in the
    // engine oneshot's PrivateNetwork= namespace (it says "ignoring"; the
    // oneshot needs no network). On a real box it has the capability.
    let container_only = "Failed to configure loopback network device, ignoring";
    let all = c.journal("-u stylecam -u stylecam-engine");
    for denial in [
        "operation not permitted",
        "permission denied",
        "seccomp",
        "eperm",
        "status=31/sys",
    ] {
        let hits: Vec<&str> = all
            .lines()
            .filter(|l| l.to_lowercase().contains(denial) && !l.contains(container_only))
            .collect();
        assert!(hits.is_empty(), "sandbox denial ({denial}): {hits:#?}");
    }

    // Against an outside broker: `systemctl stop` leaves the retained
    // `offline` (the embedded broker stops with the daemon).
    let broker = Mosquitto::start(free_port());
    c.ok(&format!(
        "cat >> /etc/systemd/system/stylecam.service.d/test.conf <<EOF
Environment=STYLECAM_MQTT__EMBEDDED=false STYLECAM_MQTT__PORT={}
EOF
systemctl daemon-reload && systemctl restart stylecam",
        broker.port
    ));
    c.wait_serving(Duration::from_secs(60));
    let t = Instant::now();
    c.ok("systemctl stop stylecam");
    let stopped = t.elapsed();
    let late = Collector::start(broker.port, "stylecam/it-nspawn/status", "it-sub-late");
    late.wait_for("the retained offline", Duration::from_secs(10), |all| {
        all.iter().any(|r| r.retain && r.json["state"] == "offline")
    });

    // Purge removes the state.
    assert!(c
        .sh("test -f /var/lib/stylecam/outbox.redb")
        .status
        .success());
    c.ok("DEBIAN_FRONTEND=noninteractive apt-get purge -y stylecam 2>&1");
    assert!(
        !c.sh("test -e /var/lib/stylecam").status.success(),
        "purge removes /var/lib/stylecam"
    );
    eprintln!(
        "systemd-nspawn: booted {:.1} s after the start (package built), reload {:.1} s, watchdog restart {:.1} s, stop {:.1} s, whole test {:.1} s",
        booted.as_secs_f64(),
        reloaded.as_secs_f64(),
        restarted.as_secs_f64(),
        stopped.as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );
}
