//! The change gate through the real daemon (`stylecam run`, a real
//! mosquitto, the demo bundle): a still scene is inferred once and its
//! probabilities reused; a cut to another photo is inferred on its first
//! frame; smoothing, events and the payloads go on as if every frame had
//! been inferred.

use crate::common::*;
use std::time::Duration;

/// 10 frames of one photo, then 10 of another (a cut), gate on or off:
/// every frame's published probabilities, and the exit summary's counts.
fn run(preprocess_on: &str, gate: bool) -> (Vec<(u64, Vec<f64>)>, serde_json::Value) {
    let broker = Mosquitto::start(free_port());
    let dir = tempfile::tempdir().unwrap();
    let photos = dir.path().join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    for (i, f) in ["astronaut.jpg", "camera.png"].iter().enumerate() {
        let ext = f.rsplit('.').next().unwrap();
        std::fs::copy(
            repo().join("assets/photos").join(f),
            photos.join(format!("{i}.{ext}")),
        )
        .unwrap();
    }
    let device = format!("gate-{preprocess_on}-{gate}").replace('_', "-");
    let cfg = dir.path().join("stylecam.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"device = "{device}"
[model]
bundle = "{bundle}"
backend = "cpu"
[[cameras]]
name = "entrance"
source = "files"
path = "{photos}"
loop = false
repeat = 10
fps = 20.0
[pipeline]
preprocess_on = "{preprocess_on}"
[gate]
enabled = {gate}
threshold = 1.0
max_age_ms = 60000
[smoothing]
window = 3
enter_frames = 2
leave_frames = 2
[mqtt]
embedded = false
port = {port}
publish_frames = true
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
    let sub = Collector::start(
        broker.port,
        &format!("stylecam/{device}/#"),
        &format!("{device}-sub"),
    );
    let mut daemon = run_daemon(&cfg, &[]);
    let summary = exit_summary(&sub, 1);
    assert!(
        daemon.wait(Duration::from_secs(30)).success(),
        "{}",
        daemon.log_text()
    );
    let validator = schema();
    let all = sub.all();
    for r in &all {
        assert_valid(&validator, r);
    }
    let frames = kind(&all, "frame")
        .iter()
        .map(|r| {
            let p = r.json["probs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            (r.json["frame_seq"].as_u64().unwrap(), p)
        })
        .collect();
    assert!(!kind(&all, "styles").is_empty(), "events were published");
    (frames, summary["frames"].clone())
}

fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

#[test]
fn a_still_scene_is_inferred_once_and_a_cut_on_its_first_frame() {
    if !available("mosquitto", mosquitto_path().is_some()) {
        return;
    }
    let (ungated, counts) = run("capture_threads", false);
    assert_eq!(ungated.len(), 20, "every frame is published");
    assert_eq!(
        (counts["inferred"].as_u64(), counts["gated"].as_u64()),
        (Some(20), Some(0))
    );
    for preprocess_on in ["capture_threads", "inference_thread"] {
        let (gated, counts) = run(preprocess_on, true);
        let seqs: Vec<u64> = gated.iter().map(|f| f.0).collect();
        assert_eq!(
            seqs,
            (0..20).collect::<Vec<_>>(),
            "{preprocess_on}: every frame is published, in order"
        );
        // The first frame of each photo ran the backend, the other 9 reused it.
        assert_eq!(
            (
                counts["inferred"].as_u64(),
                counts["gated"].as_u64(),
                counts["captured"].as_u64()
            ),
            (Some(2), Some(18), Some(20)),
            "{preprocess_on}: {counts}"
        );
        for (g, u) in gated.iter().zip(&ungated) {
            assert!(
                max_diff(&g.1, &u.1) < 1e-6,
                "{preprocess_on}: frame {} differs from the ungated run's",
                g.0
            );
        }
        let cut = max_diff(&gated[9].1, &gated[10].1);
        assert!(
            cut > 1e-3,
            "{preprocess_on}: the cut changed the probabilities ({cut})"
        );
    }
}
