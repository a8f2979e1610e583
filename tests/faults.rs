//! What the daemon does when its machine fails it (issue 35, item 7 and
//! the full disk of item 8), against the real binary and mosquitto: a
//! process out of file descriptors, cameras that all fail, an outbox disk
//! full at start. Each test failed before its fix.

use crate::common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The daemon's `/metrics` value of the series `name` (labels included,
/// e.g. `stylecam_camera_connect_failures_total{camera="entrance"}`).
/// Sets the soft limit of open files of process `pid` (the hard one stays).
fn set_open_files(pid: u32, soft: u64) {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    let pid = pid as libc::pid_t;
    // SAFETY: plain system calls on two valid rlimit structs.
    let ok = unsafe {
        libc::prlimit(pid, libc::RLIMIT_NOFILE, std::ptr::null(), &mut old) == 0 && {
            let new = libc::rlimit {
                rlim_cur: soft,
                rlim_max: old.rlim_max,
            };
            libc::prlimit(pid, libc::RLIMIT_NOFILE, &new, std::ptr::null_mut()) == 0
        }
    };
    assert!(ok, "prlimit: {}", std::io::Error::last_os_error());
}

/// Item 7: with its descriptors used up (what ~1,100 idle connections did
/// at systemd's soft limit of 1,024), a files camera could not open its
/// next image, the camera stopped and the daemon exited with status 0 —
/// which `Restart=on-failure` leaves down. Now the camera retries
/// (`reconnecting`, counted, logged once) and streams again once
/// descriptors are free; the daemon never stops.
#[test]
fn a_files_camera_out_of_descriptors_retries_and_the_daemon_runs_on() {
    if !available("mosquitto", mosquitto_path().is_some()) {
        return;
    }
    let broker = Mosquitto::start(free_port());
    let dir = tempfile::tempdir().unwrap();
    let http = free_port();
    let cfg = daemon_config(
        dir.path(),
        &photos(dir.path()),
        broker.port,
        "it-emfile",
        &format!("\n[metrics]\nlisten = \"127.0.0.1:{http}\"\n"),
    );
    let mut daemon = run_daemon(&cfg, &[]);
    let captured = "stylecam_camera_frames_total{camera=\"entrance\",outcome=\"captured\"}";
    let failures = "stylecam_camera_connect_failures_total{camera=\"entrance\"}";
    let t = Instant::now();
    while metric(http, captured).unwrap_or(0.0) < 5.0 {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "{}",
            daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // No descriptor free: every open fails with EMFILE.
    let pid = daemon.child.id();
    set_open_files(pid, 3);
    std::thread::sleep(Duration::from_secs(3));
    if let Some(status) = daemon.child.try_wait().unwrap() {
        panic!(
            "the daemon stopped ({status}) when it ran out of descriptors:\n{}",
            daemon.log_text()
        );
    }
    wait_log(&daemon, "Too many open files", 1, Duration::from_secs(10));
    set_open_files(pid, 1024);
    wait_log(
        &daemon,
        "reading images again after",
        1,
        Duration::from_secs(20),
    );
    let before = metric(http, captured).unwrap();
    let t = Instant::now();
    while metric(http, captured).unwrap_or(0.0) < before + 5.0 {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "{}",
            daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let failed = metric(http, failures).unwrap();
    assert!(failed >= 2.0, "{failures} = {failed}");
    let log = daemon.log_text();
    // Logged once per outage, not per retry (the retries are debug).
    assert_eq!(log.matches("Too many open files").count(), 1, "{log}");
    daemon.signal("TERM");
    assert!(daemon.wait(Duration::from_secs(30)).success(), "{log}");
    eprintln!("out of descriptors for 3 s: {failed} retries counted, streaming again");
}

/// A config whose one camera plays `photos` (`looping` or once).
fn one_camera(dir: &Path, photos: &Path, port: u16, device: &str, looping: bool) -> PathBuf {
    let cfg = daemon_config(dir, photos, port, device, "\n[metrics]\nlisten = \"\"\n");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        text.replace("loop = true", &format!("loop = {looping}")),
    )
    .unwrap();
    cfg
}

/// Item 7: a daemon whose cameras have all failed exited with status 0, so
/// systemd left it down. Now it exits 1 naming them (systemd restarts it);
/// cameras that simply ended (files played once) still end it with 0.
#[test]
fn a_daemon_whose_cameras_all_failed_exits_non_zero() {
    if !available("mosquitto", mosquitto_path().is_some()) {
        return;
    }
    let broker = Mosquitto::start(free_port());
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken");
    std::fs::create_dir(&broken).unwrap();
    std::fs::write(broken.join("a.jpg"), b"not a jpeg").unwrap();
    let cfg = one_camera(dir.path(), &broken, broker.port, "it-failed", true);
    let mut daemon = run_daemon(&cfg, &[]);
    let status = daemon.wait(Duration::from_secs(60));
    let log = daemon.log_text();
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(
        log.contains("every camera has stopped; failed: entrance"),
        "{log}"
    );

    // The control: a camera that played its files once is a clean end.
    let played = tempfile::tempdir().unwrap();
    let cfg = one_camera(
        played.path(),
        &photos(played.path()),
        broker.port,
        "it-ended",
        false,
    );
    let mut daemon = run_daemon(&cfg, &[]);
    let status = daemon.wait(Duration::from_secs(60));
    assert!(status.success(), "{status}: {}", daemon.log_text());
}

/// A small tmpfs, filled up, unmounted when dropped.
struct FullDisk {
    at: PathBuf,
    filler: PathBuf,
}

impl FullDisk {
    /// None where mounting is not allowed (not root).
    fn mount(at: &Path) -> Option<Self> {
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
            .arg(at)
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            return None;
        }
        let filler = at.join("filler");
        let mut f = std::fs::File::create(&filler).unwrap();
        let block = [0u8; 4096];
        while std::io::Write::write_all(&mut f, &block).is_ok() {}
        Some(Self {
            at: at.into(),
            filler,
        })
    }

    fn free(&self) {
        std::fs::remove_file(&self.filler).unwrap();
    }
}

impl Drop for FullDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.at).status();
    }
}

/// Item 8: with the outbox's disk full at start the outbox did not open,
/// the daemon exited and systemd restarted it in a loop: no tags at all.
/// Now it starts with the outbox in memory (logged, write errors counted),
/// tags and delivers, and the file is written once there is room.
#[test]
fn a_full_outbox_disk_at_start_keeps_tagging_in_memory() {
    if !available("mosquitto", mosquitto_path().is_some()) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Some(disk) = FullDisk::mount(&dir.path().join("disk")) else {
        available("a tmpfs mount (as root)", false);
        return;
    };
    let broker = Mosquitto::start(free_port());
    let sub = Collector::start(broker.port, "stylecam/it-full-start/#", "it-sub-full");
    let http = free_port();
    let cfg = daemon_config(
        dir.path(),
        &photos(dir.path()),
        broker.port,
        "it-full-start",
        &format!("\n[metrics]\nlisten = \"127.0.0.1:{http}\"\n"),
    );
    let outbox = disk.at.join("outbox.redb");
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        &dir.path().join("outbox.redb").display().to_string(),
        &outbox.display().to_string(),
    );
    std::fs::write(&cfg, text).unwrap();
    let mut daemon = run_daemon(&cfg, &[]);
    wait_log(
        &daemon,
        "starting with the outbox in memory",
        1,
        Duration::from_secs(30),
    );
    sub.wait_for(
        "events with the disk full",
        Duration::from_secs(60),
        |all| kind(all, "styles").len() >= 3,
    );
    if let Some(status) = daemon.child.try_wait().unwrap() {
        panic!("{status}:\n{}", daemon.log_text());
    }
    wait_log(&daemon, "kept in memory", 1, Duration::from_secs(10));
    let errors = metric(http, "stylecam_outbox_write_errors_total").unwrap_or(0.0);
    assert!(
        errors >= 1.0,
        "write errors {errors}: {}",
        daemon.log_text()
    );
    disk.free();
    wait_log(&daemon, "works again", 1, Duration::from_secs(30));
    daemon.signal("TERM");
    let status = daemon.wait(Duration::from_secs(30));
    let log = daemon.log_text();
    assert!(status.success(), "{log}");
    // The file written once there was room is a whole outbox.
    let (_, restored) =
        stylecam::publish::store::Store::open(&outbox).unwrap_or_else(|e| panic!("{e}\n{log}"));
    eprintln!(
        "full disk at start: tagged from memory ({errors} write errors), then the file: epoch {}",
        restored.epoch
    );
}
