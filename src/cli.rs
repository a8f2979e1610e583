//! Subcommand implementations: the CLI edge, where errors become
//! `anyhow` with context.

use anyhow::{bail, Context, Result};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use stylecam::bundle::Bundle;
use stylecam::config::{self, Validated};
use stylecam::daemon::{self, metrics::Metrics};
use stylecam::styles::labels::Rows;
use stylecam::styles::{
    metrics as f2, search, DecisionParams, LabelTable, RelationMatrix, TableKind,
};

fn load_bundle(cfg: &Validated) -> Result<Bundle> {
    Bundle::load(&cfg.model.bundle).context("config key `model.bundle`")
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// Everything before the first frame: config, bundle, backend, cameras,
/// embedded broker. Any failure here exits before a camera streams.
fn start(cfg: Validated, deadline: Option<Duration>) -> Result<()> {
    let bundle = load_bundle(&cfg)?;
    let backend = stylecam::infer::select(&cfg.model.backend, &bundle)
        .context("config key `model.backend`")?;
    log::info!(
        "model {} {} ({} classes) on the {} backend",
        bundle.manifest.name,
        bundle.manifest.version,
        bundle.manifest.classes.len(),
        backend.name()
    );
    let sources = daemon::open_cameras(&cfg)?;
    let rt = runtime()?;
    if cfg.mqtt.embedded {
        start_embedded_broker(&cfg)?;
    }
    let metrics = Arc::new(Metrics::default());
    let snapshot = rt.block_on(async {
        let stop = async {
            match deadline {
                Some(d) => {
                    tokio::select! { _ = shutdown_signal() => {}, _ = tokio::time::sleep(d) => {} }
                }
                None => shutdown_signal().await,
            }
        };
        daemon::run(&cfg, bundle, backend, sources, metrics, stop).await
    })?;
    log::info!("stopped. {snapshot}");
    Ok(())
}

#[cfg(feature = "embedded-broker")]
fn start_embedded_broker(cfg: &Validated) -> Result<()> {
    stylecam::publish::broker::start(&cfg.mqtt.host, cfg.mqtt.port)?;
    Ok(())
}

#[cfg(not(feature = "embedded-broker"))]
fn start_embedded_broker(_cfg: &Validated) -> Result<()> {
    bail!("config key `mqtt.embedded` = true, but this binary was built without the `embedded-broker` feature. Fix: set mqtt.embedded = false and point mqtt.host/mqtt.port at a broker")
}

pub fn run(config_path: Option<&Path>) -> Result<()> {
    let cfg = config::load_validated(config_path)?;
    start(cfg, None)
}

pub fn check_config(file: &Path) -> Result<()> {
    let cfg = config::load_validated(Some(file))?;
    let bundle = load_bundle(&cfg)?;
    println!(
        "{}: OK ({} camera(s); bundle {} {} with {} classes; MQTT {}:{}{})",
        file.display(),
        cfg.cameras.len(),
        bundle.manifest.name,
        bundle.manifest.version,
        bundle.manifest.classes.len(),
        cfg.mqtt.host,
        cfg.mqtt.port,
        if cfg.mqtt.embedded {
            ", embedded broker"
        } else {
            ""
        }
    );
    Ok(())
}

fn read_pair(
    preds: &Path,
    labels: &Path,
    bundle: Option<&Bundle>,
) -> Result<(Rows, Rows, LabelTable)> {
    let taxonomy = bundle
        .map(|b| b.manifest.classes.clone())
        .unwrap_or_else(stylecam::styles::Taxonomy::jd2018);
    let p = LabelTable::read(preds, &taxonomy, TableKind::Predictions)?;
    let l = LabelTable::read(labels, &taxonomy, TableKind::Labels)?;
    let (pr, lb) = p.join(&l)?;
    Ok((pr, lb, l))
}

pub fn tune(
    preds: &Path,
    labels: &Path,
    bundle_dir: &Path,
    relation_labels: Option<&Path>,
    dry_run: bool,
) -> Result<()> {
    let mut bundle = Bundle::load(bundle_dir)?;
    let (p, l, label_table) = read_pair(preds, labels, Some(&bundle))?;
    let c = bundle.manifest.classes.len();
    let relation_rows = match relation_labels {
        Some(path) => LabelTable::read(path, &bundle.manifest.classes, TableKind::Labels)?.rows,
        None => label_table.rows,
    };
    let r = RelationMatrix::from_labels(relation_rows.iter().map(Vec::as_slice), c);
    eprintln!("tuning on {} validation images, {} classes…", p.len(), c);
    let report = search::tune(&p, &l, r);
    print!("{}", report.table());
    let best = report.best();
    println!("best: {} (macro F2 {:.4})", best.name, best.macro_f2);
    if dry_run {
        println!(
            "--dry-run: {} not changed",
            bundle_dir.join("bundle.toml").display()
        );
    } else {
        bundle.write_decision(best.params.clone())?;
        println!(
            "wrote [decision] to {}",
            bundle_dir.join("bundle.toml").display()
        );
    }
    Ok(())
}

pub fn eval(preds: &Path, labels: &Path, bundle_dir: Option<&Path>) -> Result<()> {
    let bundle = bundle_dir.map(Bundle::load).transpose()?;
    let (p, l, _) = read_pair(preds, labels, bundle.as_ref())?;
    let taxonomy = bundle
        .as_ref()
        .map(|b| b.manifest.classes.clone())
        .unwrap_or_else(stylecam::styles::Taxonomy::jd2018);
    let decision = bundle
        .as_ref()
        .map(Bundle::decision)
        .unwrap_or_else(|| DecisionParams::untuned(taxonomy.len()));
    if decision.classes() != taxonomy.len() {
        bail!(
            "the bundle's decision has {} classes, the taxonomy {}",
            decision.classes(),
            taxonomy.len()
        );
    }
    let predicted: Vec<Vec<usize>> = p.iter().map(|row| decision.decide(row).labels).collect();
    let per_class = f2::per_class_f2(&predicted, &l, taxonomy.len());
    println!("{:<14} {:>9} {:>7}", "class", "positives", "F2");
    for (a, class) in taxonomy.0.iter().enumerate() {
        let pos = l.iter().filter(|r| r[a] >= 0.5).count();
        println!("{:<14} {:>9} {:>7.4}", class.id, pos, per_class[a]);
    }
    println!(
        "macro F2 (challenge score): {:.4}",
        f2::macro_f2(&predicted, &l, taxonomy.len())
    );
    println!(
        "per-sample F2:              {:.4}",
        f2::per_sample_f2(&predicted, &l)
    );
    println!("images: {}", p.len());
    Ok(())
}

/// The demo's own files, carried inside the binary so it runs from anywhere.
const DEMO_MODEL: &[u8] = include_bytes!("../assets/demo-bundle/model.onnx");
const DEMO_MANIFEST: &str = include_str!("../assets/demo-bundle/bundle.toml");
const DEMO_PHOTOS: [(&str, &[u8]); 2] = [
    (
        "astronaut.jpg",
        include_bytes!("../assets/photos/astronaut.jpg"),
    ),
    ("camera.png", include_bytes!("../assets/photos/camera.png")),
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
    cfg.model.backend = "cpu".into();
    cfg.cameras = vec![config::CameraConfig::files(
        "shop-floor",
        photos.to_str().context("temp path is not UTF-8")?,
    )];
    cfg.cameras[0].repeat = 6;
    cfg.cameras[0].fps = 5.0;
    cfg.mqtt.port = port;
    // The demo starts the broker and its subscriber first, so no event is missed.
    cfg.mqtt.embedded = false;
    let cfg = cfg.validate()?;
    start_embedded_broker(&cfg)?;
    println!("stylecam demo: 2 sample photos as a camera at 5 fps, demo model (random weights, see README), embedded broker on 127.0.0.1:{port}.");
    println!(
        "A subscriber prints each tag event; Ctrl-C stops{}.\n",
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
    start(cfg, (seconds > 0).then(|| Duration::from_secs(seconds)))
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
