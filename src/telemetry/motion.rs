//! Per camera: what motion found and what the detector did about it
//! (people mode), for the health message, `/metrics` and the page.
//!
//! The camera thread reports each frame as a [`MotionSample`]
//! ([`CameraStats::motion`](super::CameraStats::motion)); the counters sit
//! under one short lock per frame, so a reader sees whole frames only, and
//! the cost's quantiles in a lock-free [`Histogram`]. A camera that never
//! reported a sample (not in people mode) has no [`MotionSnapshot`].

use super::Histogram;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Detector runs per second are counted over windows this long: the rate
/// covers the last 10 to 20 s (the previous window and the current one).
const WINDOW: Duration = Duration::from_secs(10);

/// One frame's motion and detector plan, as the camera thread reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MotionSample {
    /// Motion ran on this frame (people mode with `[cameras.motion] enabled`).
    pub measured: bool,
    /// Moving areas found.
    pub boxes: u32,
    /// Share of the grey image that moved.
    pub fraction: f32,
    /// The background is being relearnt (no boxes meanwhile).
    pub calibrating: bool,
    /// This frame started a recalibration.
    pub recalibrated: bool,
    /// What motion cost on this frame (the grey image included).
    pub cost: Duration,
    /// Detector runs on this frame: 0 = not run, 1 = whole frame or one region.
    pub detector_runs: u32,
    /// The detector saw the whole frame (else `detector_runs` regions).
    pub whole: bool,
    /// Regions left for a later frame (over `max_regions`).
    pub regions_deferred: u32,
}

/// One camera's motion counters (a field of [`super::CameraStats`]).
#[derive(Debug, Default)]
pub struct MotionStats {
    /// `None` until the camera's first sample.
    tally: Mutex<Option<Tally>>,
    /// Motion's cost per measured frame.
    cost: Histogram,
}

/// What [`MotionStats`] counts under its lock.
#[derive(Debug)]
struct Tally {
    frames: MotionFrames,
    recalibrations: u64,
    /// Motion's cost summed over the measured frames.
    cost: Duration,
    runs_whole: u64,
    runs_region: u64,
    skipped: u64,
    deferred: u64,
    /// The latest frame's sample.
    last: MotionSample,
    /// The current rate window: when it began and the runs in it; and the
    /// previous one's length and runs.
    window: (Instant, u64),
    previous: Option<(Duration, u64)>,
}

/// Measured frames by what motion made of them; they sum to the frames
/// motion ran on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct MotionFrames {
    /// Something moved (at least one moving area).
    pub moving: u64,
    /// Nothing moved.
    pub still: u64,
    /// Nothing reported: the background was being relearnt (the first
    /// frame, or after a sudden global change such as lights switched on).
    pub calibrating: u64,
}

/// What the person detector did, frames and graph runs since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct DetectorSnapshot {
    /// Runs on the whole frame.
    pub whole: u64,
    /// Runs on a square region (one run per region).
    pub regions: u64,
    /// Frames the detector did not run on (nothing moved and no one due,
    /// or over `detect_fps`).
    pub skipped_frames: u64,
    /// Runs (whole and regions) per second over the last 10 to 20 s, to
    /// 0.01.
    pub runs_per_s: f64,
}

/// A camera's motion and detector counters as the health message, `/metrics`
/// and `/api/status` show them.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct MotionSnapshot {
    /// Motion ran on the camera's latest frame (`[cameras.motion] enabled`);
    /// when it is off the detector runs on every frame `detect_fps` allows.
    pub enabled: bool,
    /// Something moved in the latest frame.
    pub moving: bool,
    /// Moving areas in the latest frame.
    pub boxes: u32,
    /// Share of the latest frame that moved (masked pixels left out), to
    /// 0.0001.
    pub fraction: f64,
    /// The background is being relearnt now (no moving areas meanwhile).
    pub calibrating: bool,
    pub frames: MotionFrames,
    /// Sudden global changes that made motion relearn the background.
    pub recalibrations: u64,
    /// Motion's mean cost per measured frame (the grey image included), ms
    /// to 0.001.
    pub mean_ms: f64,
    /// Its 99th percentile, ms (a histogram bucket's upper edge: at most
    /// 2× the true value).
    pub p99_ms: f64,
    pub detector: DetectorSnapshot,
    /// Regions left for a later frame because a frame had more than
    /// `max_regions`.
    pub regions_deferred: u64,
    /// Motion's cost summed over the measured frames (`/metrics`).
    #[serde(skip)]
    pub cost: Duration,
}

impl Tally {
    fn new(now: Instant) -> Self {
        Self {
            frames: MotionFrames::default(),
            recalibrations: 0,
            cost: Duration::ZERO,
            runs_whole: 0,
            runs_region: 0,
            skipped: 0,
            deferred: 0,
            last: MotionSample::default(),
            window: (now, 0),
            previous: None,
        }
    }

    fn add(&mut self, s: &MotionSample, now: Instant) {
        if s.measured {
            let state = if s.boxes > 0 {
                &mut self.frames.moving
            } else if s.calibrating {
                &mut self.frames.calibrating
            } else {
                &mut self.frames.still
            };
            *state += 1;
            self.recalibrations += u64::from(s.recalibrated);
            self.cost += s.cost;
        }
        let runs = u64::from(s.detector_runs);
        match (runs, s.whole) {
            (0, _) => self.skipped += 1,
            (_, true) => self.runs_whole += runs,
            (_, false) => self.runs_region += runs,
        }
        self.deferred += u64::from(s.regions_deferred);
        self.last = *s;
        let began = now.saturating_duration_since(self.window.0);
        if began >= WINDOW {
            self.previous = Some((began, self.window.1));
            self.window = (now, 0);
        }
        self.window.1 += runs;
    }

    /// Runs per second over the current window and the previous one (that
    /// one dropped once the current has lasted a window on its own: no
    /// frames came since).
    fn rate(&self, now: Instant) -> f64 {
        let current = now.saturating_duration_since(self.window.0);
        let (mut span, mut runs) = (current, self.window.1);
        if let Some((d, n)) = self.previous.filter(|_| current < WINDOW) {
            span += d;
            runs += n;
        }
        if span.is_zero() {
            return 0.0;
        }
        (runs as f64 / span.as_secs_f64() * 100.0).round() / 100.0
    }
}

impl MotionStats {
    fn record(&self, sample: &MotionSample, now: Instant) {
        if sample.measured {
            self.cost.record(sample.cost, 1);
        }
        self.tally
            .lock()
            .expect("motion stats")
            .get_or_insert_with(|| Tally::new(now))
            .add(sample, now);
    }

    /// The counters now; `None` before the camera's first sample.
    pub fn snapshot(&self) -> Option<MotionSnapshot> {
        self.snapshot_at(Instant::now())
    }

    fn snapshot_at(&self, now: Instant) -> Option<MotionSnapshot> {
        let guard = self.tally.lock().expect("motion stats");
        let t = guard.as_ref()?;
        let f = t.frames;
        let measured = f.moving + f.still + f.calibrating;
        let mean_ms = match measured {
            0 => 0.0,
            n => (t.cost.as_secs_f64() * 1e6 / n as f64).round() / 1000.0,
        };
        Some(MotionSnapshot {
            enabled: t.last.measured,
            moving: t.last.measured && t.last.boxes > 0,
            boxes: t.last.boxes,
            fraction: (f64::from(t.last.fraction) * 1e4).round() / 1e4,
            calibrating: t.last.measured && t.last.calibrating,
            frames: f,
            recalibrations: t.recalibrations,
            mean_ms,
            p99_ms: self.cost.quantiles().p99,
            detector: DetectorSnapshot {
                whole: t.runs_whole,
                regions: t.runs_region,
                skipped_frames: t.skipped,
                runs_per_s: t.rate(now),
            },
            regions_deferred: t.deferred,
            cost: t.cost,
        })
    }
}

impl super::CameraStats {
    /// Records one frame's motion and detector plan.
    pub fn motion(&self, sample: &MotionSample) {
        self.motion_stats.record(sample, Instant::now());
    }
}

#[cfg(test)]
mod tests;
