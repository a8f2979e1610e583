//! The loss and wedge paths a review of main found (issue 24, item 2),
//! each against real parts: mosquitto, the real binary, a real full
//! filesystem (a small tmpfs), the publisher in-process where the test
//! needs to see its inside. Each test failed before its fix.

use crate::common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use stylecam::publish::link::Protocol;
use stylecam::publish::mqtt::{Publisher, Settings};
use stylecam::publish::outbox::Limits;
use stylecam::publish::store::Store;
use stylecam::publish::{Message, Topics};
use stylecam::telemetry::Metrics;

fn settings(port: u16, device: &str) -> Settings {
    Settings {
        host: "127.0.0.1".into(),
        port,
        protocol: Protocol::V311,
        client_id: format!("it-{device}"),
        keep_alive: Duration::from_secs(5),
        topics: Topics {
            prefix: "stylecam".into(),
            device: device.into(),
        },
        credentials: None,
        tls: None,
        limits: Limits::count(100_000),
        flush_timeout: Duration::from_secs(10),
        health_interval: Duration::from_secs(1),
        max_packet_bytes: 1 << 20,
    }
}

fn event(device: &str, camera: &str, seq: u64, pad: usize) -> Message {
    let payload = serde_json::json!({
        "v": 1, "kind": "styles", "device": device, "camera": camera,
        "seq": seq, "pad": "x".repeat(pad),
    });
    Message {
        topic: format!("stylecam/{device}/{camera}/styles"),
        payload: serde_json::to_vec(&payload).unwrap(),
        reliable: true,
        retain: false,
        event: Some((camera.to_string(), seq)),
    }
}

/// The daemon's publisher, in-process on a runtime of its own, over a
/// fresh outbox in `dir` (the runtime must outlive it).
fn start_publisher(
    s: Settings,
    dir: &std::path::Path,
    metrics: &Arc<Metrics>,
) -> (tokio::runtime::Runtime, Publisher) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (store, restored) = Store::open(&dir.join("outbox.redb")).unwrap();
    let publisher = {
        let _in = rt.enter();
        Publisher::start(s, store, restored.pending, metrics.clone())
    };
    (rt, publisher)
}

/// 2d: rumqttc's 10 KiB default packet limit. The health message of a box
/// with 60 cameras (over 10 KiB) broke the connection on every attempt and
/// never arrived; an oversized QoS 1 message at the head of the queue
/// looped forever. Now the health message arrives, and a message over
/// `mqtt.max_packet_bytes` is refused without blocking the ones after it.
#[test]
fn sixty_cameras_health_arrives_and_an_oversized_event_blocks_nothing() {
    if !available("mosquitto", mosquitto_path().is_some()) {
        return;
    }
    let broker = Mosquitto::start(free_port());
    let sub = Collector::start(broker.port, "stylecam/it-sixty/#", "it-sub-sixty");
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(Metrics::default());
    for i in 0..60 {
        metrics
            .camera(&format!("store-aisle-{i:02}-ceiling"))
            .captured("streaming");
    }
    let mut s = settings(broker.port, "it-sixty");
    s.max_packet_bytes = 64 * 1024;
    let (rt, publisher) = start_publisher(s, dir.path(), &metrics);
    publisher.send(event("it-sixty", "cam", 1, 10));
    // Over the 64 KiB limit: refused when queued, never sent.
    publisher.send(event("it-sixty", "cam", 2, 100 * 1024));
    publisher.send(event("it-sixty", "cam", 3, 10));
    let all = sub.wait_for(
        "the health message and events 1 and 3",
        Duration::from_secs(30),
        |all| all.iter().any(|r| r.json["kind"] == "health") && seqs_of_all(all).contains(&3),
    );
    let health = all.iter().find(|r| r.json["kind"] == "health").unwrap();
    let cameras = health.json["cameras"].as_array().unwrap().len();
    let size = serde_json::to_vec(&health.json).unwrap().len();
    assert_eq!(cameras, 60);
    assert!(
        size > 10 * 1024,
        "the health message is over rumqttc's old 10 KiB default: {size} bytes"
    );
    assert_eq!(seqs_of_all(&all), BTreeSet::from([1, 3]));
    let snap = metrics.snapshot();
    assert_eq!(
        snap.events_dropped, 1,
        "the oversized event is counted as dropped"
    );
    assert_eq!(snap.mqtt_connection_errors, 0, "the session never broke");
    rt.block_on(publisher.close());
    eprintln!("60-camera health message: {size} bytes, delivered");
}

fn seqs_of_all(all: &[Received]) -> BTreeSet<u64> {
    all.iter()
        .filter(|r| r.json["kind"] == "styles")
        .filter_map(|r| r.json["seq"].as_u64())
        .collect()
}

/// 2c: PUBACKs were matched to messages by the order of hand-off, and
/// requests queued for a connection that dropped were written on the next
/// one, so an acknowledgement could remove a message that was never
/// delivered. A stream of 3000 events through ten cuts of a live link,
/// each while requests are queued: every event arrives, and the outbox
/// ends empty.
#[test]
fn cuts_with_requests_in_flight_lose_no_event() {
    if !available("mosquitto", mosquitto_path().is_some()) {
        return;
    }
    let broker = Mosquitto::start(free_port());
    let port = free_port();
    let proxy = Proxy::start(port, broker.port);
    let sub = Collector::start(broker.port, "stylecam/it-cuts/#", "it-sub-cuts");
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(Metrics::default());
    let (rt, publisher) = start_publisher(settings(port, "it-cuts"), dir.path(), &metrics);
    // A steady stream (about 500 events/s) from another thread while a
    // live link is cut ten times: hand-offs race with every disconnect.
    let total = 3000u64;
    let cuts = 10;
    let sender = {
        let publisher = Arc::new(publisher);
        let p = publisher.clone();
        let h = std::thread::spawn(move || {
            for seq in 1..=total {
                p.send(event("it-cuts", "cam", seq, 200));
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        for cut in 0..cuts {
            // Each cut breaks a connection that is up.
            let t = Instant::now();
            while !metrics.mqtt_connected() {
                assert!(t.elapsed() < Duration::from_secs(30), "no reconnect");
                std::thread::sleep(Duration::from_millis(10));
            }
            std::thread::sleep(Duration::from_millis(50 + 13 * cut));
            proxy.cut();
            std::thread::sleep(Duration::from_millis(60));
            proxy.restore();
        }
        h.join().unwrap();
        publisher
    };
    let t = Instant::now();
    while seqs_of_all(&sub.all()).len() < total as usize && t.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(200));
    }
    let got = seqs_of_all(&sub.all());
    let missing: Vec<u64> = (1..=total).filter(|s| !got.contains(s)).take(20).collect();
    assert!(
        missing.is_empty(),
        "{} of {total} events never arrived, e.g. {missing:?}",
        total as usize - got.len()
    );
    let t = Instant::now();
    while metrics.snapshot().outbox_pending > 0 && t.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        metrics.snapshot().outbox_pending,
        0,
        "every message acknowledged"
    );
    let errors = metrics.snapshot().mqtt_connection_errors;
    assert!(
        errors >= cuts,
        "the link really broke {cuts} times ({errors} connection errors)"
    );
    let publisher = Arc::try_unwrap(sender).ok().expect("the sender is done");
    rt.block_on(publisher.close());
    eprintln!("{total} events through {errors} broken connections: all delivered");
}

/// 2b: an event's `seq` was written only with its own message. The disk
/// stops taking writes while the broker is up (a 4 KiB file-size limit
/// set on the running daemon with prlimit: every write into the outbox
/// file fails with EFBIG, as with ENOSPC), events go on being numbered and
/// delivered from memory, the daemon is killed and started again with room
/// on the disk: it numbered from the last number on disk, in the same
/// epoch, and subscribers discarded its new events as repeats. Now every
/// (epoch, seq) names one event.
#[test]
fn a_full_disk_and_a_restart_never_repeat_a_seq() {
    let has_prlimit = Command::new("prlimit").arg("--version").output().is_ok();
    if !available(
        "mosquitto and prlimit",
        mosquitto_path().is_some() && has_prlimit,
    ) {
        return;
    }
    let broker = Mosquitto::start(free_port());
    let sub = Collector::start(broker.port, "stylecam/it-full-seq/#", "it-sub-full-seq");
    let dir = tempfile::tempdir().unwrap();
    let cfg = daemon_config(
        dir.path(),
        &photos(dir.path()),
        broker.port,
        "it-full-seq",
        "",
    );
    let mut daemon = run_daemon(&cfg, &[]);
    sub.wait_for("first events", Duration::from_secs(60), |all| {
        seqs_of_all(all).len() >= 3
    });
    let limit = Command::new("prlimit")
        .arg(format!("--pid={}", daemon.child.id()))
        .arg("--fsize=4096:4096")
        .output()
        .unwrap();
    assert!(limit.status.success(), "prlimit: {}", output_text(&limit));
    wait_log(&daemon, "kept in memory", 1, Duration::from_secs(60));
    let decided = daemon.log_text().matches("tags [").count();
    // Delivered from memory while the disk takes nothing, and more decided.
    sub.wait_for(
        "events from the full-disk episode",
        Duration::from_secs(60),
        |all| seqs_of_all(all).len() >= decided + 4,
    );
    daemon.child.kill().unwrap();
    daemon.wait(Duration::from_secs(5));
    let first_log = daemon.log_text();

    let mut daemon = run_daemon(&cfg, &[]);
    let first_run = sub.all().len();
    sub.wait_for("events after the restart", Duration::from_secs(60), |all| {
        all.len() > first_run + 10
    });
    daemon.signal("TERM");
    daemon.wait(Duration::from_secs(20));

    // Each (epoch, seq) names one event: same frame, same time, same tags.
    let mut by_key: BTreeMap<(String, u64), BTreeSet<String>> = BTreeMap::new();
    for r in sub.all().iter().filter(|r| r.json["kind"] == "styles") {
        let key = (
            r.json["epoch"].as_str().unwrap().to_string(),
            r.json["seq"].as_u64().unwrap(),
        );
        let what = format!(
            "{} {} {}",
            r.json["frame_seq"], r.json["captured_at"], r.json["tags"]
        );
        by_key.entry(key).or_default().insert(what);
    }
    let repeated: Vec<_> = by_key.iter().filter(|(_, v)| v.len() > 1).take(3).collect();
    assert!(
        repeated.is_empty(),
        "a seq named two events: {repeated:#?}\nfirst run:\n{first_log}\nsecond run:\n{}",
        daemon.log_text()
    );
    let epochs: BTreeSet<&String> = by_key.keys().map(|(e, _)| e).collect();
    assert_eq!(epochs.len(), 2, "the restart began a new epoch");
    assert!(
        daemon.log_text().contains("new event epoch"),
        "{}",
        daemon.log_text()
    );
    eprintln!(
        "{} events in two epochs, no (epoch, seq) repeated",
        by_key.len()
    );
}

/// 2k: `systemctl reload` failed with 203/EXEC on a minimal Debian: the
/// unit's `ExecReload=/bin/kill` comes with procps, which the package does
/// not depend on. Every program a unit runs is stylecam itself or comes
/// with an Essential package.
#[test]
fn every_program_the_units_run_is_ours_or_essential() {
    let has_dpkg = Command::new("dpkg-query").arg("--version").output().is_ok();
    if !available("dpkg-query (Debian)", has_dpkg) {
        return;
    }
    for unit in [
        "systemd/stylecam.service",
        "systemd/stylecam-engine.service",
    ] {
        let text = std::fs::read_to_string(repo().join(unit)).unwrap();
        for line in text.lines().filter(|l| l.starts_with("Exec")) {
            let (_, command) = line.split_once('=').unwrap();
            let program = command
                .trim_start_matches(['-', '@', '+', '!', ':'])
                .split_whitespace()
                .next()
                .unwrap();
            if program == "/usr/bin/stylecam" {
                continue;
            }
            let real = std::fs::canonicalize(program)
                .unwrap_or_else(|e| panic!("{unit}: {line}: {program}: {e}"));
            // dpkg knows a merged-/usr file by the path its package ships.
            let real = real.to_string_lossy().into_owned();
            let candidates = [
                program.to_string(),
                real.clone(),
                real.trim_start_matches("/usr").to_string(),
            ];
            let package = candidates
                .iter()
                .find_map(|path| {
                    let out = Command::new("dpkg-query")
                        .arg("-S")
                        .arg(path)
                        .output()
                        .ok()?;
                    let text = String::from_utf8_lossy(&out.stdout).into_owned();
                    text.lines()
                        .filter(|l| !l.starts_with("diversion"))
                        .find_map(|l| {
                            l.split_once(": ")
                                .map(|(p, _)| p.split(':').next().unwrap().to_string())
                        })
                })
                .unwrap_or_else(|| panic!("{unit}: {program} ({real}) belongs to no package"));
            let essential = Command::new("dpkg-query")
                .args(["-W", "-f", "${Essential}", &package])
                .output()
                .unwrap();
            assert_eq!(
                String::from_utf8_lossy(&essential.stdout),
                "yes",
                "{unit}: `{line}` runs {program} from {package}, which a minimal Debian may lack"
            );
        }
    }
}

/// 2k: under the unit's `RUST_LOG=info` the embedded broker (rumqttd)
/// wrote about five journal lines per MQTT message. Its lines stay out of
/// the log unless RUST_LOG names it.
#[test]
fn the_embedded_broker_does_not_log_every_message() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = daemon_config(dir.path(), &photos(dir.path()), port, "it-quiet", "");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("embedded = false", "embedded = true");
    std::fs::write(&cfg, text).unwrap();
    let mut daemon = run_daemon(&cfg, &[("RUST_LOG", "info")]);
    wait_log(&daemon, "tags [", 12, Duration::from_secs(90));
    daemon.signal("TERM");
    daemon.wait(Duration::from_secs(20));
    let log = daemon.log_text();
    let events = log.matches("tags [").count();
    let lines = log.lines().count();
    // Ours: a line per event and a few dozen at start and stop; rumqttd's
    // tracing added about ten per event (its event and state messages).
    assert!(
        lines < 2 * events + 60,
        "{lines} log lines for {events} events:\n{log}"
    );
}
