//! A broker that refuses what the daemon publishes is not delivering it:
//! against a real mosquitto whose ACL lets the daemon read but not write
//! its topics, over MQTT 5 (each PUBACK says *not authorised*), nothing is
//! counted as delivered and the outbox keeps every event; once the ACL is
//! fixed (mosquitto 2 re-reads `acl_file` on SIGHUP) everything decided
//! meanwhile arrives, `seq` contiguous per epoch — with the daemon kept
//! running, and with the daemon restarted while refused.

use crate::common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

/// Anonymous clients (the daemon and the test's subscriber) may read
/// everything under `stylecam/`, and write nothing.
const DENY: &str = "topic read stylecam/#\n";
/// The fix: they may write there too.
const ALLOW: &str = "topic readwrite stylecam/#\n";

fn acl_broker(dir: &Path) -> Mosquitto {
    std::fs::write(dir.join("acl"), DENY).unwrap();
    Mosquitto::start_in(
        free_port(),
        dir,
        "allow_anonymous true\npersistence false\nacl_file {dir}/acl\n",
    )
}

/// A daemon config speaking MQTT 5 to `port`, `/metrics` on `http`.
fn config(dir: &Path, port: u16, http: u16, device: &str) -> std::path::PathBuf {
    let extra = format!("\n[metrics]\nlisten = \"127.0.0.1:{http}\"\n");
    let cfg = daemon_config(dir, &photos(dir), port, device, &extra);
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("[mqtt]\n", "[mqtt]\nprotocol = \"5\"\n");
    std::fs::write(&cfg, text).unwrap();
    cfg
}

/// A `/metrics` series as a count (see `common::metric`).
fn metric(http: u16, series: &str) -> u64 {
    crate::common::metric(http, series).expect("/metrics answers") as u64
}

/// The `styles` events received: (epoch, seq), in arrival order.
fn events(c: &Collector) -> Vec<(String, u64)> {
    kind(&c.all(), "styles")
        .iter()
        .map(|r| {
            (
                r.json["epoch"].as_str().unwrap_or_default().to_string(),
                r.json["seq"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Per epoch, the distinct seqs received.
fn by_epoch(got: &[(String, u64)]) -> BTreeMap<String, BTreeSet<u64>> {
    let mut out: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    for (epoch, seq) in got {
        out.entry(epoch.clone()).or_default().insert(*seq);
    }
    out
}

/// Refused for a while: no PUBACK counted as a delivery, each refusal
/// counted by reason and logged, the events kept in the outbox, `/healthz`
/// saying why. Returns how many events the daemon decided by then.
fn refused_phase(daemon: &Daemon, http: u16, sub: &Collector) -> usize {
    wait_log(daemon, "tags [", 6, Duration::from_secs(90));
    // Time for PUBACKs of what was sent.
    std::thread::sleep(Duration::from_secs(2));
    let decided = daemon.log_text().matches("tags [").count();
    let acked = metric(http, "stylecam_mqtt_acked_total");
    assert_eq!(
        acked,
        0,
        "a refused PUBACK counted as delivered ({acked} acked, {} pending, {} refused); log:\n{}",
        metric(http, "stylecam_outbox_pending"),
        metric(http, "stylecam_mqtt_refused_total"),
        daemon.log_text()
    );
    let refused = metric(
        http,
        "stylecam_mqtt_refused_total{reason=\"not_authorized\"}",
    );
    assert!(refused >= 1, "refusals are counted by reason");
    let pending = metric(http, "stylecam_outbox_pending") as usize;
    assert!(
        pending >= decided,
        "the outbox keeps every event ({pending} pending, {decided} decided)"
    );
    let log = daemon.log_text();
    let line = log.lines().find(|l| l.contains("refused a message"));
    assert!(
        line.is_some_and(|l| l.contains("not_authorized")),
        "the refusal is logged with its reason:\n{log}"
    );
    eprintln!("{}", line.unwrap());
    assert!(
        !log.contains("PubAck Pkid"),
        "one line per refusal from rumqttc:\n{log}"
    );
    let (code, body) = http_get(http, "/healthz").unwrap();
    assert!(
        code == 503 && body.contains("refuses"),
        "/healthz says the broker refuses: {code} {body}"
    );
    let (_, page) = http_get(http, "/api/status").unwrap();
    let page: serde_json::Value = serde_json::from_str(&page).unwrap();
    assert!(
        page["delivery"]["refused"]["not_authorized"].as_u64() >= Some(1)
            && page["delivery"]["acked"] == 0,
        "the status page shows the refusals: {}",
        page["delivery"]
    );
    assert!(
        kind(&sub.all(), "styles").is_empty(),
        "the broker let nothing through"
    );
    decided
}

/// Waits until every event up to the highest seq seen is there, for each
/// epoch, and at least `at_least` events of the newest epoch; returns them.
fn wait_contiguous(sub: &Collector, at_least: usize) -> BTreeMap<String, BTreeSet<u64>> {
    sub.wait_for(
        "every event decided while refused",
        Duration::from_secs(120),
        |_| {
            let all = by_epoch(&events(sub));
            all.values().map(|s| s.len()).sum::<usize>() >= at_least
                && all
                    .values()
                    .all(|s| *s == (1..=*s.last().unwrap()).collect())
        },
    );
    by_epoch(&events(sub))
}

#[test]
fn refused_publishes_stay_in_the_outbox_until_the_acl_is_fixed() {
    if !available("mosquitto", mosquitto_path().is_some()) {
        return;
    }
    let bdir = tempfile::tempdir().unwrap();
    let broker = acl_broker(bdir.path());
    let dir = tempfile::tempdir().unwrap();
    let http = free_port();
    let cfg = config(dir.path(), broker.port, http, "it-refused");
    let sub = Collector::start(broker.port, "stylecam/it-refused/#", "it-sub-refused");
    let mut daemon = run_daemon(&cfg, &[]);
    let decided = refused_phase(&daemon, http, &sub);

    std::fs::write(bdir.path().join("acl"), ALLOW).unwrap();
    broker.signal("HUP");
    let got = wait_contiguous(&sub, decided);
    // The PUBACKs count as deliveries now (the daemon counts them on its
    // next turn).
    let t = std::time::Instant::now();
    while metric(http, "stylecam_mqtt_acked_total") < decided as u64 {
        assert!(t.elapsed() < Duration::from_secs(10), "acks are counted");
        std::thread::sleep(Duration::from_millis(100));
    }
    daemon.signal("TERM");
    assert!(
        daemon.wait(Duration::from_secs(30)).success(),
        "{}",
        daemon.log_text()
    );
    let summary = exit_summary(&sub, 1);
    assert!(
        summary["outbox"]["refused"]["not_authorized"].as_u64() >= Some(1),
        "the health message counts the refusals: {}",
        summary["outbox"]
    );
    let all = events(&sub);
    let seqs = by_epoch(&all);
    assert_eq!(seqs.len(), 1, "one epoch: {got:?}");
    let seen = seqs.values().next().unwrap();
    let total = summary["events_decided"].as_u64().unwrap();
    assert_eq!(
        *seen,
        (1..=total).collect(),
        "every event decided arrives (raw: {all:?})"
    );
    eprintln!(
        "refused, then fixed: {decided} events decided while refused, {total} in all, {} received",
        all.len()
    );
}

#[test]
fn refused_events_survive_a_restart_and_arrive_once_the_acl_is_fixed() {
    if !available("mosquitto", mosquitto_path().is_some()) {
        return;
    }
    let bdir = tempfile::tempdir().unwrap();
    let broker = acl_broker(bdir.path());
    let dir = tempfile::tempdir().unwrap();
    let http = free_port();
    let cfg = config(dir.path(), broker.port, http, "it-refused-restart");
    let sub = Collector::start(
        broker.port,
        "stylecam/it-refused-restart/#",
        "it-sub-refused-restart",
    );
    let mut daemon = run_daemon(&cfg, &[]);
    refused_phase(&daemon, http, &sub);
    daemon.signal("TERM");
    assert!(
        daemon.wait(Duration::from_secs(30)).success(),
        "{}",
        daemon.log_text()
    );
    let first = daemon.log_text();
    let decided = first.matches("tags [").count();
    assert!(
        first.contains("stay in the outbox file"),
        "the shutdown says where the undelivered messages are:\n{first}"
    );

    std::fs::write(bdir.path().join("acl"), ALLOW).unwrap();
    broker.signal("HUP");
    let mut daemon = run_daemon(&cfg, &[]);
    wait_contiguous(&sub, decided + 1);
    daemon.signal("TERM");
    assert!(
        daemon.wait(Duration::from_secs(30)).success(),
        "{}",
        daemon.log_text()
    );
    let total = decided as u64 + exit_summary(&sub, 1)["events_decided"].as_u64().unwrap();
    let all = events(&sub);
    let seqs = by_epoch(&all);
    assert_eq!(seqs.len(), 1, "one epoch across the restart: {seqs:?}");
    assert_eq!(
        *seqs.values().next().unwrap(),
        (1..=total).collect(),
        "every event of both runs arrives (raw: {all:?})"
    );
}
