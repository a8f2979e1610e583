//! The Debian package (`cargo deb`, metadata in Cargo.toml): the packaged
//! config, the engine oneshot's command, and the package itself, built from
//! the binary under test, inspected, installed with `dpkg -i`, run as its
//! user with its config, and purged.

use crate::common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The installed config is the built-in default with installed paths, and
/// nothing else: a new key in the default cannot be forgotten in the package.
#[test]
fn the_packaged_config_is_the_default_with_installed_paths() {
    let packaged = std::fs::read_to_string(repo().join("packaging/stylecam.toml")).unwrap();
    let mut expected = stylecam::config::DEFAULT_TOML.to_string();
    for (from, to) in [
        (
            "bundle = \"assets/demo-bundle\"",
            "bundle = \"/usr/share/stylecam/demo-bundle\"",
        ),
        (
            "path = \"assets/photos\"",
            "path = \"/usr/share/stylecam/photos\"",
        ),
        (
            "path = \"stylecam-outbox.redb\"",
            "path = \"/var/lib/stylecam/outbox.redb\"",
        ),
        (
            "dir = \"stylecam-collect\"",
            "dir = \"/var/lib/stylecam/collect\"",
        ),
        (
            "dir = \"stylecam-teach\"",
            "dir = \"/var/lib/stylecam/teach\"",
        ),
    ] {
        assert_eq!(expected.matches(from).count(), 1, "{from} in default.toml");
        expected = expected.replace(from, to);
    }
    let body = packaged
        .find("# stylecam configuration.")
        .map(|i| &packaged[i..])
        .expect("packaged config: header, then the default");
    assert_eq!(
        body, expected,
        "packaging/stylecam.toml must be src/config/default.toml with the installed paths"
    );
}

/// What stylecam-engine.service runs before the daemon: harmless (exit 0,
/// says why) where no engine is needed or TensorRT is absent; an error that
/// names the key where the config insists on TensorRT and it cannot run.
#[test]
fn build_engine_is_a_no_op_without_tensorrt_and_names_the_key_when_required() {
    let out = stylecam().arg("build-engine").output().unwrap();
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("model.backend") && text.contains("nothing to build"),
        "{text}"
    );

    let out = stylecam()
        .arg("build-engine")
        .env("STYLECAM_MODEL__BACKEND", "cpu")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(output_text(&out).contains("\"cpu\""));

    if cfg!(feature = "tensorrt") {
        return; // the TensorRT issue's tests cover a build with it
    }
    let out = stylecam()
        .arg("build-engine")
        .env("STYLECAM_MODEL__BACKEND", "tensorrt")
        .output()
        .unwrap();
    let text = output_text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("`model.backend` = \"tensorrt\"") && text.contains("tensorrt"),
        "{text}"
    );
}

pub fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(repo()).env("CARGO_NET_OFFLINE", "true");
    c
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Purges the package when the test ends, also when it fails half-way.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = Command::new("dpkg").args(["--purge", "stylecam"]).output();
    }
}

/// `cargo deb` packages the binary under test (the debug build, `--no-build`;
/// a release package is `cargo deb`); `dpkg -i` installs it on this machine;
/// the packaged config passes check-config; the service runs under systemd
/// where systemd is PID 1, else the packaged binary runs as the packaged
/// user with the packaged config and serves (events acknowledged by its
/// embedded broker, /healthz 200); `dpkg --purge` removes it.
/// `cargo deb` packages the binary under test (the debug build,
/// `--no-build`; a release package is `cargo deb`) into `out`; `None`
/// (a skip, or a failure under REQUIRE_REFERENCE_CHECKS) without cargo-deb.
pub fn build_deb(out: &Path) -> Option<PathBuf> {
    let has_deb = cargo()
        .args(["deb", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !available(
        "cargo-deb (cargo install cargo-deb --version 3.8.0 --locked)",
        has_deb,
    ) {
        return None;
    }
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_stylecam"));
    let profile = bin.parent().unwrap().file_name().unwrap().to_str().unwrap();
    let built = cargo()
        .args([
            "deb",
            "--no-build",
            "--fast",
            "--profile",
            profile,
            "--output",
        ])
        .arg(out)
        .output()
        .unwrap();
    assert!(built.status.success(), "cargo deb: {}", output_text(&built));
    let deb = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .expect("a .deb");
    Some(deb)
}

/// `cargo deb` packages the binary under test; `dpkg -i` installs it on
/// this machine; the packaged config passes check-config; the service runs
/// under systemd where systemd is PID 1, else the packaged binary runs as
/// the packaged user with the packaged config and serves (events
/// acknowledged by its embedded broker, /healthz 200); `dpkg --purge`
/// removes it. (Under a real systemd: `systemd_nspawn`.)
#[test]
fn cargo_deb_builds_and_dpkg_installs_a_package_that_serves() {
    let out_dir = tempfile::tempdir().unwrap();
    let Some(deb) = build_deb(out_dir.path()) else {
        return;
    };

    // Contents and control files.
    let listing = dpkg_deb(&["-c"], &deb);
    for path in [
        "./usr/bin/stylecam",
        "./etc/stylecam/stylecam.toml",
        "./usr/lib/systemd/system/stylecam.service",
        "./usr/lib/systemd/system/stylecam-engine.service",
        "./usr/lib/tmpfiles.d/stylecam.conf",
        "./usr/share/stylecam/demo-bundle/bundle.toml",
        "./usr/share/stylecam/demo-bundle/model.onnx",
        "./usr/share/stylecam/photos/astronaut.jpg",
        "./usr/share/doc/stylecam/copyright",
    ] {
        assert!(
            listing.lines().any(|l| l.ends_with(path)),
            "{path} in the package:\n{listing}"
        );
    }
    let ctl = tempfile::tempdir().unwrap();
    let out = Command::new("dpkg-deb")
        .arg("-e")
        .arg(&deb)
        .arg(ctl.path().join("DEBIAN"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    let control = ctl.path().join("DEBIAN");
    let conffiles = std::fs::read_to_string(control.join("conffiles")).unwrap();
    assert_eq!(conffiles.trim(), "/etc/stylecam/stylecam.toml");
    let postinst = std::fs::read_to_string(control.join("postinst")).unwrap();
    assert!(postinst.contains("adduser --quiet --system --group"));
    assert!(postinst.contains("deb-systemd-helper enable stylecam.service"));
    assert!(postinst.contains("deb-systemd-helper enable stylecam-engine.service"));
    assert!(dpkg_deb(&["-f"], &deb).contains("Depends: adduser"));

    if !available("root, for dpkg -i", is_root()) {
        return;
    }
    let _purge = Installed;
    let out = Command::new("dpkg").arg("-i").arg(&deb).output().unwrap();
    assert!(out.status.success(), "dpkg -i: {}", output_text(&out));
    let passwd = Command::new("getent")
        .args(["passwd", "stylecam"])
        .output()
        .unwrap();
    assert!(passwd.status.success(), "postinst creates the user");
    let groups = Command::new("id")
        .args(["-nG", "stylecam"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&groups.stdout)
            .split_whitespace()
            .any(|g| g == "video"),
        "stylecam is in group video: {}",
        output_text(&groups)
    );
    let state = std::fs::metadata("/var/lib/stylecam").expect("/var/lib/stylecam");
    assert!(state.is_dir());

    // What the unit's ExecStartPre= runs, as the unit's user.
    let check = as_stylecam(&["check-config", "/etc/stylecam/stylecam.toml"])
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "packaged check-config: {}",
        output_text(&check)
    );
    let engine = as_stylecam(&["build-engine", "--config", "/etc/stylecam/stylecam.toml"])
        .output()
        .unwrap();
    assert!(
        engine.status.success(),
        "the engine oneshot's command: {}",
        output_text(&engine)
    );

    let metrics_port = free_port();
    if Path::new("/run/systemd/system").is_dir() {
        eprintln!("systemd runs this machine: starting stylecam.service");
        let out = Command::new("systemctl")
            .args(["restart", "stylecam"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", output_text(&out));
        // The packaged config's metrics address.
        assert_serves(9464, Duration::from_secs(60), || {
            let s = Command::new("systemctl")
                .args(["status", "--no-pager", "stylecam"])
                .output()
                .unwrap();
            output_text(&s)
        });
        return;
    }
    eprintln!(
        "systemd is not PID 1 here: running the packaged binary as the stylecam user with the packaged config"
    );
    let mqtt_port = free_port();
    let mut cmd = as_stylecam(&["run", "--config", "/etc/stylecam/stylecam.toml"]);
    cmd.current_dir("/var/lib/stylecam")
        .env("STYLECAM_MQTT__PORT", mqtt_port.to_string())
        .env(
            "STYLECAM_METRICS__LISTEN",
            format!("127.0.0.1:{metrics_port}"),
        );
    let mut daemon = Daemon::spawn(cmd);
    assert_serves(metrics_port, Duration::from_secs(60), || daemon.log_text());
    daemon.signal("TERM");
    let status = daemon.wait(Duration::from_secs(30));
    assert!(status.success(), "{status:?}\n{}", daemon.log_text());
    assert!(
        Path::new("/var/lib/stylecam/outbox.redb").is_file(),
        "the outbox is in the state folder"
    );
    drop(_purge);
    assert!(
        !Path::new("/var/lib/stylecam").exists(),
        "purge removes the state folder"
    );
}

fn dpkg_deb(args: &[&str], deb: &Path) -> String {
    let out = Command::new("dpkg-deb")
        .args(args)
        .arg(deb)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The installed binary run as the package's user, with its groups
/// (setpriv execs it: signals reach the daemon itself).
fn as_stylecam(args: &[&str]) -> Command {
    let mut c = Command::new("setpriv");
    c.args([
        "--reuid=stylecam",
        "--regid=stylecam",
        "--init-groups",
        "--",
        "/usr/bin/stylecam",
    ])
    .args(args);
    c
}

/// Waits until /healthz answers 200 and the embedded broker has
/// acknowledged events (`stylecam_mqtt_acked_total` > 0).
fn assert_serves(port: u16, timeout: Duration, log: impl Fn() -> String) {
    let t = Instant::now();
    let acked = |m: &str| {
        m.lines()
            .find_map(|l| l.strip_prefix("stylecam_mqtt_acked_total "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    loop {
        let health = http_get(port, "/healthz");
        let metrics = http_get(port, "/metrics")
            .map(|(_, m)| m)
            .unwrap_or_default();
        if health.as_ref().is_some_and(|(c, _)| *c == 200) && acked(&metrics) > 0.0 {
            eprintln!(
                "the installed service serves: /healthz 200, {} events acknowledged",
                acked(&metrics)
            );
            return;
        }
        assert!(
            t.elapsed() < timeout,
            "the installed service did not serve within {timeout:?}: healthz {health:?}\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}
