//! A store day through the daemon (issue 36): the store-day stream `short`
//! (5 s of the empty scene with sensor noise, 13.2 s of vtest.avi's
//! walkers, 5 s empty; tests/ref/store_day.py) in people mode with the
//! SSDLite detector and the garment bundle, a real mosquitto and a
//! subscriber, run twice: with the defaults (motion decides where and
//! whether the detector looks, at `detect_fps = 5`) and as before issue 36
//! (no motion, the whole frame on every frame). The defaults must find
//! every person the every-frame run saw for a second or more, publish about
//! as many `entered`/`left` pairs, leave the detector alone on the empty
//! scene (`/metrics` sampled while it plays) and run it on far fewer frames.

use crate::common::*;
use crate::people::{people_bundle, people_config, ssdlite_data};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// One person as a subscriber sees them: the frames of their `entered`
/// and `left` events (the camera's frame numbers: the stream's file index)
/// and their final tags.
#[derive(Debug, Clone)]
struct Person {
    id: String,
    entered: u64,
    left: u64,
    tags: Vec<String>,
}

impl Person {
    /// Frames from `entered` to `left`.
    fn span(&self) -> u64 {
        self.left - self.entered
    }

    /// Frames both were in view (entered to left).
    fn overlap(&self, other: &Person) -> u64 {
        self.left
            .min(other.left)
            .saturating_sub(self.entered.max(other.entered))
    }
}

/// Everyone who entered, each with their `left` (asserted: one `entered`
/// first, one `left` last, only `changed` between), ordered by entry.
fn people_of(all: &[Received], run: &str) -> Vec<Person> {
    let mut events: BTreeMap<String, Vec<&serde_json::Value>> = BTreeMap::new();
    for r in kind(all, "person") {
        events
            .entry(r.json["person"].as_str().unwrap().to_string())
            .or_default()
            .push(&r.json);
    }
    let mut people: Vec<Person> = events
        .into_iter()
        .map(|(id, ev)| {
            let names: Vec<&str> = ev.iter().map(|e| e["event"].as_str().unwrap()).collect();
            assert!(
                names.first() == Some(&"entered")
                    && names.last() == Some(&"left")
                    && names.len() >= 2
                    && names[1..names.len() - 1].iter().all(|e| *e == "changed"),
                "{run}: person {id}: {names:?} (every `entered` has one `left`, last)"
            );
            let (first, last) = (ev[0], ev[ev.len() - 1]);
            Person {
                id,
                entered: first["frame_seq"].as_u64().unwrap(),
                left: last["frame_seq"].as_u64().unwrap(),
                tags: last["tags"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t["id"].as_str().unwrap().to_string())
                    .collect(),
            }
        })
        .collect();
    people.sort_by_key(|p| (p.entered, p.left));
    people
}

/// Frames the detector ran on (the whole frame or regions), from the exit
/// summary's per-camera `motion.detector` counters.
fn detector_frames(summary: &serde_json::Value, run: &str) -> (u64, serde_json::Value) {
    let camera = &summary["cameras"][0];
    let motion = camera["motion"].clone();
    let captured = camera["captured"].as_u64().unwrap();
    let skipped = motion["detector"]["skipped_frames"]
        .as_u64()
        .unwrap_or_else(|| panic!("{run}: no motion.detector in the exit summary: {summary}"));
    (captured - skipped, motion)
}

/// One run: everything published, the exit summary, the daemon's log, and
/// `/metrics` sampled while the stream plays: (frames captured, frames the
/// detector skipped) as they went.
type Run = (Vec<Received>, serde_json::Value, String, Vec<(u64, u64)>);

/// `stylecam run` with one people-mode camera playing `frames` once at
/// 10 fps (`extra` lines under the camera), a real mosquitto and a
/// subscriber, `/metrics` polled every 20 ms until the daemon exits.
fn run_sampled(bundle: &Path, frames: &Path, extra: &str, work: &Path, device: &str) -> Run {
    let broker = Mosquitto::start(free_port());
    let http = free_port();
    let camera = format!(
        "name = \"walkway\"\nsource = \"files\"\npath = \"{}\"\nloop = false\nrepeat = 1\nfps = 10.0\n{extra}",
        frames.display()
    );
    let metrics = format!("listen = \"127.0.0.1:{http}\"");
    let cfg = people_config(work, device, bundle, broker.port, ("", &camera, &metrics));
    let check = stylecam().arg("check-config").arg(&cfg).output().unwrap();
    assert!(check.status.success(), "{}", output_text(&check));
    let sub = Collector::start(
        broker.port,
        &format!("stylecam/{device}/#"),
        &format!("{device}-sub"),
    );
    let mut daemon = run_daemon(&cfg, &[]);
    let mut samples = vec![];
    let t = std::time::Instant::now();
    while daemon.child.try_wait().unwrap().is_none() && t.elapsed() < Duration::from_secs(120) {
        // One /metrics answer: both counters of the same moment.
        if let Some((200, text)) = http_get(http, "/metrics") {
            let value = |name: &str| {
                text.lines()
                    .find(|l| l.starts_with(name))
                    .and_then(|l| l.rsplit_once(' '))
                    .and_then(|(_, v)| v.parse::<f64>().ok())
                    .map(|v| v as u64)
            };
            if let (Some(c), Some(s)) = (
                value("stylecam_camera_frames_total{camera=\"walkway\",outcome=\"captured\"}"),
                value("stylecam_people_detector_skipped_frames_total{camera=\"walkway\"}"),
            ) {
                samples.push((c, s));
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let summary = exit_summary(&sub, 1);
    assert!(
        daemon.wait(Duration::from_secs(60)).success(),
        "{}",
        daemon.log_text()
    );
    (sub.all(), summary, daemon.log_text(), samples)
}

#[test]
fn store_day_gated_detection_finds_the_people_of_every_frame_detection() {
    if !available("mosquitto", mosquitto_path().is_some()) {
        return;
    }
    let Some(data) = ssdlite_data() else { return };
    let Some(streams) = store_day() else { return };
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(streams.join("short.json")).unwrap()).unwrap();
    let frames = streams.join("short");
    let n = manifest["frames"].as_u64().unwrap();
    assert_eq!(std::fs::read_dir(&frames).unwrap().count() as u64, n);
    let fps = manifest["fps"].as_f64().unwrap();
    assert_eq!(fps, 10.0, "run_sampled plays at 10 fps");
    let work = tempfile::tempdir().unwrap();
    let bundle = people_bundle(&data, work.path());

    // (1) The defaults: motion on, detect_fps = 5, regions.
    let (all1, summary1, log1, samples) =
        run_sampled(&bundle, &frames, "", work.path(), "day-gated");
    // (2) As before issue 36: no motion, every frame, the whole frame.
    let every = "motion = { enabled = false }\npeople = { detect_fps = 0.0 }";
    let (all2, summary2, log2, _) = run_sampled(&bundle, &frames, every, work.path(), "day-every");
    let validator = schema();
    for r in all1.iter().chain(&all2) {
        assert_valid(&validator, r);
    }
    let gated = people_of(&all1, "gated");
    let today = people_of(&all2, "every frame");
    let (runs1, motion1) = detector_frames(&summary1, "gated");
    let (runs2, motion2) = detector_frames(&summary2, "every frame");
    for (run, s) in [("gated", &summary1), ("every frame", &summary2)] {
        assert_eq!(
            s["cameras"][0]["captured"].as_u64(),
            Some(n),
            "{run}: every frame of the stream captured: {s}"
        );
        assert_eq!(s["people"]["tracks_active"], 0, "{run}: everyone left: {s}");
    }
    assert_eq!(motion1["enabled"], true, "{motion1}");
    assert_eq!(motion2["enabled"], false, "{motion2}");
    println!(
        "store day `short` ({n} frames at {fps} fps, {} busy): every frame {} people, detector on {runs2} frames; gated {} people, detector on {runs1} frames ({} whole, {} region runs, {} motion frames moving, {} recalibrations)",
        manifest["segments"][1]["end"].as_u64().unwrap() - manifest["segments"][1]["start"].as_u64().unwrap(),
        today.len(),
        gated.len(),
        motion1["detector"]["whole"],
        motion1["detector"]["regions"],
        motion1["frames"]["moving"],
        motion1["recalibrations"],
    );

    // Every person of the every-frame run in view for >= 1 s is found: a
    // person of the gated run in view for most (> half) of the frames they
    // were, each gated person standing for one person at most (the largest
    // such matching, so the order people are tried in does not matter).
    let second = fps as u64;
    let wanted: Vec<&Person> = today.iter().filter(|p| p.span() >= second).collect();
    let mut found = matching(&wanted, &gated);
    // A track the every-frame run split in two (a walker lost for a moment
    // and found again as a new person) is one gated person's span: such a
    // part may share its gated person with the other parts, if they were
    // in view one after the other — overlapping by no more than the first
    // part's coasting before its `left` (`max_missed_ms`).
    let coast = stylecam::config::PeopleConfig::default().max_missed_ms * fps as u64 / 1000;
    let mut splits = 0;
    for i in 0..wanted.len() {
        if found[i].is_some() {
            continue;
        }
        let p = wanted[i];
        found[i] = (0..gated.len()).find(|&k| {
            2 * gated[k].overlap(p) > p.span()
                && wanted
                    .iter()
                    .zip(&found)
                    .all(|(q, m)| *m != Some(k) || q.overlap(p) <= coast)
        });
        if let Some(k) = found[i] {
            splits += 1;
            println!(
                "  {} frames {}..{}: a split part of gated {}",
                p.id, p.entered, p.left, gated[k].id
            );
        }
    }
    // Events carry no boxes, so people are matched by when they were in
    // view only: in vtest's crowd the every-frame tracker also splits a
    // pair walking together, or a walker half hidden, into more tracks
    // than the gated run keeps (the bench matches by boxes on every frame:
    // docs/benchmarks.md, "A store day on one box"). Still unmatched: a
    // gated person in view for most of their frames, shared.
    let mut shared = 0;
    for i in 0..wanted.len() {
        if found[i].is_some() {
            continue;
        }
        let p = wanted[i];
        found[i] = (0..gated.len()).find(|&k| 2 * gated[k].overlap(p) > p.span());
        if let Some(k) = found[i] {
            shared += 1;
            println!(
                "  {} frames {}..{}: in view with gated {} (shared)",
                p.id, p.entered, p.left, gated[k].id
            );
        }
    }
    let mut same_tags = 0;
    for (p, k) in wanted.iter().zip(&found) {
        let Some(k) = k else { continue };
        same_tags += usize::from(gated[*k].tags == p.tags);
        println!(
            "  {} frames {}..{} -> {} frames {}..{} (tags {:?} / {:?})",
            p.id,
            p.entered,
            p.left,
            gated[*k].id,
            gated[*k].entered,
            gated[*k].left,
            p.tags,
            gated[*k].tags
        );
    }
    let missed: Vec<&&Person> = wanted
        .iter()
        .zip(&found)
        .filter(|(_, k)| k.is_none())
        .map(|(p, _)| p)
        .collect();
    let short: Vec<&Person> = today.iter().filter(|p| p.span() < second).collect();
    println!(
        "  {} of {} people in view >= 1 s found, {same_tags} of them with the same final tags; shorter than 1 s: {short:?}",
        wanted.len() - missed.len(),
        wanted.len(),
    );
    assert!(
        missed.is_empty(),
        "people of the every-frame run (frames entered..left) with no gated person in view for most of their frames: {missed:#?}\ngated: {gated:#?}\nevery frame: {today:#?}\ngated log:\n{log1}"
    );
    // About as many pairs: the every-frame run's split and shared tracks
    // (each one more person there) and 2 more either way, or a quarter. A person gets `entered`
    // only once a classification lands, which depends on timing: the
    // every-frame run alone published 10, 11, 12 and 13 people in runs of
    // this same stream; the gated one 9 to 11.
    let tolerance = (2 + splits + shared).max(today.len() / 4);
    assert!(
        gated.len().abs_diff(today.len()) <= tolerance,
        "gated {} people, every frame {} (tolerance {tolerance}):\n{gated:#?}\n{today:#?}\nlog:\n{log2}",
        gated.len(),
        today.len()
    );
    // Idle is cheap: on the leading idle stretch (the empty scene with its
    // noise and drift) the detector looks once at the start and then not
    // again. The last sample within it: the frames the detector ran on so
    // far, at most one of them still in flight (captured is counted before
    // the frame's motion and detector).
    let idle_end = manifest["segments"][0]["end"].as_u64().unwrap();
    let (c, s) = samples
        .iter()
        .copied()
        .rfind(|&(c, _)| c <= idle_end)
        .unwrap_or_default();
    println!(
        "  leading idle stretch ({idle_end} frames): detector on {} of the first {c} frames",
        c - s
    );
    assert!(
        c + 10 >= idle_end,
        "no /metrics sample late in the leading idle stretch: {samples:?}"
    );
    assert!(
        c - s <= 3,
        "the detector ran on {} of the first {c} (idle) frames: {samples:?}",
        c - s
    );
    // The every-frame run looked at every frame; the gated one at most at
    // detect_fps = 5, which is half the frames of a camera keeping its
    // 10 fps, more where the camera slows (the detector runs on its thread;
    // a late frame counts as due within half a frame): measured 114-143 of
    // 232 on this 2-core machine while other benches ran. Three quarters
    // leaves that margin and still fails a gate that runs the detector on
    // every frame that moved (182 of 232 here).
    assert_eq!(runs2, n, "every frame: {motion2}");
    assert!(
        runs1 * 4 <= runs2 * 3,
        "detector frames: gated {runs1}, every frame {runs2} of {n}: {motion1}"
    );
}

/// For each of `wanted`, the index of the person in `found` it is matched
/// to: one in view for more than half of its frames, each used once, as
/// many matched as possible (augmenting paths; a few dozen people).
fn matching(wanted: &[&Person], found: &[Person]) -> Vec<Option<usize>> {
    let fits = |p: &Person, k: usize| 2 * found[k].overlap(p) > p.span();
    fn augment(
        i: usize,
        wanted: &[&Person],
        fits: &dyn Fn(&Person, usize) -> bool,
        owner: &mut [Option<usize>],
        seen: &mut [bool],
    ) -> bool {
        for k in 0..owner.len() {
            if seen[k] || !fits(wanted[i], k) {
                continue;
            }
            seen[k] = true;
            if owner[k].is_none_or(|j| augment(j, wanted, fits, owner, seen)) {
                owner[k] = Some(i);
                return true;
            }
        }
        false
    }
    let mut owner = vec![None; found.len()];
    for i in 0..wanted.len() {
        augment(i, wanted, &fits, &mut owner, &mut vec![false; found.len()]);
    }
    let mut of = vec![None; wanted.len()];
    for (k, i) in owner.iter().enumerate() {
        if let Some(i) = i {
            of[*i] = Some(k);
        }
    }
    of
}
