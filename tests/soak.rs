//! `stylecam soak` for a few seconds: it runs the daemon with synthetic
//! cameras, samples it from /proc and reports. (The 30-minute run's figures
//! are in docs/benchmarks.md.)

use crate::common::*;

#[test]
fn a_short_soak_samples_the_daemon_and_reports_flat_fds_and_threads() {
    let out = stylecam()
        .args([
            "soak",
            "--cameras",
            "3",
            "--minutes",
            "0.2",
            "--interval",
            "1",
            "--warmup",
            "0.05",
        ])
        .output()
        .unwrap();
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    let samples = text
        .lines()
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() == 4 && f.iter().all(|x| x.parse::<f64>().is_ok())
        })
        .count();
    assert!(samples >= 8, "a sample a second for 12 s:\n{text}");
    for want in [
        "soak summary",
        "RSS     first",
        "growth after warm-up",
        "fds     first",
        "threads first",
        "daemon exit: exit status: 0",
    ] {
        assert!(text.contains(want), "missing {want:?}:\n{text}");
    }
    let flat = |what: &str| {
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(what))
            .unwrap();
        line.contains("slope +0.000/min")
    };
    assert!(flat("fds") && flat("threads"), "{text}");
}

/// `stylecam soak --faults` for 75 s with two synthetic cameras and the
/// fake V4L2 camera (unplugged every 15 s of its frames): its own mosquitto
/// stopped and started, SIGHUP reloads, the broker stopped while the
/// outbox's disk is full (where a tmpfs can be mounted: root), a SIGKILL of
/// the daemon and a restart; a paho-mqtt subscriber de-duplicates by
/// (device, camera, epoch, seq): every event decided arrives, none missing.
/// (The 60-minute run's figures are in docs/benchmarks.md.)
#[test]
fn a_fault_soak_loses_no_event() {
    if !available("mosquitto", mosquitto_path().is_some()) {
        return;
    }
    let paho = std::process::Command::new("python3")
        .args(["-c", "import paho.mqtt.client"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !available("python3 with paho-mqtt (pip install paho-mqtt)", paho) {
        return;
    }
    let out = stylecam()
        .args([
            "soak",
            "--faults",
            "--mosquitto",
            mosquitto_path().unwrap().to_str().unwrap(),
            "--fake-camera",
            crate::v4l2::fake_lib().to_str().unwrap(),
            "--unplug-every",
            "15",
            "--cameras",
            "2",
            "--minutes",
            "1.25",
            "--fault-every",
            "10",
            "--outage",
            "3",
            "--drain",
            "15",
            "--interval",
            "5",
            "--warmup",
            "0.1",
        ])
        .output()
        .unwrap();
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    for want in [
        "fault: broker stopped for 3 s, started again",
        "fault: SIGHUP (reload)",
        "fault: daemon SIGKILLed, started again",
        ", 0 missing,",
        "camera unplugged ×",
        "stream  camera \"soak-v4l2\"",
    ] {
        assert!(text.contains(want), "missing {want:?}:\n{text}");
    }
    // The disk fault needs a tmpfs (root with mount rights); without one
    // the soak says it skipped it: a skip like any other, a failure under
    // REQUIRE_REFERENCE_CHECKS=1.
    if available(
        "a tmpfs for the outbox's disk-full fault (`mount -t tmpfs`: root with mount rights)",
        !text.contains("skipped: no tmpfs can be mounted here"),
    ) {
        assert!(text.contains("the outbox's disk full for 3 s"), "{text}");
    }
    let events = text
        .lines()
        .find(|l| l.trim_start().starts_with("events"))
        .unwrap_or_else(|| panic!("no events line:\n{text}"));
    let decided: u64 = events
        .split("decided ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{events}"));
    assert!(decided >= 50, "events flowed through the faults: {events}");
    assert!(
        !text.contains("camera unplugged ×0"),
        "the fake camera was unplugged:\n{text}"
    );
}
