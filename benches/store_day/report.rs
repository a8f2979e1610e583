//! The store-day bench's tables: one per stream, then the summary.

use crate::compare::{self, FAR_TOP, MIN_IOU, MUST_FRAMES};
use crate::far::Far;
use crate::run::{Look, Mode, Run};
use crate::setup::{Backends, Stream};
use stylecam::bundle::Bundle;
use stylecam::config::PeopleConfig;
use stylecam::styles::DecisionParams;

/// One stream's line of the summary.
pub struct Row {
    name: String,
    goal: Option<f64>,
    cameras: Vec<(Mode, f64)>,
    /// (c) against (a): people ≥ 1 s (count, found), tags (compared, equal).
    long: (usize, usize),
    tags: (usize, usize),
    idle: Option<(f64, f64)>,
}

pub fn header(bundle: &Bundle, b: &Backends, cores: usize, load: &str) {
    println!(
        "# A store day on one box: {} + SSDLite, {cores} cores, load average before: {load}\n",
        bundle.manifest.name
    );
    for (model, backend, ms) in &b.timings {
        println!("- {model} on {backend}: {ms:.1} ms CPU a run (1 thread)");
    }
    println!(
        "- used: detector on {}, classifier on {}\n",
        b.detector.as_str(),
        b.classifier.as_str()
    );
}

fn cameras(cores: usize, ms_per_camera_second: f64) -> f64 {
    cores as f64 * 1000.0 / ms_per_camera_second
}

pub fn stream(
    s: &Stream,
    runs: &[(Mode, Run, f64)],
    far: Option<&Far>,
    decision: &DecisionParams,
    cores: usize,
) -> Row {
    let secs = s.seconds();
    let busy: usize = s
        .segments
        .iter()
        .filter(|g| g.busy)
        .map(|g| g.end - g.start)
        .sum();
    println!(
        "## {}: {} frames ({secs:.0} s at {} fps), {:.0}% busy, {}×{}\n",
        s.name,
        s.frames.len(),
        s.fps,
        100.0 * busy as f64 / s.frames.len() as f64,
        s.width,
        s.height
    );
    println!("| mode | detector runs/s | graph runs/s | crops classified/s | full decodes/s | CPU ms per camera-second | cameras served | × (a) |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let base = runs[0].1.ms_per_camera_second(s.fps, |_| true);
    let mut row = Row {
        name: s.name.clone(),
        goal: match s.name.as_str() {
            "day" => Some(10.0),
            "walkway" => Some(5.0),
            _ => None,
        },
        cameras: vec![],
        long: (0, 0),
        tags: (0, 0),
        idle: None,
    };
    for (mode, r, process_ms) in runs {
        let ms = r.ms_per_camera_second(s.fps, |_| true);
        let n = cameras(cores, ms);
        row.cameras.push((*mode, n));
        println!(
            "| {} | {:.2} | {:.2} | {:.2} | {:.2} | {ms:.0} | **{n:.2}** | {:.2}× |",
            mode.label(),
            r.detector_runs() as f64 / secs,
            r.graph_runs() as f64 / secs,
            r.classified as f64 / secs,
            r.rgb_made as f64 / secs,
            base / ms
        );
        let ratio = process_ms / r.cpu_ms();
        if !(0.9..1.1).contains(&ratio) {
            eprintln!(
                "note: {} {}: the process used {ratio:.2}× the measured thread's CPU",
                s.name,
                mode.short()
            );
        }
    }
    println!();
    let (_, a, _) = &runs[0];
    let coast = (PeopleConfig::default().max_missed_ms / s.dt_ms()) as usize;
    let people = compare::people_detected(a, coast);
    for (mode, r, _) in &runs[1..] {
        let m = compare::matches(&people, r, s.height);
        let rec = compare::recall(&m);
        let (n, same) = compare::tags(&people, &m, a, r, decision);
        let far_other = compare::far_tracks(&compare::people(r), s.height);
        println!(
            "{} against (a): {} people (confirmed tracks of (a), from confirmation to last detection); in view ≥ 1 s ({MUST_FRAMES} frames): **{}/{} found** (overlapped at IoU ≥ {MIN_IOU} by a confirmed track on > 50% of their frames); final tags equal for **{same}/{n}** ({:.1}%) of the found people classified in both; far people (median box centre in the top {:.0}%, ≥ 1 s): {}/{} found, confirmed far tracks (a) {} vs {}",
            mode.label(),
            rec.people,
            rec.long.1,
            rec.long.0,
            pct(same, n),
            FAR_TOP * 100.0,
            rec.far.1,
            rec.far.0,
            compare::far_tracks(&compare::people(a), s.height),
            far_other,
        );
        for (first, frames, covered, height) in &rec.missed {
            println!("  - missed: from frame {first}, {frames} frames in view, overlapped on {covered}, median height {height:.0} px");
        }
        if !rec.short.is_empty() {
            let list: Vec<String> = rec
                .short
                .iter()
                .map(|(f, found, first)| {
                    format!(
                        "{f} frames from {first} {}",
                        if *found { "found" } else { "not found" }
                    )
                })
                .collect();
            println!("  - shorter than 1 s: {}", list.join("; "));
        }
        if *mode == Mode::Gated {
            row.long = rec.long;
            row.tags = (n, same);
        }
    }
    println!();
    let gated = runs.iter().find(|r| r.0 == Mode::Gated).map(|r| &r.1);
    if let Some(c) = gated {
        extras(s, a, c, &mut row);
    }
    if let Some(f) = far {
        println!(
            "Far, small people ({} frames, every 8th): detections (at the detector's threshold) with their centre in the top {:.0}% of the frame, per frame: whole frame {:.2} (median height {:.0} px), {} squares of {:.0} px over the top {:.2} (median height {:.0} px)\n",
            f.frames,
            FAR_TOP * 100.0,
            f.whole as f64 / f.frames as f64,
            f.whole_height,
            f.squares.len(),
            f.squares[0].width(),
            f.regions as f64 / f.frames as f64,
            f.regions_height
        );
    }
    row
}

fn pct(a: usize, b: usize) -> f64 {
    100.0 * a as f64 / b.max(1) as f64
}

/// Idle cost, lighting, all motion and the crowd, from (a) and (c).
fn extras(s: &Stream, a: &Run, c: &Run, row: &mut Row) {
    let n = c.cpu_ns.len();
    let idle = |i: usize| s.idle(i);
    if (0..n).any(idle) {
        let (ia, ic) = (
            a.ms_per_camera_second(s.fps, idle),
            c.ms_per_camera_second(s.fps, idle),
        );
        let frames = (0..n).filter(|i| idle(*i)).count();
        let runs = (0..n)
            .filter(|i| idle(*i) && c.look[*i] != Look::None)
            .count();
        println!(
            "Idle ({frames} frames): CPU ms per camera-second (a) {ia:.0}, (c) **{ic:.1}** ({:.0}× less; cameras served on idle alone: {:.0}); (c) ran the detector on {runs} idle frames",
            ia / ic,
            2000.0 / ic
        );
        row.idle = Some((ia, ic));
        let stretches: Vec<String> = s
            .segments
            .iter()
            .filter(|g| !g.busy && g.start < n)
            .map(|g| {
                let runs: Vec<usize> = (g.start..g.end.min(n))
                    .filter(|i| c.look[*i] != Look::None)
                    .collect();
                let cpu = c.ms_per_camera_second(s.fps, |i| (g.start..g.end).contains(&i));
                let moving = runs.iter().filter(|i| c.motion_boxes[**i] > 0).count();
                let boxes_until = (g.start..g.end.min(n))
                    .rfind(|i| c.motion_boxes[*i] > 0)
                    .map_or(0.0, |l| (l - g.start) as f64 / s.fps);
                format!(
                    "{}–{}: {} runs ({moving} with motion boxes; motion boxes until {boxes_until:.1} s in), the last {:.1} s in, {cpu:.1} ms per camera-second",
                    g.start,
                    g.end - 1,
                    runs.len(),
                    runs.last().map_or(0.0, |l| (l - g.start) as f64 / s.fps)
                )
            })
            .collect();
        println!("  - (c) per idle stretch: {}", stretches.join("; "));
    }
    println!(
        "Motion in (c): {:.2} ms a frame (wall time, the grey image included), {} recalibrations, calibrating on {} frames",
        c.motion_ns as f64 / 1e6 / n as f64,
        c.recalibrated.iter().filter(|x| **x).count(),
        c.calibrating.iter().filter(|x| **x).count()
    );
    let fps = s.fps as usize;
    if let Some(at) = s.light_change_at.filter(|at| *at < n) {
        // The idle stretch the change falls in.
        let end = s
            .segments
            .iter()
            .find(|g| (g.start..g.end).contains(&at))
            .map_or(n, |g| g.end);
        let seconds: Vec<usize> = (at..end)
            .filter(|i| c.look[*i] != Look::None)
            .map(|i| (i - at) / fps)
            .collect();
        let mut distinct = seconds.clone();
        distinct.dedup();
        // Slow drift only: idle frames at least 10 s into their idle
        // stretch (after the start's first look and what the last busy
        // stretch left in the running average) and outside the 10 s after
        // the change.
        let settle = at + 10 * fps;
        let quiet = |i: usize| {
            s.segments
                .iter()
                .any(|g| !g.busy && (g.start + 10 * fps..g.end).contains(&i))
        };
        let drift = (0..n)
            .filter(|i| quiet(*i) && !(at..settle).contains(i) && c.look[*i] != Look::None)
            .count();
        let quiet_frames = (0..n)
            .filter(|i| quiet(*i) && !(at..settle).contains(i))
            .count();
        println!(
            "Lights at frame {at}: (c) ran the detector on {} frames in the {} s after it, in {} distinct seconds ({:?}); recalibrated at {:?}; slow drift only (idle frames ≥ 10 s into their idle stretch, outside the 10 s after the change: {quiet_frames} frames) {drift} runs",
            seconds.len(),
            (end - at) / fps,
            distinct.len(),
            distinct,
            c.recalibrated
                .iter()
                .enumerate()
                .filter(|x| *x.1)
                .map(|x| x.0)
                .collect::<Vec<_>>()
        );
    }
    // Detector runs in any one second (a sliding window of fps frames).
    let window = (0..n.saturating_sub(fps - 1))
        .map(|i| (i..i + fps).filter(|j| c.look[*j] != Look::None).count())
        .max()
        .unwrap_or(0);
    let mut ms: Vec<f64> = c.cpu_ns.iter().map(|x| *x as f64 / 1e6).collect();
    ms.sort_by(f64::total_cmp);
    // The longest run of frames with people in view and no detector run.
    let (mut gap, mut longest) = (0, 0);
    for i in 0..n {
        if c.look[i] == Look::None && !c.in_view[i].is_empty() {
            gap += 1;
            longest = longest.max(gap);
        } else {
            gap = 0;
        }
    }
    let whole = c.look.iter().filter(|l| **l == Look::Whole).count();
    println!(
        "(c) detector runs in any 1 s: at most {window} (detect_fps = {}); whole-frame runs {whole} of {}; regions deferred (over max_regions = {}) {} on {} frames; longest stretch with people in view and no detector run {longest} frames; CPU per frame median {:.1} ms, p99 {:.1} ms, max {:.1} ms\n",
        PeopleConfig::default().detect_fps,
        c.detector_runs(),
        PeopleConfig::default().max_regions,
        c.regions_deferred,
        c.look.len(),
        ms[n / 2],
        ms[(n * 99 / 100).min(n - 1)],
        ms[n - 1]
    );
}

pub fn summary(rows: &[Row], before: &str, after: &str) {
    println!("## Summary\n");
    println!("| stream | cameras (a) | cameras (b) | cameras (c) | goal (c) | (c): people ≥ 1 s found | (c): final tags equal | idle CPU ms per camera-second (a) → (c) |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let cam = |m: Mode| {
            r.cameras
                .iter()
                .find(|x| x.0 == m)
                .map_or("–".into(), |x| format!("{:.2}", x.1))
        };
        println!(
            "| {} | {} | {} | **{}** | {} | {}/{} | {}/{} ({:.1}%) | {} |",
            r.name,
            cam(Mode::Every),
            cam(Mode::EverySecond),
            cam(Mode::Gated),
            r.goal.map_or("–".into(), |g| format!("≥ {g}")),
            r.long.1,
            r.long.0,
            r.tags.1,
            r.tags.0,
            pct(r.tags.1, r.tags.0),
            r.idle
                .map_or("–".into(), |(a, c)| format!("{a:.0} → {c:.1}"))
        );
    }
    println!("\ncameras served = cores × 1000 / (CPU ms one camera needs per second of video), the work spread over the cores (as \"people, when due\" in docs/benchmarks.md)");
    println!("load average before: {before}; after: {after}");
}
