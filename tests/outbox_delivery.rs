//! Delivery that loses nothing, against a real mosquitto: a network outage
//! during a steady event stream, and a daemon SIGKILLed with events in its
//! on-disk outbox.

use crate::common::*;
use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;
use stylecam::publish::store::Store;

/// Event numbers of the `styles` events received, in arrival order.
fn seqs(c: &Collector) -> Vec<u64> {
    kind(&c.all(), "styles")
        .iter()
        .map(|r| r.json["seq"].as_u64().unwrap())
        .collect()
}

/// De-duplicates `got` by seq (first arrival wins) and checks that it is
/// exactly 1..=decided in order; returns the number of unique events.
fn assert_once_in_order(got: &[u64], decided: usize) -> usize {
    let mut first_seen = vec![];
    let mut unique = BTreeSet::new();
    for s in got {
        if unique.insert(*s) {
            first_seen.push(*s);
        }
    }
    assert_eq!(
        first_seen,
        (1..=decided as u64).collect::<Vec<_>>(),
        "every event once after de-duplication, in order (raw: {got:?})"
    );
    unique.len()
}

#[test]
fn network_outage_during_a_stream_loses_nothing() {
    if !available("mosquitto", mosquitto_path().is_some()) {
        return;
    }
    let broker = Mosquitto::start(free_port());
    let port = free_port();
    let proxy = Proxy::start(port, broker.port);
    let dir = tempfile::tempdir().unwrap();
    let cfg = daemon_config(dir.path(), &photos(dir.path()), port, "it-outage", "");
    // The subscriber talks to the broker directly: only the daemon's link breaks.
    let sub = Collector::start(broker.port, "stylecam/it-outage/#", "it-sub-outage");
    let mut daemon = run_daemon(&cfg, &[]);

    sub.wait_for("first events", Duration::from_secs(60), |all| {
        kind(all, "styles").len() >= 3
    });
    proxy.cut();
    let before = daemon.log_text().matches("tags [").count();
    wait_log(&daemon, "tags [", before + 6, Duration::from_secs(60));
    let missed_so_far = daemon.log_text().matches("tags [").count();
    proxy.restore();
    // Everything decided during the outage arrives once the link is back.
    sub.wait_for("events from the outage", Duration::from_secs(60), |_| {
        seqs(&sub).iter().copied().collect::<BTreeSet<_>>().len() >= missed_so_far
    });
    daemon.signal("TERM");
    assert!(
        daemon.wait(Duration::from_secs(20)).success(),
        "log:\n{}",
        daemon.log_text()
    );

    let decided = exit_summary(&sub, 1)["events_decided"].as_u64().unwrap() as usize;
    let got = seqs(&sub);
    let unique = assert_once_in_order(&got, decided);
    let onlines = sub
        .all()
        .iter()
        .filter(|r| r.json["kind"] == "status" && r.json["state"] == "online")
        .count();
    assert!(
        onlines >= 2,
        "online is republished on reconnect ({onlines})"
    );
    eprintln!(
        "outage: {decided} events decided, {} received, {} after de-duplication",
        got.len(),
        unique
    );
}

#[test]
fn sigkill_with_events_in_the_outbox_loses_none() {
    if !available("mosquitto", mosquitto_path().is_some()) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = daemon_config(dir.path(), &photos(dir.path()), port, "it-crash", "");
    // No broker yet: events pile up in the outbox. The outbox commits
    // on the publisher's task, after the event is logged: 8 logged leaves
    // room for a slow commit on a loaded machine before the kill.
    let mut daemon = run_daemon(&cfg, &[]);
    wait_log(&daemon, "tags [", 8, Duration::from_secs(60));
    daemon.child.kill().unwrap(); // SIGKILL: no flush, no goodbye
    daemon.wait(Duration::from_secs(5));

    // What survived on disk: every message committed before the kill.
    let (store, restored) = Store::open(&dir.path().join("outbox.redb")).unwrap();
    drop(store);
    let stored: BTreeSet<u64> = restored
        .pending
        .iter()
        .filter(|s| s.msg.topic.ends_with("/styles"))
        .map(|s| s.msg.event.as_ref().unwrap().1)
        .collect();
    assert!(
        stored.len() >= 4,
        "events were in the outbox at the kill: {stored:?}"
    );
    let last = *restored.seqs.get("entrance").unwrap();
    assert_eq!(
        stored,
        (1..=last).collect(),
        "the stored events are 1..=last seq"
    );

    // Broker up, subscriber on, daemon restarted on the same outbox.
    let broker = Mosquitto::start(free_port());
    let sub = Collector::start(broker.port, "stylecam/it-crash/#", "it-sub-crash");
    let _proxy = Proxy::start(port, broker.port);
    let mut daemon = run_daemon(&cfg, &[]);
    sub.wait_for(
        "the stored events and new ones",
        Duration::from_secs(60),
        |_| {
            let got: BTreeSet<u64> = seqs(&sub).into_iter().collect();
            stored.is_subset(&got) && got.iter().any(|&s| s > last)
        },
    );
    let got = seqs(&sub);
    assert_eq!(
        got[..stored.len()],
        stored.iter().copied().collect::<Vec<_>>()[..],
        "old events first, in order"
    );
    assert!(
        daemon
            .log_text()
            .contains("from before the restart go first"),
        "{}",
        daemon.log_text()
    );
    daemon.signal("TERM");
    assert!(daemon.wait(Duration::from_secs(20)).success());
}

#[test]
fn a_full_disk_never_stops_the_daemon_nor_corrupts_the_outbox() {
    if !available("mosquitto", mosquitto_path().is_some()) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = daemon_config(dir.path(), &photos(dir.path()), port, "it-full", "");
    // A 160 KiB file-size limit: the outbox fills it while the broker is away.
    let mut cmd = Command::new("bash");
    cmd.current_dir(repo()).arg("-c").arg(format!(
        "ulimit -f 160 && exec {} run --config {}",
        env!("CARGO_BIN_EXE_stylecam"),
        cfg.display()
    ));
    let mut daemon = Daemon::spawn(cmd);
    wait_log(&daemon, "kept in memory", 1, Duration::from_secs(120));
    assert!(
        daemon.child.try_wait().unwrap().is_none(),
        "still running on a full disk"
    );
    let log = daemon.log_text();
    eprintln!(
        "{}",
        log.lines().find(|l| l.contains("kept in memory")).unwrap()
    );
    assert_eq!(log.matches("kept in memory").count(), 1, "logged once");

    // The broker comes: what could not be written to disk is delivered from memory.
    let broker = Mosquitto::start(free_port());
    let sub = Collector::start(broker.port, "stylecam/it-full/#", "it-sub-full");
    let _proxy = Proxy::start(port, broker.port);
    sub.wait_for(
        "events after the disk filled up",
        Duration::from_secs(60),
        |all| kind(all, "styles").len() >= 5,
    );
    daemon.signal("TERM");
    assert!(
        daemon.wait(Duration::from_secs(30)).success(),
        "{}",
        daemon.log_text()
    );
    // The store opens again: committed transactions only, nothing torn.
    let (_store, restored) = Store::open(&dir.path().join("outbox.redb")).unwrap();
    eprintln!(
        "after the full disk: {} messages left in the outbox",
        restored.pending.len()
    );
}

#[test]
fn broker_stopped_and_restarted_during_a_stream_loses_nothing() {
    if !available("mosquitto", mosquitto_path().is_some()) {
        return;
    }
    // A broker that keeps sessions across its own restart, and a
    // subscriber with a persistent session: only the daemon must not lose.
    let state = tempfile::tempdir().unwrap();
    let port = free_port();
    let conf = "allow_anonymous true\npersistence true\npersistence_location {dir}/\n";
    let broker = Mosquitto::start_in(port, state.path(), conf);
    let sub = Collector::start_persistent(port, "stylecam/it-restart/#", "it-sub-restart");
    let dir = tempfile::tempdir().unwrap();
    let cfg = daemon_config(dir.path(), &photos(dir.path()), port, "it-restart", "");
    let mut daemon = run_daemon(&cfg, &[]);

    sub.wait_for("first events", Duration::from_secs(60), |all| {
        kind(all, "styles").len() >= 3
    });
    broker.stop();
    let at_stop = daemon.log_text().matches("tags [").count();
    wait_log(&daemon, "tags [", at_stop + 6, Duration::from_secs(60));
    wait_log(&daemon, "cannot connect to", 1, Duration::from_secs(30));
    let _broker = Mosquitto::start_in(port, state.path(), conf);
    let during = daemon.log_text().matches("tags [").count();
    sub.wait_for(
        "events from while the broker was down",
        Duration::from_secs(60),
        |_| seqs(&sub).iter().copied().collect::<BTreeSet<_>>().len() >= during,
    );
    daemon.signal("TERM");
    assert!(
        daemon.wait(Duration::from_secs(20)).success(),
        "log:\n{}",
        daemon.log_text()
    );

    let decided = exit_summary(&sub, 1)["events_decided"].as_u64().unwrap() as usize;
    sub.wait_for("every event", Duration::from_secs(20), |_| {
        seqs(&sub).iter().copied().collect::<BTreeSet<_>>().len() >= decided
    });
    let got = seqs(&sub);
    let unique = assert_once_in_order(&got, decided);
    eprintln!(
        "broker restart: {decided} events decided, {} received, {} after de-duplication",
        got.len(),
        unique
    );
}

#[test]
fn a_full_outbox_drops_the_oldest_counts_it_and_keeps_running() {
    if !available("mosquitto", mosquitto_path().is_some()) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = daemon_config(
        dir.path(),
        &photos(dir.path()),
        port,
        "it-limit",
        "max_events = 6\n",
    );
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("[mqtt]\n", "[mqtt]\nhealth_interval_s = 1\n");
    std::fs::write(&cfg, text).unwrap();
    // No broker: events pile up past the limit of 6 messages (3 events).
    let mut daemon = run_daemon(&cfg, &[]);
    wait_log(&daemon, "tags [", 8, Duration::from_secs(60));
    assert!(daemon.child.try_wait().unwrap().is_none());

    let broker = Mosquitto::start(free_port());
    let sub = Collector::start(broker.port, "stylecam/it-limit/#", "it-sub-limit");
    let _proxy = Proxy::start(port, broker.port);
    sub.wait_for("the newest events", Duration::from_secs(60), |all| {
        kind(all, "styles").len() >= 3
    });
    // The health message reports the drops too, and matches the schema.
    let all = sub.wait_for(
        "a health message counting drops",
        Duration::from_secs(30),
        |all| {
            kind(all, "health")
                .iter()
                .any(|r| r.json["outbox"]["dropped"].as_u64() > Some(0))
        },
    );
    let health = kind(&all, "health");
    assert_valid(&schema(), health[0]);
    daemon.signal("TERM");
    assert!(daemon.wait(Duration::from_secs(20)).success());
    let got = seqs(&sub);
    assert!(
        got[0] > 1,
        "the oldest events were dropped, not the newest: {got:?}"
    );
    let summary = exit_summary(&sub, 1);
    assert_valid(&schema(), kind(&sub.all(), "health").last().unwrap());
    assert!(
        summary["outbox"]["dropped"].as_u64() > Some(0),
        "drops are counted: {summary}"
    );
    eprintln!(
        "outbox limit: first delivered seq {}, outbox at exit {}",
        got[0], summary["outbox"]
    );
}

/// The outbox file is lost between two runs (a new SD card, another state
/// directory): `seq` starts again at 1 in a new epoch, and a subscriber
/// that de-duplicates by (device, camera, epoch, seq), as the README says,
/// keeps every new event (one keyed by seq alone would drop them).
#[test]
fn losing_the_outbox_file_starts_a_new_epoch_and_loses_no_new_event() {
    if !available("mosquitto", mosquitto_path().is_some()) {
        return;
    }
    let broker = Mosquitto::start(free_port());
    let sub = Collector::start(broker.port, "stylecam/it-epoch/#", "it-sub-epoch");
    let dir = tempfile::tempdir().unwrap();
    let cfg = daemon_config(dir.path(), &photos(dir.path()), broker.port, "it-epoch", "");
    let mut decided = 0;
    for run in 0..2 {
        if run == 1 {
            std::fs::remove_file(dir.path().join("outbox.redb")).unwrap();
        }
        let mut daemon = run_daemon(&cfg, &[]);
        wait_log(&daemon, "tags [", 4, Duration::from_secs(60));
        daemon.signal("TERM");
        assert!(
            daemon.wait(Duration::from_secs(20)).success(),
            "{}",
            daemon.log_text()
        );
        decided += exit_summary(&sub, run + 1)["events_decided"]
            .as_u64()
            .unwrap() as usize;
    }
    let events = sub.wait_for("both runs' events", Duration::from_secs(30), |all| {
        kind(all, "styles").len() >= decided
    });
    let styles = kind(&events, "styles");
    for r in &styles {
        assert_valid(&schema(), r);
    }
    let key = |r: &&Received| {
        (
            r.json["device"].as_str().unwrap().to_string(),
            r.json["camera"].as_str().unwrap().to_string(),
            r.json["epoch"].as_str().unwrap().to_string(),
            r.json["seq"].as_u64().unwrap(),
        )
    };
    let by_key: BTreeSet<_> = styles.iter().map(key).collect();
    let epochs: BTreeSet<_> = by_key.iter().map(|k| k.2.clone()).collect();
    let by_seq: BTreeSet<_> = styles
        .iter()
        .map(|r| r.json["seq"].as_u64().unwrap())
        .collect();
    eprintln!(
        "outbox lost between runs: {decided} events decided, {} unique by (device, camera, epoch, seq) in {} epochs, {} by seq alone",
        by_key.len(),
        epochs.len(),
        by_seq.len()
    );
    assert_eq!(epochs.len(), 2, "a new outbox file is a new epoch");
    assert_eq!(by_key.len(), decided, "no new event is lost");
    assert!(
        by_seq.len() < decided,
        "seq alone would have dropped the second run's events"
    );
}
