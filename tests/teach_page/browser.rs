//! The Train view in Chromium (`tests/browser/teach_page.mjs`): opened by
//! its nav link, a training started by its button, the comparison shown
//! (per-class and macro F2 of both bundles, held-out crops with their
//! pictures), Switch (the daemon then serves the new bundle), Rollback (the
//! demo again). Its screenshot is docs/images/teach.png
//! (`PAGE_SCREENSHOTS=docs/images`).

#![cfg(feature = "train")]

use super::*;
use std::process::Command;

#[cfg(feature = "train")]
#[test]
fn teach_page_train_check_switch_rollback_in_chromium() {
    let ready = browser_ready();
    if !available(
        "chromium and node with tests/browser's playwright-core (npm ci)",
        ready,
    ) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let Some((lite0, classes, _)) = labelled_vtest_crops(w) else {
        return;
    };
    let current = w.join("bundles/current");
    let http = free_port();
    let cfg = config(w, http, &current, &lite0, &classes);
    install(&repo().join("assets/demo-bundle"), &cfg);
    let daemon = start_daemon(&cfg, http);
    let shots = std::env::var_os("PAGE_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| w.join("shots"));
    std::fs::create_dir_all(&shots).unwrap();
    let out = Command::new("node")
        .arg(browser_dir().join("teach_page.mjs"))
        .current_dir(browser_dir())
        .env("BASE", format!("http://127.0.0.1:{http}"))
        .env("SHOTS", &shots)
        .output()
        .expect("run node");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let last = stdout.lines().last().unwrap_or_default();
    let r: serde_json::Value = serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("the browser script printed no result ({e}): {last}\n{stderr}"));
    assert!(
        r["error"].is_null(),
        "in the browser: {}\n{stderr}\ndaemon: {}",
        r["error"],
        daemon.log_text()
    );
    assert!(r["page_errors"].is_null(), "{}", r["page_errors"]);
    // One row per class and the macro row; the demo shares no class.
    let rows = r["scores"].as_array().unwrap();
    assert_eq!(rows.len(), classes.len() + 1, "{r}");
    for (row, class) in rows.iter().zip(&classes) {
        assert_eq!(row[0], class.as_str(), "{r}");
        let f2: f64 = row[1].as_str().unwrap().parse().unwrap();
        assert!((0.0..=1.0).contains(&f2), "{r}");
        assert_eq!(row[2], "not a class of it", "{r}");
    }
    assert_eq!(rows[classes.len()][0], "macro F2", "{r}");
    let examples = r["examples"].as_array().unwrap();
    assert!(!examples.is_empty(), "{r}");
    assert!(examples[0].as_str().unwrap().starts_with("truth"), "{r}");
    assert!(
        r["model_after_switch"]
            .as_str()
            .unwrap()
            .starts_with("store-quick "),
        "{r}"
    );
    assert_eq!(r["model_after_rollback"], "stylecam-demo 0.1.0", "{r}");
    assert!(
        r["rolled_back"]
            .as_str()
            .unwrap()
            .contains("stylecam-demo 0.1.0"),
        "{r}"
    );
    let shot = shots.join("teach.png");
    assert!(
        shot.metadata().is_ok_and(|m| m.len() > 10_000),
        "{}",
        shot.display()
    );
    eprintln!("teach page in chromium: {}", r["steps"]);
}
