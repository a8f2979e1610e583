//! Motion's telemetry through the daemon (issue 36): one people-mode camera
//! plays the short store-day stream (5 s idle, 13 s of vtest.avi's
//! walkers, 5 s idle) to a real mosquitto. The camera's `motion` object is
//! the same in the health message (schema-valid), `/api/status` and
//! `/metrics`; the snapshot's outlines carry where something moved; and,
//! where chromium is there, the page draws them (dashed, unlabelled, under
//! the people) with a legend only while they are drawn
//! (`tests/browser/motion_page.mjs`).

use crate::common::*;
use crate::people::{bundle_with_detector, ssdlite_data};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CAMERA: &str = "aisle";
/// A second camera (frame mode, 1 fps): the daemon stops when its last
/// camera ends, and this one does not.
const KEEPER: &str = "keeper";

fn config(work: &Path, bundle: &Path, frames: &Path, mqtt: u16, http: u16) -> std::path::PathBuf {
    let cfg = work.join("motion.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"device = "motion-telemetry"
[model]
bundle = "{bundle}"
backend = "cpu"
[[cameras]]
name = "{CAMERA}"
source = "files"
path = "{frames}"
loop = false
repeat = 1
fps = 10.0
analyze = "people"
# Squares (not the default whole frame), so that the page draws them.
people = {{ whole_frame_at = 0.6 }}
# Keeps the daemon serving once the store-day camera has ended.
[[cameras]]
name = "{KEEPER}"
source = "synthetic"
width = 64
height = 48
fps = 1.0
[mqtt]
embedded = false
port = {mqtt}
health_interval_s = 2
[outbox]
path = "{outbox}"
[metrics]
listen = "127.0.0.1:{http}"
"#,
            bundle = bundle.display(),
            frames = frames.display(),
            outbox = work.join("outbox.redb").display(),
        ),
    )
    .unwrap();
    cfg
}

/// The counters that stop changing once the camera has ended.
fn counts(m: &serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "frames": m["frames"],
        "recalibrations": m["recalibrations"],
        "whole": m["detector"]["whole"],
        "regions": m["detector"]["regions"],
        "skipped_frames": m["detector"]["skipped_frames"],
        "regions_deferred": m["regions_deferred"],
    })
}

/// The store-day camera in a health message or `/api/status`.
fn camera(v: &serde_json::Value) -> &serde_json::Value {
    let all = v["cameras"].as_array().expect("cameras");
    let cam = all.iter().find(|c| c["name"] == CAMERA).expect(CAMERA);
    let keeper = all.iter().find(|c| c["name"] == KEEPER).expect(KEEPER);
    assert!(keeper.get("motion").is_none_or(|m| m.is_null()), "{keeper}");
    cam
}

fn status(http: u16) -> Option<serde_json::Value> {
    let got = http_get(http, "/api/status");
    match got {
        Some((200, body)) => Some(serde_json::from_str(&body).unwrap()),
        other => {
            eprintln!("/api/status: {other:?}");
            None
        }
    }
}

#[test]
fn motion_telemetry_agrees_across_the_health_message_status_and_metrics() {
    if !available("mosquitto", mosquitto_path().is_some()) {
        return;
    }
    let Some(data) = ssdlite_data() else { return };
    let Some(streams) = store_day() else { return };
    let work = tempfile::tempdir().unwrap();
    let bundle = bundle_with_detector(&data, work.path());
    let frames = streams.join("short");
    let broker = Mosquitto::start(free_port());
    let http = free_port();
    let cfg = config(work.path(), &bundle, &frames, broker.port, http);
    let check = stylecam().arg("check-config").arg(&cfg).output().unwrap();
    assert!(check.status.success(), "{}", output_text(&check));
    let sub = Collector::start(broker.port, "stylecam/motion-telemetry/#", "motion-sub");
    let mut daemon = run_daemon(&cfg, &[]);
    assert!(
        wait_for_port(http, Duration::from_secs(30)),
        "{}",
        daemon.log_text()
    );
    let shots = std::env::var_os("PAGE_SCREENSHOTS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| work.path().to_path_buf());
    std::fs::create_dir_all(&shots).unwrap();
    let browser = browser_ready().then(|| {
        Command::new("node")
            .arg(browser_dir().join("motion_page.mjs"))
            .current_dir(browser_dir())
            .env("BASE", format!("http://127.0.0.1:{http}"))
            .env("CAMERA", CAMERA)
            .env("SHOT", shots.join("motion.png"))
            .env("CHROMIUM", chromium().unwrap())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run node")
    });
    if browser.is_none() {
        available(
            "chromium and tests/browser's playwright-core (npm ci) for the page's drawing",
            false,
        );
    }

    // While it plays: the snapshot's outlines (a page asks for them: the
    // browser, else this loop), until the camera has ended.
    let browsing = browser.is_some();
    let (mut motion_outlines, mut moving_seen) = (0, false);
    let start = Instant::now();
    let last = loop {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the camera did not end: {}",
            daemon.log_text()
        );
        if !browsing {
            http_get(http, &format!("/api/snapshot?camera={CAMERA}"));
        }
        // A loaded 2-core machine (detector, chromium) may answer late:
        // asked again on the next turn.
        let Some(s) = status(http) else {
            std::thread::sleep(Duration::from_millis(500));
            continue;
        };
        let cam = camera(&s);
        for o in cam["outlines"].as_array().unwrap() {
            let r: Vec<f64> = (0..4).map(|i| o["rect"][i].as_f64().unwrap()).collect();
            // A person coasting out of the frame may be clamped to its
            // edge (no width); motion's boxes lie in the frame.
            let strict = o["kind"] != "subject";
            assert!(
                r.iter().all(|v| (0.0..=1.0).contains(v))
                    && r[0] <= r[2]
                    && r[1] <= r[3]
                    && (!strict || (r[0] < r[2] && r[1] < r[3])),
                "{o}"
            );
            motion_outlines += usize::from(o["kind"] == "motion");
        }
        moving_seen |= cam["motion"]["moving"] == true;
        if cam["state"] == "ended" {
            break s;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let page = browser.map(|b| b.wait_with_output().unwrap());
    let metrics = http_get(http, "/metrics").expect("/metrics answers").1;
    daemon.signal("TERM");
    let summary = exit_summary(&sub, 1);
    assert!(
        daemon.wait(Duration::from_secs(60)).success(),
        "{}",
        daemon.log_text()
    );
    let validator = schema();
    for r in &sub.all() {
        assert_valid(&validator, r);
    }

    let cam = camera(&summary);
    let m = &cam["motion"];
    assert!(
        m.is_object(),
        "no motion object in the health message: {cam}"
    );
    // The camera has ended: /api/status and the exit summary agree.
    assert_eq!(
        counts(&camera(&last)["motion"]),
        counts(m),
        "/api/status vs the health message"
    );
    // Motion ran on every frame that reached the camera's people stage.
    let frames = &m["frames"];
    let n = |v: &serde_json::Value| v.as_u64().unwrap();
    let measured = n(&frames["moving"]) + n(&frames["still"]) + n(&frames["calibrating"]);
    assert_eq!(
        measured,
        n(&cam["captured"]) - n(&cam["skipped"]),
        "frames motion ran on vs frames captured: {cam}"
    );
    // Idle stretches and walkers: both kinds of frame, the first frame
    // calibrating; the walkers were looked at.
    assert!(n(&frames["still"]) > 0 && n(&frames["moving"]) > 0, "{m}");
    assert!(n(&frames["calibrating"]) >= 1, "{m}");
    let d = &m["detector"];
    assert!(n(&d["whole"]) + n(&d["regions"]) > 0, "{m}");
    assert!(
        n(&d["skipped_frames"]) > 0,
        "idle frames cost a detector run: {m}"
    );
    assert!(m["mean_ms"].as_f64().unwrap() > 0.0, "{m}");
    assert!(moving_seen, "/api/status never showed the camera moving");
    assert!(
        motion_outlines > 0,
        "no motion outline on the snapshot while walkers crossed"
    );
    // /metrics: the same counters.
    let series = |name: &str, labels: &str| -> u64 {
        let line = format!("{name}{{camera=\"{CAMERA}\"{labels}}} ");
        let v = metrics
            .lines()
            .find_map(|l| l.strip_prefix(&line))
            .unwrap_or_else(|| panic!("no {line} in /metrics:\n{metrics}"));
        v.parse::<f64>().unwrap() as u64
    };
    for state in ["moving", "still", "calibrating"] {
        assert_eq!(
            series(
                "stylecam_motion_frames_total",
                &format!(",state=\"{state}\"")
            ),
            n(&frames[state]),
            "{state}"
        );
    }
    assert_eq!(
        series("stylecam_people_detector_runs_total", ",look=\"whole\""),
        n(&d["whole"])
    );
    assert_eq!(
        series("stylecam_people_detector_runs_total", ",look=\"region\""),
        n(&d["regions"])
    );
    assert_eq!(
        series("stylecam_people_detector_skipped_frames_total", ""),
        n(&d["skipped_frames"])
    );
    assert_eq!(
        series("stylecam_people_regions_deferred_total", ""),
        n(&m["regions_deferred"])
    );
    assert_eq!(
        series("stylecam_motion_recalibrations_total", ""),
        n(&m["recalibrations"])
    );
    println!(
        "short store-day stream: {measured} frames ({}), detector {}, motion {} ms a frame (p99 {} ms)",
        m["frames"], m["detector"], m["mean_ms"], m["p99_ms"]
    );

    let Some(out) = page else { return };
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    let r: serde_json::Value = serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("the browser script printed no result ({e}): {line}\n{stderr}"));
    assert!(r["error"].is_null(), "in the browser: {}", r["error"]);
    assert!(r["page_errors"].is_null(), "{}", r["page_errors"]);
    println!("the page: {r}");
    let seen = |k: &str| r["drawn"][k].as_u64().unwrap_or(0);
    assert!(seen("motion") > 0, "the page never drew motion: {r}");
    // Motion dashed, looked-at squares solid blue, both thin and unlabelled;
    // people labelled.
    for (kind, style) in [("motion", "dashed"), ("look", "solid")] {
        let s = &r["styles"][kind];
        if seen(kind) > 0 {
            assert_eq!(s["style"], style, "{kind}: {s}");
            assert_eq!(s["width"], "1px", "{kind}: {s}");
            assert_eq!(s["labelled"], false, "{kind}: {s}");
        }
    }
    if seen("look") > 0 {
        assert_eq!(r["styles"]["look"]["color"], "rgb(92, 184, 255)", "{r}");
    }
    if seen("subject") > 0 {
        assert_eq!(r["styles"]["subject"]["labelled"], true, "{r}");
    }
    assert_eq!(
        r["legend_mismatches"], 0,
        "the legend did not name what was drawn: {r}"
    );
    assert!(
        r["plain_looks"].as_u64().unwrap() > 0,
        "never a look without motion outlines (the idle stretch): {r}"
    );
    assert_eq!(r["facts_motion"], true, "no motion facts on the tile: {r}");
}
