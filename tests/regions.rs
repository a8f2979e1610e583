//! Regions mode through the real daemon (`stylecam run`, a real mosquitto,
//! the demo bundle): each region is tagged like a frame of its own, its
//! `styles` events name it, the retained state lists every region.

use crate::common::*;
use std::time::Duration;

#[test]
fn regions_are_tagged_apart_and_named_in_their_events() {
    if !available("mosquitto", mosquitto_path().is_some()) {
        return;
    }
    let broker = Mosquitto::start(free_port());
    let dir = tempfile::tempdir().unwrap();
    // One frame: the astronaut photo on the left, the camera photo on the
    // right, so the two regions see different things.
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
    let photos = dir.path().join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    frame.save(photos.join("0.png")).unwrap();
    let cfg = dir.path().join("stylecam.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"device = "regions"
[model]
bundle = "{bundle}"
backend = "cpu"
[[cameras]]
name = "shop"
source = "files"
path = "{photos}"
loop = false
repeat = 6
fps = 20.0
analyze = "regions"
[[cameras.regions]]
name = "mannequin"
rect = [0.0, 0.0, 0.5, 1.0]
[[cameras.regions]]
name = "table"
rect = [0.5, 0.0, 1.0, 1.0]
[mqtt]
embedded = false
port = {port}
[outbox]
path = "{outbox}"
[metrics]
listen = ""
"#,
            bundle = repo().join("assets/demo-bundle").display(),
            photos = photos.display(),
            port = broker.port,
            outbox = dir.path().join("outbox.redb").display(),
        ),
    )
    .unwrap();
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
