//! The daemon against a real mosquitto: retained `online` status,
//! schema-valid events, `offline` from the last will after SIGKILL, events
//! that wait for a broker that comes up late, clean SIGTERM shutdown, a
//! corrupt image skipped without stopping the camera.

use crate::common::*;
use std::time::{Duration, Instant};

fn status_is(r: &Received, state: &str) -> bool {
    r.json["kind"] == "status" && r.json["state"] == state
}

fn photos_with_a_corrupt_file(dir: &std::path::Path) -> std::path::PathBuf {
    let photos = photos(dir);
    std::fs::write(
        photos.join("broken.jpg"),
        b"\xff\xd8\xff\xe0 this is not a jpeg",
    )
    .unwrap();
    photos
}

#[test]
fn daemon_publishes_schema_valid_events_and_last_will_on_sigkill() {
    if !available("mosquitto", mosquitto_path().is_some()) {
        return;
    }
    let broker = Mosquitto::start(free_port());
    let dir = tempfile::tempdir().unwrap();
    let photos = photos_with_a_corrupt_file(dir.path());
    let cfg = daemon_config(dir.path(), &photos, broker.port, "it-kill", "");
    let sub = Collector::start(broker.port, "stylecam/it-kill/#", "it-sub-1");
    let mut daemon = run_daemon(&cfg, &[]);

    let validator = schema();
    let all = sub.wait_for(
        "online status and 3 styles events",
        Duration::from_secs(60),
        |all| all.iter().any(|r| status_is(r, "online")) && kind(all, "styles").len() >= 3,
    );
    for r in &all {
        assert_valid(&validator, r);
    }
    let styles = kind(&all, "styles");
    assert!(styles
        .iter()
        .all(|r| r.topic == "stylecam/it-kill/entrance/styles" && !r.retain));
    let seqs: Vec<u64> = styles
        .iter()
        .map(|r| r.json["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "event numbers count up without gaps"
    );
    assert!(styles
        .iter()
        .all(|r| (1..=5).contains(&r.json["tags"].as_array().unwrap().len())));
    assert!(!kind(&all, "state").is_empty());
    // The corrupt file was logged (once) and skipped; the camera went on.
    let log = daemon.log_text();
    assert_eq!(log.matches("skipping").count(), 1, "log:\n{log}");

    // A late subscriber sees the retained state and online status.
    let late = Collector::start(broker.port, "stylecam/it-kill/#", "it-sub-late");
    let got = late.wait_for("retained status + state", Duration::from_secs(10), |all| {
        all.iter().any(|r| r.retain && status_is(r, "online"))
            && all.iter().any(|r| r.retain && r.json["kind"] == "state")
    });
    for r in &got {
        assert_valid(&validator, r);
    }

    daemon.child.kill().unwrap(); // SIGKILL
    daemon.wait(Duration::from_secs(5));
    let all = sub.wait_for(
        "offline from the last will",
        Duration::from_secs(15),
        |all| all.iter().any(|r| status_is(r, "offline")),
    );
    let offline = all.iter().find(|r| status_is(r, "offline")).unwrap();
    assert_valid(&validator, offline);
    assert_eq!(offline.topic, "stylecam/it-kill/status");
}

#[test]
fn events_wait_for_a_broker_that_starts_late_and_sigterm_flushes() {
    if !available("mosquitto", mosquitto_path().is_some()) {
        return;
    }
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let photos = photos(dir.path());
    let cfg = daemon_config(dir.path(), &photos, port, "it-late", "");
    let mut daemon = run_daemon(&cfg, &[]);
    // Tag events are decided while no broker exists.
    let t = Instant::now();
    while !daemon.log_text().contains("tags [") {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "no tag event decided; log:\n{}",
            daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        daemon.child.try_wait().unwrap().is_none(),
        "the daemon keeps running without a broker"
    );
    assert!(daemon.log_text().contains("cannot connect to"));

    // The broker runs elsewhere with our subscriber on it; it "comes up" on
    // the daemon's port when the proxy starts, so no event can slip past.
    let broker = Mosquitto::start(free_port());
    let sub = Collector::start(broker.port, "stylecam/it-late/#", "it-sub-2");
    let _proxy = Proxy::start(port, broker.port);
    let all = sub.wait_for(
        "queued events after the broker came up",
        Duration::from_secs(60),
        |all| kind(all, "styles").iter().any(|r| r.json["seq"] == 1),
    );
    let seqs: Vec<u64> = kind(&all, "styles")
        .iter()
        .map(|r| r.json["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(
        seqs[0], 1,
        "the first event, decided while the broker was down, arrives first: {seqs:?}"
    );

    daemon.signal("TERM");
    let status = daemon.wait(Duration::from_secs(20));
    assert!(
        status.success(),
        "clean exit on SIGTERM; log:\n{}",
        daemon.log_text()
    );
    sub.wait_for(
        "offline status published on shutdown",
        Duration::from_secs(10),
        |all| all.iter().any(|r| status_is(r, "offline")),
    );
    let log = daemon.log_text();
    assert!(
        log.contains("0 waiting"),
        "nothing left undelivered:\n{log}"
    );
}

#[test]
fn mqtt5_delivers_schema_valid_events_and_last_will() {
    if !available("mosquitto", mosquitto_path().is_some()) {
        return;
    }
    let broker = Mosquitto::start(free_port());
    let dir = tempfile::tempdir().unwrap();
    let photos = photos_with_a_corrupt_file(dir.path());
    let cfg = daemon_config(dir.path(), &photos, broker.port, "it-v5", "");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("[mqtt]\n", "[mqtt]\nprotocol = \"5\"\n");
    std::fs::write(&cfg, text).unwrap();
    let sub = Collector::start(broker.port, "stylecam/it-v5/#", "it-sub-v5");
    let mut daemon = run_daemon(&cfg, &[]);
    let validator = schema();
    let all = sub.wait_for(
        "online and events over MQTT 5",
        Duration::from_secs(60),
        |all| all.iter().any(|r| status_is(r, "online")) && kind(all, "styles").len() >= 2,
    );
    for r in &all {
        assert_valid(&validator, r);
    }
    daemon.child.kill().unwrap();
    daemon.wait(Duration::from_secs(5));
    sub.wait_for(
        "offline from the MQTT 5 last will",
        Duration::from_secs(15),
        |all| all.iter().any(|r| status_is(r, "offline")),
    );
}
