//! SIGHUP against a running daemon and a real mosquitto: a broken bundle
//! leaves the old pipeline serving and the health message says why; a good
//! new bundle is swapped in (events name the new model); the MQTT session
//! is never dropped (one `online` for the whole run).

use crate::common::*;
use std::path::Path;
use std::time::Duration;

fn copy_bundle(to: &Path, name: &str, version: &str) {
    std::fs::create_dir_all(to).unwrap();
    let from = repo().join("assets/demo-bundle");
    std::fs::copy(from.join("model.onnx"), to.join("model.onnx")).unwrap();
    let manifest = std::fs::read_to_string(from.join("bundle.toml"))
        .unwrap()
        .replacen("name = \"stylecam-demo\"", &format!("name = {name:?}"), 1)
        .replacen("version = \"0.1.0\"", &format!("version = {version:?}"), 1);
    std::fs::write(to.join("bundle.toml"), manifest).unwrap();
}

fn models(all: &[Received]) -> Vec<String> {
    kind(all, "styles")
        .iter()
        .map(|r| r.json["model"]["name"].as_str().unwrap().to_string())
        .collect()
}

fn last_health(all: &[Received]) -> Option<serde_json::Value> {
    kind(all, "health").last().map(|r| r.json.clone())
}

#[test]
fn sighup_keeps_serving_on_a_bad_bundle_and_swaps_in_a_good_one() {
    if !available("mosquitto", mosquitto_path().is_some()) {
        return;
    }
    let broker = Mosquitto::start(free_port());
    let sub = Collector::start(broker.port, "stylecam/it-reload/#", "it-sub-reload");
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (dir.path().join("bundle-old"), dir.path().join("bundle-new"));
    copy_bundle(&old, "shop-model", "1.0.0");
    copy_bundle(&new, "shop-model-v2", "2.0.0");
    let cfg = daemon_config(
        dir.path(),
        &photos(dir.path()),
        broker.port,
        "it-reload",
        "",
    );
    let text = with_bundle_lines(
        &std::fs::read_to_string(&cfg).unwrap(),
        &format!("bundle = \"{}\"", old.display()),
    )
    .replace("[mqtt]\n", "[mqtt]\nhealth_interval_s = 1\n");
    std::fs::write(&cfg, &text).unwrap();
    let mut daemon = run_daemon(&cfg, &[]);
    sub.wait_for(
        "events from the first model",
        Duration::from_secs(60),
        |all| models(all).len() >= 2,
    );

    // 1. A bundle whose ONNX no longer matches its hash: the reload fails.
    let manifest = std::fs::read_to_string(old.join("bundle.toml")).unwrap();
    let broken = manifest.replacen("sha256 = \"", "sha256 = \"00", 1);
    std::fs::write(old.join("bundle.toml"), broken).unwrap();
    let before = models(&sub.all()).len();
    daemon.signal("HUP");
    let all = sub.wait_for(
        "a health message naming the failed reload",
        Duration::from_secs(30),
        |all| {
            last_health(all).is_some_and(|h| {
                h["pipeline"]["last_reload_error"]
                    .as_str()
                    .is_some_and(|e| e.contains("sha256"))
            })
        },
    );
    let h = last_health(&all).unwrap();
    eprintln!("after the bad reload: {}", h["pipeline"]);
    assert_eq!(h["pipeline"]["reload_failures"], 1);
    assert_eq!(h["pipeline"]["reloads"], 0);
    assert_eq!(h["pipeline"]["model"], "shop-model 1.0.0");
    assert_valid(&schema(), kind(&all, "health").last().unwrap());
    // Per-camera counters and per-stage latency travel in the same message.
    let cam = &h["cameras"][0];
    assert_eq!(cam["name"], "entrance");
    assert_eq!(cam["state"], "streaming");
    assert!(
        cam["captured"].as_u64() > Some(0) && cam["fps"].as_f64() > Some(0.0),
        "{cam}"
    );
    assert!(
        h["latency_ms"]["infer"]["count"].as_u64() > Some(0),
        "{}",
        h["latency_ms"]
    );
    assert!(h["latency_ms"]["infer"]["p99"].as_f64() >= h["latency_ms"]["infer"]["p50"].as_f64());
    let all = sub.wait_for(
        "events after the failed reload",
        Duration::from_secs(30),
        |all| models(all).len() >= before + 3,
    );
    assert!(
        models(&all)[before..].iter().all(|m| m == "shop-model"),
        "the old model keeps serving: {:?}",
        &models(&all)[before..]
    );
    assert_eq!(
        daemon.log_text().matches("reload failed").count(),
        1,
        "logged once"
    );

    // 1b. A config that fails validation: refused the same way, with the key.
    std::fs::write(old.join("bundle.toml"), &manifest).unwrap();
    std::fs::write(&cfg, text.replace("[model]\n", "[model]\nmax_batch = 0\n")).unwrap();
    daemon.signal("HUP");
    let all = sub.wait_for(
        "a health message naming the bad key",
        Duration::from_secs(30),
        |all| {
            last_health(all).is_some_and(|h| {
                h["pipeline"]["last_reload_error"]
                    .as_str()
                    .is_some_and(|e| e.contains("model.max_batch"))
            })
        },
    );
    let h = last_health(&all).unwrap();
    assert_eq!(h["pipeline"]["reload_failures"], 2);
    assert_eq!(
        h["pipeline"]["model"], "shop-model 1.0.0",
        "still the old model"
    );

    // 2. A good new bundle: swapped in; events name it.
    std::fs::write(
        &cfg,
        text.replace(
            &format!("bundle = \"{}\"", old.display()),
            &format!("bundle = \"{}\"", new.display()),
        ),
    )
    .unwrap();
    daemon.signal("HUP");
    let all = sub.wait_for(
        "events from the new model",
        Duration::from_secs(60),
        |all| models(all).iter().filter(|m| *m == "shop-model-v2").count() >= 2,
    );
    let names = models(&all);
    let first_new = names.iter().position(|m| m == "shop-model-v2").unwrap();
    assert!(
        names[first_new..].iter().all(|m| m == "shop-model-v2"),
        "after the swap only the new model: {names:?}"
    );
    let all = sub.wait_for("health after the reload", Duration::from_secs(30), |all| {
        last_health(all).is_some_and(|h| h["pipeline"]["reloads"] == 1)
    });
    let h = last_health(&all).unwrap();
    assert_eq!(h["pipeline"]["model"], "shop-model-v2 2.0.0");
    assert!(h["pipeline"]["last_reload_error"].is_null(), "{h}");

    // Event numbers went on across the swap, one by one.
    let seqs: Vec<u64> = kind(&all, "styles")
        .iter()
        .map(|r| r.json["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "seq goes on"
    );
    daemon.signal("TERM");
    assert!(
        daemon.wait(Duration::from_secs(20)).success(),
        "{}",
        daemon.log_text()
    );
    // One session for the whole run: `online` once, no `offline` in between.
    let statuses: Vec<String> = kind(&sub.all(), "status")
        .iter()
        .map(|r| r.json["state"].as_str().unwrap().to_string())
        .collect();
    eprintln!("status messages seen: {statuses:?}");
    assert_eq!(statuses.first().map(String::as_str), Some("online"));
    assert_eq!(
        statuses.iter().filter(|s| *s == "online").count(),
        1,
        "the MQTT session was never dropped: {statuses:?}"
    );
    assert!(!statuses[..statuses.len() - 1].contains(&"offline".to_string()));
}
