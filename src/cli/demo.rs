//! `stylecam demo`: the demo bundle and photos carried inside the binary,
//! an embedded broker, the daemon, and a subscriber that prints events.

use super::{start, start_embedded_broker};
use anyhow::{Context, Result};
use std::time::Duration;
use stylecam::config;
use stylecam::daemon;

/// The demo's own files, carried inside the binary so it runs from anywhere.
const DEMO_MODEL: &[u8] = include_bytes!("../../assets/demo-bundle/model.onnx");
const DEMO_MANIFEST: &str = include_str!("../../assets/demo-bundle/bundle.toml");
const DEMO_PHOTOS: [(&str, &[u8]); 2] = [
    (
        "astronaut.jpg",
        include_bytes!("../../assets/photos/astronaut.jpg"),
    ),
    (
        "camera.png",
        include_bytes!("../../assets/photos/camera.png"),
    ),
];

/// A free loopback port for the demo's broker.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(18830)
}

pub fn demo(seconds: u64) -> Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("stylecam-demo-")
        .tempdir()
        .context("creating a temporary folder")?;
    let bundle_dir = dir.path().join("bundle");
    let photos = dir.path().join("photos");
    std::fs::create_dir_all(&bundle_dir)?;
    std::fs::create_dir_all(&photos)?;
    std::fs::write(bundle_dir.join("model.onnx"), DEMO_MODEL)?;
    std::fs::write(bundle_dir.join("bundle.toml"), DEMO_MANIFEST)?;
    for (name, bytes) in DEMO_PHOTOS {
        std::fs::write(photos.join(name), bytes)?;
    }
    let port = free_port();
    let mut cfg: config::Config =
        toml::from_str(config::DEFAULT_TOML).expect("default config parses");
    cfg.device = "demo".into();
    cfg.model.bundle = bundle_dir;
    cfg.model.backend = config::BackendKind::Auto;
    cfg.cameras = vec![config::CameraConfig::files(
        "shop-floor",
        photos.to_str().context("temp path is not UTF-8")?,
    )];
    cfg.cameras[0].files_mut().expect("a files camera").repeat = 6;
    cfg.cameras[0].fps = 5.0;
    cfg.mqtt.port = port;
    cfg.outbox.path = dir.path().join("outbox.redb");
    // The demo starts the broker and its subscriber first, so no event is missed.
    cfg.mqtt.embedded = false;
    let cfg = cfg.validate()?;
    start_embedded_broker(&cfg)?;
    println!("stylecam demo: 2 sample photos as a camera at 5 fps, demo model (random weights, see README), embedded broker on 127.0.0.1:{port}.");
    println!(
        "A subscriber prints each tag event; the status page is http://{}/ ; Ctrl-C stops{}.\n",
        cfg.metrics.listen,
        if seconds > 0 {
            format!(" (or after {seconds} s)")
        } else {
            String::new()
        }
    );
    let topics = daemon::mqtt_settings(&cfg).topics;
    let (subscribed_tx, subscribed) = std::sync::mpsc::channel();
    std::thread::spawn(move || print_events(port, &topics.all(), subscribed_tx));
    subscribed
        .recv_timeout(Duration::from_secs(10))
        .context("the demo subscriber could not subscribe to the embedded broker")?;
    start(
        cfg,
        None,
        (seconds > 0).then(|| Duration::from_secs(seconds)),
    )
}

/// The demo's subscriber: an ordinary MQTT client, as an inventory system would be.
fn print_events(port: u16, filter: &str, subscribed: std::sync::mpsc::Sender<()>) {
    use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
    let mut opts = MqttOptions::new("stylecam-demo-subscriber", "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(30));
    let (client, mut connection) = Client::new(opts, 16);
    if client.subscribe(filter, QoS::AtLeastOnce).is_err() {
        return;
    }
    for ev in connection.iter() {
        if let Ok(Event::Incoming(Packet::SubAck(_))) = ev {
            let _ = subscribed.send(());
        }
        let Ok(Event::Incoming(Packet::Publish(p))) = ev else {
            continue;
        };
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&p.payload) else {
            continue;
        };
        match v["kind"].as_str() {
            Some("styles") => {
                let names: Vec<String> = v["tags"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|t| {
                        format!(
                            "{} {} ({:.2})",
                            t["en"].as_str().unwrap_or(""),
                            t["zh"].as_str().unwrap_or(""),
                            t["score"].as_f64().unwrap_or(0.0)
                        )
                    })
                    .collect();
                println!(
                    "event  {}  camera {} #{}  tags: {}",
                    p.topic,
                    v["camera"].as_str().unwrap_or(""),
                    v["seq"],
                    names.join(", ")
                );
                println!("       added {}  removed {}", v["added"], v["removed"]);
            }
            Some("status") => println!("status {}  {}", p.topic, v["state"].as_str().unwrap_or("")),
            _ => {}
        }
    }
}
