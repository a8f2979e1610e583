//! Sustained QoS 1 events/s through the durable outbox (redb, fsync per
//! group commit) to mosquitto on loopback, next to a plain rumqttc QoS 1
//! publisher without an outbox, measured in the same run.
//!
//! `cargo bench --bench outbox`; BENCH_EVENTS (default 20000) sets the count.

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use stylecam::publish::mqtt::{Publisher, Settings};
use stylecam::publish::outbox::Limits;
use stylecam::publish::store::Store;
use stylecam::publish::{Message, Topics};
use stylecam::telemetry::Metrics;

fn payload(i: u64) -> Vec<u8> {
    // About the size of a real styles event.
    format!(
        r#"{{"v":1,"kind":"styles","device":"bench","camera":"cam0","seq":{i},"frame_seq":{i},"captured_at":"2026-11-26T22:11:50.123Z","tags":[{{"id":"casual","en":"casual","zh":"休闲","score":0.88}},{{"id":"lady","en":"lady","zh":"名媛/淑女","score":0.71}}],"added":["casual"],"removed":["lady"],"model":{{"name":"stylecam-demo","version":"0.1.0"}}}}"#
    )
    .into_bytes()
}

async fn through_outbox(port: u16, n: u64, dir: &std::path::Path) -> f64 {
    let settings = Settings {
        host: "127.0.0.1".into(),
        port,
        protocol: stylecam::publish::link::Protocol::V311,
        client_id: "bench-outbox".into(),
        keep_alive: Duration::from_secs(30),
        topics: Topics {
            prefix: "bench".into(),
            device: "outbox".into(),
        },
        credentials: None,
        tls: None,
        limits: Limits::count(1_000_000),
        flush_timeout: Duration::from_secs(60),
        health_interval: Duration::from_secs(3600),
        max_packet_bytes: 1 << 20,
    };
    let (store, restored) = Store::open(&dir.join("outbox.redb")).unwrap();
    let metrics = Arc::new(Metrics::default());
    let publisher = Publisher::start(settings, store, restored.pending, metrics.clone());
    let t = Instant::now();
    for i in 1..=n {
        publisher.send(Message {
            topic: "bench/outbox/cam0/styles".into(),
            payload: payload(i),
            reliable: true,
            retain: false,
            event: Some(("cam0".into(), i)),
        });
    }
    while metrics.snapshot().events_acked < n {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let secs = t.elapsed().as_secs_f64();
    publisher.close().await;
    n as f64 / secs
}

async fn plain(port: u16, n: u64) -> f64 {
    let mut opts = MqttOptions::new("bench-plain", "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_inflight(100);
    let (client, mut eventloop) = AsyncClient::new(opts, 1024);
    let t = Instant::now();
    tokio::spawn(async move {
        for i in 1..=n {
            client
                .publish(
                    "bench/plain/cam0/styles",
                    QoS::AtLeastOnce,
                    false,
                    payload(i),
                )
                .await
                .unwrap();
        }
        // Keep the client (and its channel) alive until the acks are in.
        tokio::time::sleep(Duration::from_secs(3600)).await;
    });
    let mut acked = 0;
    while acked < n {
        if let Event::Incoming(Packet::PubAck(_)) = eventloop.poll().await.unwrap() {
            acked += 1;
        }
    }
    n as f64 / t.elapsed().as_secs_f64()
}

fn main() {
    let n: u64 = std::env::var("BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let Some(mosquitto) = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
    else {
        println!("outbox benchmark: mosquitto is not installed (apt-get install mosquitto); nothing measured");
        return;
    };
    let mut broker = Command::new(mosquitto)
        .args(["-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let plain_rate = rt.block_on(plain(port, n));
    let outbox_rate = rt.block_on(through_outbox(port, n, dir.path()));
    println!(
        "## QoS 1 events/s to mosquitto on loopback, {n} events of ~{} bytes",
        payload(1).len()
    );
    println!("plain rumqttc publisher (no outbox): {plain_rate:>9.0} events/s");
    println!(
        "stylecam durable outbox (redb):      {outbox_rate:>9.0} events/s → ratio {:.2} of plain",
        outbox_rate / plain_rate
    );
    let _ = broker.kill();
    let _ = broker.wait();
}
