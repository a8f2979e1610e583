//! Regions mode through the real daemon (`stylecam run`, a real mosquitto,
//! the demo bundle): each region is tagged like a frame of its own, its
//! `styles` events name it, the retained state lists every region.

use crate::common::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A frame with the astronaut photo on the left and the camera photo on
/// the right (so two regions see different things), in `dir/photos`.
fn two_photo_frame(dir: &Path) -> PathBuf {
    let a = image::open(repo().join("assets/photos/astronaut.jpg"))
        .unwrap()
        .into_rgb8();
    let b = image::open(repo().join("assets/photos/camera.png"))
        .unwrap()
        .into_rgb8();
    let a = image::imageops::resize(&a, 256, 256, image::imageops::FilterType::Triangle);
    let b = image::imageops::resize(&b, 256, 256, image::imageops::FilterType::Triangle);
    let mut frame = image::RgbImage::new(512, 256);
    image::imageops::replace(&mut frame, &a, 0, 0);
    image::imageops::replace(&mut frame, &b, 256, 0);
    let photos = dir.join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    frame.save(photos.join("0.png")).unwrap();
    photos
}

const TWO_REGIONS: &str = r#"analyze = "regions"
[[cameras.regions]]
name = "mannequin"
rect = [0.0, 0.0, 0.5, 1.0]
[[cameras.regions]]
name = "table"
rect = [0.5, 0.0, 1.0, 1.0]
"#;

/// One camera (`source` lines, then `analysis` lines) over the demo bundle.
fn config(dir: &Path, device: &str, port: u16, source: &str, analysis: &str) -> PathBuf {
    let cfg = dir.join(format!("{device}.toml"));
    std::fs::write(
        &cfg,
        format!(
            r#"device = "{device}"
[model]
bundle = "{bundle}"
backend = "cpu"
[[cameras]]
name = "shop"
source = "files"
path = "{photos}"
{source}
{analysis}
[mqtt]
embedded = false
port = {port}
[outbox]
path = "{outbox}"
[metrics]
listen = ""
"#,
            bundle = repo().join("assets/demo-bundle").display(),
            photos = dir.join("photos").display(),
            outbox = dir.join(format!("{device}.redb")).display(),
        ),
    )
    .unwrap();
    cfg
}

#[test]
fn regions_are_tagged_apart_and_named_in_their_events() {
    if !available("mosquitto", mosquitto_path().is_some()) {
        return;
    }
    let broker = Mosquitto::start(free_port());
    let dir = tempfile::tempdir().unwrap();
    two_photo_frame(dir.path());
    let cfg = config(
        dir.path(),
        "regions",
        broker.port,
        "loop = false\nrepeat = 6\nfps = 20.0",
        TWO_REGIONS,
    );
    let sub = Collector::start(broker.port, "stylecam/regions/#", "regions-sub");
    let mut daemon = run_daemon(&cfg, &[]);
    let summary = exit_summary(&sub, 1);
    assert!(
        daemon.wait(Duration::from_secs(30)).success(),
        "{}",
        daemon.log_text()
    );
    let all = sub.all();
    let validator = schema();
    for r in &all {
        assert_valid(&validator, r);
    }
    assert_eq!(
        summary["frames"]["inferred"], 12,
        "two regions × 6 frames: {summary}"
    );
    let styles = kind(&all, "styles");
    let named: std::collections::BTreeMap<String, Vec<String>> = styles
        .iter()
        .map(|r| {
            let tags = r.json["tags"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["id"].as_str().unwrap().to_string())
                .collect();
            (
                r.json["region"]
                    .as_str()
                    .expect("a region's event names it")
                    .to_string(),
                tags,
            )
        })
        .collect();
    assert_eq!(named.keys().collect::<Vec<_>>(), ["mannequin", "table"]);
    assert_ne!(
        named["mannequin"], named["table"],
        "the regions saw different photos"
    );
    let seqs: Vec<u64> = styles
        .iter()
        .map(|r| r.json["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    let state = kind(&all, "state").last().unwrap().json.clone();
    let regions: Vec<&str> = state["regions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(regions, ["mannequin", "table"], "{state}");
}

fn region_of(r: &Received) -> Option<&str> {
    r.json["region"].as_str()
}

/// SIGHUP applies `analyze` and the regions like the rest of the pipeline:
/// a camera in frame mode turns into two named regions, then one of them is
/// renamed; the MQTT session stays (one `online`).
#[test]
fn a_reload_applies_the_mode_and_the_regions() {
    if !available("mosquitto", mosquitto_path().is_some()) {
        return;
    }
    let broker = Mosquitto::start(free_port());
    let dir = tempfile::tempdir().unwrap();
    two_photo_frame(dir.path());
    let source = "loop = true\nfps = 10.0";
    let cfg = config(dir.path(), "rl-regions", broker.port, source, "");
    let sub = Collector::start(broker.port, "stylecam/rl-regions/#", "rl-regions-sub");
    let mut daemon = run_daemon(&cfg, &[]);
    let styles = |all: &[Received]| -> Vec<Option<String>> {
        kind(all, "styles")
            .iter()
            .map(|r| region_of(r).map(str::to_string))
            .collect()
    };
    sub.wait_for("a whole-frame event", Duration::from_secs(60), |all| {
        !styles(all).is_empty()
    });
    assert!(styles(&sub.all()).iter().all(Option::is_none));

    let two = config(dir.path(), "rl-regions", broker.port, source, TWO_REGIONS);
    assert_eq!(two, cfg);
    daemon.signal("HUP");
    sub.wait_for("both regions' events", Duration::from_secs(60), |all| {
        let s = styles(all);
        ["mannequin", "table"]
            .iter()
            .all(|n| s.contains(&Some(n.to_string())))
    });

    config(
        dir.path(),
        "rl-regions",
        broker.port,
        source,
        &TWO_REGIONS.replace("\"table\"", "\"display\""),
    );
    daemon.signal("HUP");
    let all = sub.wait_for("the renamed region", Duration::from_secs(60), |all| {
        kind(all, "state").last().is_some_and(|r| {
            r.json["regions"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x["id"] == "display"))
        })
    });
    daemon.signal("TERM");
    assert!(
        daemon.wait(Duration::from_secs(30)).success(),
        "{}",
        daemon.log_text()
    );
    let validator = schema();
    for r in &all {
        assert_valid(&validator, r);
    }
    let state = kind(&all, "state").last().unwrap().json.clone();
    let ids: Vec<&str> = state["regions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["mannequin", "display"], "{state}");
    let online = all
        .iter()
        .filter(|r| r.json["kind"] == "status" && r.json["state"] == "online")
        .count();
    assert_eq!(online, 1, "the MQTT session stays through reloads");
    let log = daemon.log_text();
    assert_eq!(log.matches("reloaded").count(), 2, "{log}");
}
