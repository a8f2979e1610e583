//! `stylecam run` with `[collect]` at its limits: the size bound and the
//! retention while collecting, a full disk (a real tmpfs), a reload.

use super::daemon::{config, crops, frames, setup, start};
use super::{folder_bytes, names, noise_png, sidecar, wait_until, Tmpfs};
use crate::common::*;
use std::time::{Duration, SystemTime};

#[test]
fn the_folder_stays_under_max_mib_and_retention_while_collecting() {
    let Some(s) = setup() else { return };
    let f = s.work.path().join("frames");
    frames(&s.data, &f, 150, None);
    let state = s.work.path().join("state");
    let dir = state.join("stylecam-collect");
    std::fs::create_dir_all(&dir).unwrap();
    // 15.5 MiB of crops from an hour ago (noise: incompressible), and three
    // past the 30 days' retention.
    let now = SystemTime::now();
    let mut old = vec![];
    let mut i = 0u64;
    while folder_bytes(&dir) < 31 << 19 {
        let stem = format!("walkway-old-{i:04}");
        let at = now - Duration::from_secs(3600) + Duration::from_millis(i);
        std::fs::write(dir.join(format!("{stem}.png")), noise_png(i, 224)).unwrap();
        std::fs::write(
            dir.join(format!("{stem}.json")),
            serde_json::to_vec(&sidecar(&stem, at)).unwrap(),
        )
        .unwrap();
        old.push(stem);
        i += 1;
    }
    for j in 0..3 {
        let stem = format!("walkway-expired-{j}");
        let at = now - Duration::from_secs(40 * 86_400);
        std::fs::write(dir.join(format!("{stem}.png")), noise_png(900 + j, 8)).unwrap();
        std::fs::write(
            dir.join(format!("{stem}.json")),
            serde_json::to_vec(&sidecar(&stem, at)).unwrap(),
        )
        .unwrap();
    }
    let port = free_port();
    let collect = "enabled = true\nmax_mib = 16\nmax_per_person = 100\nmin_interval_ms = 0";
    let people =
        "[cameras.people]\nclassify_every_ms = 100\nsettle_after = 0\nmax_classifications = 100";
    let cfg = config(
        &s,
        &state,
        &f,
        people,
        collect,
        &format!("127.0.0.1:{port}"),
    );
    let mut d = start(&cfg);
    let limit = 16u64 << 20;
    let (mut max_seen, mut size_deleted, mut retention) = (0, 0.0, 0.0);
    while d.child.try_wait().unwrap().is_none() {
        max_seen = max_seen.max(folder_bytes(&dir));
        if let Some(v) = metric(port, "stylecam_collect_deleted_total{reason=\"size\"}") {
            size_deleted = f64::max(size_deleted, v);
        }
        let r = metric(port, "stylecam_collect_deleted_total{reason=\"retention\"}");
        retention = f64::max(retention, r.unwrap_or(0.0));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(retention, 3.0, "the expired crops go at start");
    assert!(d.wait(Duration::from_secs(1)).success(), "{}", d.log_text());
    let all = crops(&dir);
    let new = all.keys().filter(|k| !k.starts_with("walkway-old")).count();
    let old_left: Vec<&String> = old.iter().filter(|s| all.contains_key(*s)).collect();
    println!(
        "size bound: {} bytes at most on disk (bound {limit}), {new} new crops, {} of {} old ones deleted (metric {size_deleted})",
        max_seen,
        old.len() - old_left.len(),
        old.len()
    );
    assert!(
        max_seen <= limit && folder_bytes(&dir) <= limit,
        "{max_seen}"
    );
    assert!(new >= 20, "{new} new crops:\n{}", d.log_text());
    assert!(
        old_left.len() < old.len() && size_deleted >= 1.0,
        "nothing deleted for size"
    );
    // The oldest went first: what is left of the old ones is their newest.
    assert_eq!(
        old_left,
        old[old.len() - old_left.len()..].iter().collect::<Vec<_>>()
    );
    assert!(names(&dir).iter().all(|n| !n.contains("expired")));
}

#[test]
fn a_full_disk_pauses_collection_but_never_tagging() {
    let Some(s) = setup() else { return };
    let state = s.work.path().join("state");
    let Some(_fs) = Tmpfs::mount(&state.join("full"), "256k") else {
        return;
    };
    let f = s.work.path().join("frames");
    frames(&s.data, &f, 150, None);
    let port = free_port();
    let collect =
        "enabled = true\ndir = \"full/collect\"\nmax_per_person = 100\nmin_interval_ms = 0";
    let cfg = config(&s, &state, &f, "", collect, &format!("127.0.0.1:{port}"));
    let mut d = start(&cfg);
    let classified = || metric(port, "stylecam_people_classifications_total").unwrap_or(0.0);
    wait_until("stylecam_collect_paused 1", Duration::from_secs(60), || {
        metric(port, "stylecam_collect_paused") == Some(1.0)
    });
    let at_pause = classified();
    wait_until(
        "classifications after the pause",
        Duration::from_secs(30),
        || classified() > at_pause + 3.0,
    );
    assert_eq!(metric(port, "stylecam_collect_paused"), Some(1.0));
    assert!(
        d.wait(Duration::from_secs(120)).success(),
        "{}",
        d.log_text()
    );
    let log = d.log_text();
    let pauses = log.matches("collection pauses").count();
    assert_eq!(pauses, 1, "one log line for the pause:\n{log}");
    let dir = state.join("full/collect");
    assert!(
        names(&dir).iter().all(|n| !n.ends_with(".tmp")),
        "{:?}",
        names(&dir)
    );
    assert_eq!(
        names(&dir).len() % 2,
        0,
        "only complete pairs: {:?}",
        names(&dir)
    );
    println!(
        "full disk: paused after {} crop(s); {at_pause} classifications at the pause, tagging went on",
        names(&dir).len() / 2
    );
}

/// A reload follows the new `[collect]`: off, then on (crops appear),
/// then off again (no more are written); tagging goes on throughout.
#[test]
fn a_reload_turns_collection_on_and_off() {
    let Some(s) = setup() else { return };
    let f = s.work.path().join("frames");
    frames(&s.data, &f, 40, None);
    let state = s.work.path().join("state");
    let port = free_port();
    let cfg = config(
        &s,
        &state,
        &f,
        "",
        "enabled = false",
        &format!("127.0.0.1:{port}"),
    );
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("loop = false", "loop = true");
    std::fs::write(&cfg, &text).unwrap();
    let mut d = start(&cfg);
    let status = || {
        let (code, body) = http_get(port, "/api/status")?;
        (code == 200).then(|| serde_json::from_str::<serde_json::Value>(&body).unwrap())
    };
    let written = || metric(port, "stylecam_collect_written_total").unwrap_or(0.0);
    let classified = || metric(port, "stylecam_people_classifications_total").unwrap_or(0.0);
    wait_until("classifications", Duration::from_secs(60), || {
        classified() > 5.0
    });
    let dir = state.join("stylecam-collect");
    assert!(!dir.exists());
    assert_eq!(status().unwrap()["collect"]["enabled"], false);
    let on = text.replace(
        "[collect]\nenabled = false",
        "[collect]\nenabled = true\nmin_interval_ms = 0",
    );
    std::fs::write(&cfg, &on).unwrap();
    d.signal("HUP");
    wait_until("collection on", Duration::from_secs(60), || {
        status().is_some_and(|s| s["collect"]["enabled"] == true) && written() >= 3.0
    });
    assert!(crops(&dir).len() >= 3);
    let c = &status().unwrap()["collect"];
    assert!(c["crops"].as_u64().unwrap() >= 3, "{c}");
    assert!(c["bytes"].as_u64().unwrap() > 0, "{c}");
    assert!(c["oldest"].as_str().unwrap().ends_with('Z'), "{c}");
    assert_eq!(c["paused"], false, "{c}");
    std::fs::write(&cfg, &text).unwrap();
    d.signal("HUP");
    wait_until("collection off", Duration::from_secs(60), || {
        status().is_some_and(|s| s["collect"]["enabled"] == false)
    });
    let (kept, at) = (crops(&dir).len(), classified());
    wait_until("classifications after", Duration::from_secs(60), || {
        classified() > at + 5.0
    });
    assert_eq!(crops(&dir).len(), kept, "off again: nothing more written");
    d.signal("TERM");
    assert!(
        d.wait(Duration::from_secs(60)).success(),
        "{}",
        d.log_text()
    );
    println!("reload: {kept} crops while on; off again, tagging went on and none was added");
}
