//! People mode through the page's switch: the `people` events after it
//! carry the new bundle's classes, after the rollback the old one's.

#![cfg(feature = "train")]

use super::*;

/// People mode end to end: the served bundle is the demo with the SSDLite
/// detector (from the store), a training from the page carries the
/// detector over, and after the switch the next `people` events carry the
/// new classes; after the rollback the demo's again.
#[cfg(feature = "train")]
#[test]
fn teach_page_switch_reaches_the_people_events() {
    if !available("mosquitto", mosquitto_path().is_some()) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let Some((lite0, classes, _)) = labelled_vtest_crops(w) else {
        return;
    };
    let data = crate::people::ssdlite_data().expect("labelled_vtest_crops found it");
    let demo = crate::people::bundle_with_detector(&data, w);

    let broker = Mosquitto::start(free_port());
    let http = free_port();
    let current = w.join("bundles/current");
    let cfg = w.join("people.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"device = "it-teach-people"
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
[mqtt]
embedded = false
port = {mqtt}
[outbox]
path = "{outbox}"
[metrics]
listen = "127.0.0.1:{http}"
[collect]
dir = "{collect}"
[teach]
dir = "{teach}"
features = "{lite0}"
classes = {classes:?}
"#,
            current = current.display(),
            frames = data.join("video").display(),
            mqtt = broker.port,
            outbox = w.join("outbox.redb").display(),
            collect = w.join("collect").display(),
            teach = w.join("teach").display(),
            lite0 = lite0.display(),
        ),
    )
    .unwrap();
    install(&demo, &cfg);
    let sub = Collector::start(broker.port, "stylecam/it-teach-people/#", "teach-sub");
    let mut daemon = start_daemon(&cfg, http);
    let page = Page::open(http);
    let demo_ids: Vec<String> = stylecam::styles::Taxonomy::jd2018()
        .ids()
        .map(String::from)
        .collect();
    // Tags (class ids) of `people` events from the `from`-th message on.
    let tags_after = |from: usize| -> Vec<Vec<String>> {
        sub.all()[from..]
            .iter()
            .filter(|r| r.topic.ends_with("/walkway/people"))
            .filter_map(|r| r.json["tags"].as_array().cloned())
            .filter(|t| !t.is_empty())
            .map(|t| {
                t.iter()
                    .map(|c| c["id"].as_str().unwrap().to_string())
                    .collect()
            })
            .collect()
    };
    // A people event tagged by `ids` after the `from`-th message.
    let wait_tagged = |what: &str, from: usize, ids: &[String]| -> usize {
        until(&daemon, Duration::from_secs(180), what, || {
            let all = sub.all();
            all[from..]
                .iter()
                .position(|r| {
                    r.topic.ends_with("/walkway/people")
                        && r.json["tags"].as_array().is_some_and(|t| {
                            !t.is_empty()
                                && t.iter().all(|c| ids.iter().any(|i| c["id"] == i.as_str()))
                        })
                })
                .map(|i| from + i)
        })
    };
    wait_tagged("a people event with the demo's styles", 0, &demo_ids);

    let (code, started) = page.post("/api/teach/start", "{}");
    assert_eq!(code, 200, "{started}");
    let id = started["started"].as_str().unwrap().to_string();
    until(&daemon, Duration::from_secs(600), "the training", || {
        let t = page.get("/api/teach");
        assert_ne!(t["run"]["state"], "failed", "{t}");
        (t["run"]["state"] == "finished").then_some(())
    });
    let (code, switched) = page.post("/api/bundles/switch", &format!("{{\"run\":\"{id}\"}}"));
    assert_eq!(code, 200, "{switched}");
    let model = switched["model"].as_str().unwrap().to_string();
    wait_log(
        &daemon,
        &format!("reloaded: serving {model}"),
        1,
        Duration::from_secs(120),
    );
    let first_new = wait_tagged("a people event with the new classes", 0, &classes);
    for tags in tags_after(first_new) {
        assert!(
            tags.iter().all(|t| classes.contains(t)),
            "after the switch, a people event tagged {tags:?}"
        );
    }
    eprintln!(
        "teach page, people mode: after the switch, people events tagged {:?}",
        tags_after(first_new)
            .into_iter()
            .take(5)
            .collect::<Vec<_>>()
    );

    let (code, back) = page.post("/api/bundles/rollback", "{}");
    assert_eq!(code, 200, "{back}");
    wait_log(
        &daemon,
        "reloaded: serving stylecam-demo",
        1,
        Duration::from_secs(120),
    );
    let mark = sub.all().len();
    let first_old = wait_tagged(
        "a people event with the demo's styles again",
        mark,
        &demo_ids,
    );
    for tags in tags_after(first_old) {
        assert!(
            tags.iter().all(|t| demo_ids.contains(t)),
            "after the rollback, a people event tagged {tags:?}"
        );
    }
    let log = daemon.log_text();
    assert!(!log.contains("reload failed"), "{log}");
    daemon.signal("TERM");
    daemon.wait(Duration::from_secs(60));
}
