//! systemd `Type=notify` from the real binary over a real `NOTIFY_SOCKET`
//! datagram socket: READY=1 once (after the first broker connection
//! attempt; no broker here, so it is a refused one), STATUS= lines naming
//! the model and backend, WATCHDOG=1 about every half of WATCHDOG_USEC,
//! RELOADING=1 with MONOTONIC_USEC then READY=1 around a SIGHUP, and
//! STOPPING=1 at SIGTERM. (A stalled loop stopping the pings:
//! `daemon::notify`'s unit test.) Under journald (`JOURNAL_STREAM` naming
//! our stderr) log lines carry syslog priorities instead of timestamps.

use crate::common::*;
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

fn collect(sock: &UnixDatagram, got: &mut Vec<String>, for_: Duration) {
    let t = Instant::now();
    let mut buf = [0u8; 4096];
    while t.elapsed() < for_ {
        match sock.recv(&mut buf) {
            Ok(n) => got.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

#[test]
fn notify_ready_status_watchdog_reload_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_nonblocking(true).unwrap();
    let cfg = daemon_config(
        dir.path(),
        &photos(dir.path()),
        free_port(),
        "it-notify",
        "",
    );
    let mut daemon = run_daemon(
        &cfg,
        &[
            ("NOTIFY_SOCKET", path.to_str().unwrap()),
            // 4 s: a ping every 2 s. Shorter watchdogs flake on a loaded
            // CI machine, where an outbox fsync can hold the publisher loop
            // for over half a second.
            ("WATCHDOG_USEC", "4000000"),
        ],
    );
    // READY (the daemon may take a while to start on a loaded machine),
    // then 7 s of notifications.
    let mut got: Vec<String> = vec![];
    let t = Instant::now();
    while !got.iter().any(|m| m.starts_with("READY=1")) {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "no READY=1: {got:?}\n{}",
            daemon.log_text()
        );
        collect(&sock, &mut got, Duration::from_millis(100));
    }
    collect(&sock, &mut got, Duration::from_secs(7));
    let ready = got.iter().filter(|m| m.starts_with("READY=1")).count();
    let pings = got.iter().filter(|m| m.starts_with("WATCHDOG=1")).count();
    eprintln!(
        "{} notifications (READY, then 7 s): {ready} READY, {pings} WATCHDOG; first: {:?}",
        got.len(),
        got.first()
    );
    assert_eq!(ready, 1, "{got:?}\n{}", daemon.log_text());
    assert!(
        got[0].contains("STATUS=serving stylecam-demo 0.1.0 on cpu"),
        "{got:?}"
    );
    // Two seconds apart for a 4 s watchdog: about 3 in 7 s.
    assert!(pings >= 2, "{got:?}");
    assert!(
        daemon.log_text().contains("systemd watchdog: 4 s"),
        "{}",
        daemon.log_text()
    );

    daemon.signal("HUP");
    let mut reload = vec![];
    collect(&sock, &mut reload, Duration::from_secs(3));
    let r = reload
        .iter()
        .position(|m| m.starts_with("RELOADING=1\nMONOTONIC_USEC="))
        .expect("RELOADING");
    assert!(
        reload[r + 1..].iter().any(|m| m.starts_with("READY=1")),
        "{reload:?}"
    );

    daemon.signal("TERM");
    assert!(
        daemon.wait(Duration::from_secs(20)).success(),
        "{}",
        daemon.log_text()
    );
    let mut end = vec![];
    collect(&sock, &mut end, Duration::from_millis(300));
    assert!(end.iter().any(|m| m.starts_with("STOPPING=1")), "{end:?}");
}

/// `systemd-analyze verify` accepts the shipped units (the daemon and the
/// engine oneshot, with their paths pointed at the binary under test) and
/// `systemd-analyze security` scores them.
#[test]
fn the_shipped_units_verify() {
    let analyze = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    if !available(
        "systemd-analyze (Debian package systemd)",
        analyze.is_some(),
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let units: Vec<_> = ["stylecam.service", "stylecam-engine.service"]
        .into_iter()
        .map(|name| {
            let unit = std::fs::read_to_string(repo().join("systemd").join(name))
                .unwrap()
                .replace("/usr/bin/stylecam", env!("CARGO_BIN_EXE_stylecam"));
            let path = dir.path().join(name);
            std::fs::write(&path, unit).unwrap();
            path
        })
        .collect();
    let out = std::process::Command::new(analyze.unwrap())
        .arg("verify")
        .args(&units)
        .output()
        .unwrap();
    let text = output_text(&out);
    assert!(
        out.status.success() && text.trim().is_empty(),
        "systemd-analyze verify: {text}"
    );
    for path in &units {
        let out = std::process::Command::new(analyze.unwrap())
            .args(["security", "--offline=yes"])
            .arg(path)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let score = text
            .lines()
            .find(|l| l.contains("Overall exposure level"))
            .unwrap_or("(no score)");
        eprintln!("{score}");
        // README: 1.7 for the daemon, 1.0 for the oneshot ("OK").
        assert!(score.contains(" OK"), "{}: {score}", path.display());
    }
}

/// Runs the daemon for a moment with stderr in a file, `JOURNAL_STREAM`
/// naming that file or not; returns what it wrote.
fn stderr_of_a_short_run(journal: bool) -> String {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    // No broker on this port: a refused connection, logged as a warning.
    let cfg = daemon_config(
        dir.path(),
        &photos(dir.path()),
        free_port(),
        "it-journal",
        "",
    );
    let log_path = dir.path().join("stderr.log");
    let file = std::fs::File::create(&log_path).unwrap();
    let meta = file.metadata().unwrap();
    let mut cmd = stylecam();
    cmd.args(["run", "--config"])
        .arg(&cfg)
        .stderr(file)
        .stdout(std::process::Stdio::null());
    if journal {
        cmd.env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()));
    } else {
        // A JOURNAL_STREAM that names another file is not ours.
        cmd.env(
            "JOURNAL_STREAM",
            format!("{}:{}", meta.dev(), meta.ino() + 1),
        );
    }
    let mut child = cmd.spawn().unwrap();
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(30) {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        if text.contains("cannot connect") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let _ = child.wait();
    std::fs::read_to_string(&log_path).unwrap()
}

#[test]
fn under_journald_lines_carry_syslog_priorities_and_no_timestamps() {
    let text = stderr_of_a_short_run(true);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() >= 3, "{text}");
    for l in &lines {
        assert!(
            l.starts_with("<3>")
                || l.starts_with("<4>")
                || l.starts_with("<6>")
                || l.starts_with("<7>"),
            "every line starts with a priority: {l:?}\n{text}"
        );
        assert!(!l.contains("[20"), "no timestamp of our own: {l:?}");
    }
    assert!(
        lines.iter().any(|l| l.starts_with("<6>")),
        "info lines: {text}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("<4>")),
        "the refused broker is a warning: {text}"
    );

    let plain = stderr_of_a_short_run(false);
    assert!(
        plain
            .lines()
            .any(|l| l.starts_with("[20") && l.contains("INFO")),
        "outside journald: timestamps and level names:\n{plain}"
    );
    assert!(!plain.contains("<6>"));
}

#[test]
fn the_tmpfiles_entry_creates_the_config_folders() {
    let tool = ["/usr/bin/systemd-tmpfiles", "/bin/systemd-tmpfiles"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    if !available("systemd-tmpfiles (Debian package systemd)", tool.is_some()) {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(tool.unwrap())
        .arg("--create")
        .arg(format!("--root={}", root.path().display()))
        .arg(repo().join("systemd/stylecam.tmpfiles"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    use std::os::unix::fs::PermissionsExt;
    for d in ["etc/stylecam", "etc/stylecam/bundle"] {
        let m = std::fs::metadata(root.path().join(d)).unwrap();
        assert!(m.is_dir(), "{d}");
        assert_eq!(m.permissions().mode() & 0o777, 0o755, "{d}");
    }
}
