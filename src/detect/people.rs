//! One camera's people stage: detect (every k-th frame), track, and pick
//! the tracks whose crop is due for classification.
//!
//! A confirmed track is classified at once, then again only when it is
//! due — `classify_every_ms` since its last classification, or its box grew
//! by `regrow` (a closer, better view) — up to `max_classifications`. Until
//! the person's tags have settled (the inference side says so through
//! [`Schedule::settled`] once [`Settling`] sees `settle_after`
//! classifications in a row leave them unchanged) the interval is the
//! shorter `settle_every_ms`: views go to the people whose tags are still
//! in doubt. A crop
//! is skipped (counted) when the box is under `min_crop_height` pixels or
//! cut by the frame's edge; the track stays due. At most
//! `max_crops_per_frame` crops leave one frame — people never classified
//! first, then those waiting longest; the others stay due (counted as
//! deferred), so a crowd spreads over the next frames instead of piling
//! work on one.

use super::motion::{Luma, Motion, Moved};
use super::regions::{Plan, Planned, Planner};
use super::track::{TrackId, Tracker, TrackerConfig};
use super::{BoxF, Detection, Detector};
use crate::capture::Frame;
use crate::config::{MotionConfig, PeopleConfig, Shape};
use crate::infer::InferError;
use crate::preprocess::kernels::Rect;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// When a track was last classified.
#[derive(Debug, Clone, Copy)]
struct Classified {
    count: u32,
    at_ms: u64,
    height: f32,
    /// The person's tags have settled (see [`Settling`]).
    settled: bool,
}

/// Whether a person's tags have settled: the decision on their
/// accumulated probabilities came out the same `after` classifications in
/// a row. Kept where the decisions are made (the inference side), told to
/// the [`Schedule`] through [`Schedule::settled`].
#[derive(Debug, Clone, Default)]
pub struct Settling {
    last: Option<Vec<usize>>,
    same: u32,
}

impl Settling {
    /// The tags decided after one more classification; true once settled.
    pub fn observe(&mut self, labels: &[usize], after: u32) -> bool {
        if self.last.as_deref() == Some(labels) {
            self.same += 1;
        } else {
            self.last = Some(labels.to_vec());
            self.same = 0;
        }
        self.same >= after
    }
}

/// How a person's views (one probability vector per classification) are
/// summarised for the decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Summary {
    /// Per class, the median of the views: a view where the crop caught
    /// someone else's coat, half the person or a blur moves it little.
    Median,
    /// Per class, the mean (what the daemon used before 2026-12-05; kept
    /// for `stylecam bench people --summary mean`).
    Mean,
}

impl Summary {
    /// `views` summarised; empty for no views.
    pub fn of(self, views: &[Vec<f32>]) -> Vec<f32> {
        let Some(first) = views.first() else {
            return vec![];
        };
        let n = views.len();
        (0..first.len())
            .map(|c| match self {
                Summary::Mean => views.iter().map(|p| p[c]).sum::<f32>() / n as f32,
                Summary::Median => {
                    let mut v: Vec<f32> = views.iter().map(|p| p[c]).collect();
                    v.sort_by(f32::total_cmp);
                    if n % 2 == 1 {
                        v[n / 2]
                    } else {
                        (v[n / 2 - 1] + v[n / 2]) / 2.0
                    }
                }
            })
            .collect()
    }
}

/// What one frame changed and what to classify.
#[derive(Debug, Default)]
pub struct Step {
    /// The detector ran on this frame.
    pub detected: bool,
    pub detections: usize,
    /// Tracks confirmed on this frame.
    pub entered: Vec<TrackId>,
    /// Confirmed tracks that ended (left the view), with their dwell in ms.
    pub left: Vec<(TrackId, u64)>,
    /// Crops to classify: the track and its (grown, clipped) box.
    pub crops: Vec<(TrackId, BoxF)>,
    /// Due crops skipped: too small, cut by the frame edge.
    pub too_small: usize,
    pub edge_cut: usize,
    /// Due crops left for a later frame: over `max_crops_per_frame`.
    pub deferred: usize,
    /// Confirmed tracks in view after this frame.
    pub active: usize,
    /// Motion on this frame (`None`: motion is off, or [`PeopleStage::step`]).
    pub moved: Option<Moved>,
    /// What motion cost on this frame, the grey image included.
    pub motion_cost: Duration,
    /// Where the detector looked on this frame (`None`: it did not run).
    pub plan: Option<Plan>,
    /// Regions left for a later detector frame (over `max_regions`).
    pub regions_deferred: usize,
}

/// A frame's RGB8 pixels with the masks painted, made by
/// [`PeopleStage::step_frame`] only when the detector or a crop needed it.
#[derive(Debug, Clone)]
pub struct Rgb {
    pub data: Vec<u8>,
    pub width: u32,
    pub height: u32,
}

/// Why a frame could not go through the people stage.
#[derive(Debug)]
pub enum StageError {
    /// The frame does not convert (to grey or RGB).
    Frame(crate::preprocess::PreprocessError),
    Detector(InferError),
}

impl std::fmt::Display for StageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Frame(e) => write!(f, "{e}"),
            Self::Detector(e) => write!(f, "person detector: {e}"),
        }
    }
}

pub struct PeopleStage {
    detector: Detector,
    schedule: Schedule,
    /// Where the detector looks ([`step_frame`](Self::step_frame)).
    looker: Looker,
}

/// Motion, the region planner and who stands still, for one camera.
struct Looker {
    motion: Option<Motion>,
    planner: Planner,
    masks: Vec<Shape>,
    /// Per track: where its box settled, since when, when last looked at.
    still: HashMap<TrackId, Still>,
    /// Look at the whole frame on the next detector frame (the first, and
    /// after motion recalibrated: somebody may stand still in view).
    whole_next: bool,
    clock_ms: u64,
}

/// A person's box overlapping where it settled by this much...
const STILL_IOU: f32 = 0.7;
/// ...for this long stands still: looked at only every
/// `stationary_interval_ms` (or where motion is).
const STILL_AFTER_MS: u64 = 3000;

#[derive(Debug, Clone, Copy)]
struct Still {
    anchor: BoxF,
    since_ms: u64,
    looked_ms: u64,
}

/// The tracker and the classification schedule (everything of the people
/// stage but the detector).
pub struct Schedule {
    tracker: Tracker,
    config: PeopleConfig,
    classified: HashMap<TrackId, Classified>,
    frames: u64,
    /// Time since the last detector run, ms.
    since_detect_ms: u64,
    clock_ms: u64,
}

impl PeopleStage {
    /// Whole-frame detection on every `detect_every`-th frame ([`step`](Self::step)).
    pub fn new(detector: Detector, config: PeopleConfig) -> Self {
        let off = MotionConfig {
            enabled: false,
            ..MotionConfig::default()
        };
        Self::with_motion(detector, config, &off, vec![])
    }

    /// The daemon's stage ([`step_frame`](Self::step_frame)): motion (when
    /// `motion.enabled`) decides where the detector looks; `masks` are
    /// painted into every grey image and RGB frame it makes.
    pub fn with_motion(
        detector: Detector,
        config: PeopleConfig,
        motion: &MotionConfig,
        masks: Vec<Shape>,
    ) -> Self {
        let high = detector.spec().score_threshold;
        let spec = detector.spec();
        let mut planner = Planner::new(
            (spec.width, spec.height),
            config.max_regions,
            config.whole_frame_at,
        );
        if config.region_side > 0 {
            planner = planner.with_min_side(config.region_side);
        }
        Self {
            detector,
            looker: Looker {
                motion: motion.enabled.then(|| Motion::new(motion)),
                planner,
                masks,
                still: HashMap::new(),
                whole_next: true,
                clock_ms: 0,
            },
            schedule: Schedule::new(config, high),
        }
    }

    /// One frame as captured, `dt_ms` after the previous one: motion on
    /// its grey image, then — only where needed — the detector on regions
    /// of its (masked) RGB, which is returned when it was made (for crops).
    pub fn step_frame(
        &mut self,
        frame: &Frame,
        dt_ms: u64,
    ) -> Result<(Step, Option<Rgb>), StageError> {
        let t0 = Instant::now();
        let looker = &mut self.looker;
        let moved = match &mut looker.motion {
            Some(m) => {
                let luma = Luma::of(frame, m.config().frame_height, &looker.masks)
                    .map_err(StageError::Frame)?;
                Some(m.update(&luma))
            }
            None => None,
        };
        let motion_cost = t0.elapsed();
        looker.clock_ms += dt_ms;
        if moved.as_ref().is_some_and(|m| m.recalibrated) {
            looker.whole_next = true;
        }
        let finish = |mut step: Step, plan, deferred| {
            step.moved = moved.clone();
            step.motion_cost = motion_cost;
            step.plan = plan;
            step.regions_deferred = deferred;
            step
        };
        let wanted = if self.schedule.detector_due(dt_ms) {
            self.looker.wanted(
                moved.as_ref(),
                self.schedule.tracker.tracks(),
                &self.schedule.config,
            )
        } else {
            None
        };
        let Some(wanted) = wanted else {
            let step = self
                .schedule
                .step_looked(None, None, frame.width, frame.height, dt_ms);
            return Ok((finish(step, None, 0), None));
        };
        let (rgb, w, h) = crate::preprocess::to_rgb8(frame).map_err(StageError::Frame)?;
        let mut rgb = rgb.into_owned();
        super::mask::paint(&mut rgb, w, h, &self.looker.masks);
        let Planned { plan, deferred } = match wanted {
            Wanted::Whole => Planned {
                plan: Plan::Whole,
                deferred: 0,
            },
            Wanted::Boxes(b) => self.looker.planner.plan(&b, w, h),
        };
        let low = self.schedule.low_score();
        let found = match &plan {
            Plan::Whole => self.detector.detect_down_to(&rgb, w, h, low),
            Plan::Regions(r) => self.detector.detect_regions(&rgb, w, h, r, low),
        }
        .map_err(StageError::Detector)?;
        let looked = match &plan {
            Plan::Whole => None,
            Plan::Regions(r) => Some(r.as_slice()),
        };
        let step = self.schedule.step_looked(Some(&found), looked, w, h, dt_ms);
        self.looker.looked(self.schedule.tracker.tracks(), looked);
        let rgb = Rgb {
            data: rgb,
            width: w,
            height: h,
        };
        Ok((finish(step, Some(plan), deferred), Some(rgb)))
    }

    /// One RGB8 frame (masks painted), `dt_ms` after the previous one.
    pub fn step(
        &mut self,
        rgb: &[u8],
        width: u32,
        height: u32,
        dt_ms: u64,
    ) -> Result<Step, InferError> {
        if !self.schedule.detects_next() {
            return Ok(self.schedule.step(None, width, height, dt_ms));
        }
        let low = self.schedule.low_score();
        let found = self.detector.detect_down_to(rgb, width, height, low)?;
        Ok(self.schedule.step(Some(&found), width, height, dt_ms))
    }

    /// See [`Schedule::settled`].
    pub fn settled(&mut self, id: TrackId) {
        self.schedule.settled(id);
    }

    /// The people in view now (confirmed tracks) and their boxes.
    pub fn in_view(&self) -> Vec<(TrackId, BoxF)> {
        self.schedule
            .tracker
            .tracks()
            .iter()
            .filter(|t| t.confirmed)
            .map(|t| (t.id, t.bbox))
            .collect()
    }

    /// The camera stopped: every confirmed track leaves.
    pub fn finish(&mut self) -> Vec<(TrackId, u64)> {
        self.schedule.finish()
    }

    /// See [`Schedule::age`].
    pub fn age(&mut self, dt_ms: u64) -> Vec<(TrackId, u64)> {
        self.schedule.age(dt_ms)
    }
}

/// What the detector should look at on a frame it may run on.
enum Wanted {
    Whole,
    /// Boxes (frame pixels) to plan regions around; never empty.
    Boxes(Vec<BoxF>),
}

impl Looker {
    /// What needs looking at: the whole frame with motion off (and while
    /// motion calibrates, and once after it did); else motion's boxes, the people
    /// who move, and those standing still whose `stationary_interval_ms`
    /// is up. `None`: nothing (the detector does not run).
    fn wanted(
        &mut self,
        moved: Option<&Moved>,
        tracks: &[super::track::Track],
        config: &PeopleConfig,
    ) -> Option<Wanted> {
        let Some(moved) = moved else {
            return Some(Wanted::Whole);
        };
        // Blind while motion relearns the scene (at start, after the lights
        // changed: a few frames, at most motion's give-up time): the whole
        // frame at detect_fps meanwhile.
        if std::mem::take(&mut self.whole_next) || moved.calibrating {
            return Some(Wanted::Whole);
        }
        let now = self.clock_ms;
        let mut boxes = moved.boxes.clone();
        for t in tracks {
            let still = self.still.get(&t.id);
            let standing = still.is_some_and(|s| now - s.since_ms >= STILL_AFTER_MS);
            let due = still.is_none_or(|s| now - s.looked_ms >= config.stationary_interval_ms);
            if !standing || due {
                boxes.push(t.bbox);
            }
        }
        (!boxes.is_empty()).then_some(Wanted::Boxes(boxes))
    }

    /// After a detector run that looked at `looked` (`None`: everything):
    /// who moved, who was looked at; tracks gone are forgotten.
    fn looked(&mut self, tracks: &[super::track::Track], looked: Option<&[BoxF]>) {
        let now = self.clock_ms;
        self.still
            .retain(|id, _| tracks.iter().any(|t| t.id == *id));
        for t in tracks {
            let s = self.still.entry(t.id).or_insert(Still {
                anchor: t.bbox,
                since_ms: now,
                looked_ms: now,
            });
            if t.bbox.iou(&s.anchor) < STILL_IOU {
                s.anchor = t.bbox;
                s.since_ms = now;
            }
            if looked.is_none_or(|l| inside(&t.bbox, l)) {
                s.looked_ms = now;
            }
        }
    }
}

impl Schedule {
    /// `high_score`: the detector's `score_threshold` — detections below
    /// it only continue tracks, and give no crop.
    pub fn new(config: PeopleConfig, high_score: f32) -> Self {
        let tracker = TrackerConfig {
            high_score,
            ..(&config).into()
        };
        Self {
            tracker: Tracker::new(tracker),
            config,
            classified: HashMap::new(),
            frames: 0,
            since_detect_ms: 0,
            clock_ms: 0,
        }
    }

    /// The lowest detection score the tracker uses (the detector is run
    /// down to it).
    pub fn low_score(&self) -> f32 {
        self.config.low_score.min(self.tracker.config().high_score)
    }

    /// Whether the next frame runs the detector (every `detect_every`-th).
    pub fn detects_next(&self) -> bool {
        self.frames
            .is_multiple_of(u64::from(self.config.detect_every.max(1)))
    }

    /// One frame `dt_ms` after the previous one, with the detector's
    /// findings when it ran on it (on the whole frame).
    pub fn step(
        &mut self,
        found: Option<&[Detection]>,
        width: u32,
        height: u32,
        dt_ms: u64,
    ) -> Step {
        self.step_looked(found, None, width, height, dt_ms)
    }

    /// Whether the detector may run on a frame `dt_ms` after the previous
    /// one: every `detect_every`-th frame, and at most `detect_fps` times a
    /// second (within a quarter frame).
    pub fn detector_due(&self, dt_ms: u64) -> bool {
        if !self.detects_next() {
            return false;
        }
        let fps = self.config.detect_fps;
        if fps <= 0.0 || self.frames == 0 {
            return true;
        }
        // A quarter frame of slack: a 10 fps camera's jitter does not halve
        // 5 a second, and a 7 fps camera does not reach 7.
        let since = (self.since_detect_ms + dt_ms) as f32;
        since + dt_ms as f32 / 4.0 >= 1000.0 / fps
    }

    /// [`step`](Self::step) after a detector run that looked only at
    /// `looked` (squares in frame pixels; `None`: the whole frame): the
    /// people it did not look at are neither missed nor classified.
    pub fn step_looked(
        &mut self,
        found: Option<&[Detection]>,
        looked: Option<&[BoxF]>,
        width: u32,
        height: u32,
        dt_ms: u64,
    ) -> Step {
        let mut step = Step::default();
        self.clock_ms += dt_ms;
        self.since_detect_ms += dt_ms;
        self.frames += 1;
        let Some(found) = found else {
            step.active = self.tracker.tracks().iter().filter(|t| t.confirmed).count();
            return step;
        };
        step.detected = true;
        let high = self.tracker.config().high_score;
        step.detections = found.iter().filter(|d| d.score >= high).count();
        // One run's miss counts at most half of `max_missed_ms`: a person
        // standing still, looked at only every `stationary_interval_ms`,
        // is not dropped by a single missed re-check.
        let since = std::mem::take(&mut self.since_detect_ms);
        let dt = since.min(self.config.max_missed_ms / 2);
        let update = self.tracker.update_looked(found, dt, looked);
        step.entered = update.confirmed;
        for t in update.ended {
            self.classified.remove(&t.id);
            step.left.push((t.id, t.age_ms));
        }
        let (w, h) = (width as f32, height as f32);
        let c = &self.config;
        // The due crops, each with its wait: never classified first, then
        // the longest since its last classification.
        let mut due = Vec::new();
        for t in self.tracker.tracks().iter().filter(|t| t.confirmed) {
            step.active += 1;
            // A crop only of a confident view.
            let Some(d) = t.detected.filter(|d| d.score >= high) else {
                continue;
            };
            let b = d.bbox;
            if looked.is_some_and(|l| !inside(&b, l)) {
                continue;
            }
            let wait = match self.classified.get(&t.id) {
                None => u64::MAX,
                Some(p) => {
                    let since = self.clock_ms - p.at_ms;
                    let every = if p.settled || c.settle_after == 0 {
                        c.classify_every_ms
                    } else {
                        c.settle_every_ms
                    };
                    if p.count >= c.max_classifications
                        || (since < every && b.height() < p.height * c.regrow)
                    {
                        continue;
                    }
                    since
                }
            };
            if b.height() < c.min_crop_height as f32 {
                step.too_small += 1;
                continue;
            }
            let edge = 2.0;
            if b.x0 <= edge || b.y0 <= edge || b.x1 >= w - edge || b.y1 >= h - edge {
                step.edge_cut += 1;
                continue;
            }
            due.push((wait, t.id, b));
        }
        // Stable: equal waits keep the tracker's order.
        due.sort_by_key(|d| std::cmp::Reverse(d.0));
        let cap = c.max_crops_per_frame.max(1) as usize;
        step.deferred = due.len().saturating_sub(cap);
        for (_, id, b) in due.into_iter().take(cap) {
            let p = self.classified.entry(id).or_insert(Classified {
                count: 0,
                at_ms: 0,
                height: 0.0,
                settled: false,
            });
            p.count += 1;
            p.at_ms = self.clock_ms;
            p.height = b.height();
            step.crops.push((id, b.grow(c.margin).clip(w, h)));
        }
        step
    }

    /// The inference side decided that `id`'s tags have settled: from now
    /// on it is classified at the plain `classify_every_ms` pace. (A track
    /// that already left is ignored.)
    pub fn settled(&mut self, id: TrackId) {
        if let Some(p) = self.classified.get_mut(&id) {
            p.settled = true;
        }
    }

    /// No frame for `dt_ms` (the camera is interrupted): every track
    /// misses, and those missed longer than `max_missed_ms` leave (the
    /// confirmed ones are returned with their dwell), as if frames without
    /// anybody had come. A short interruption keeps the tracks.
    pub fn age(&mut self, dt_ms: u64) -> Vec<(TrackId, u64)> {
        self.clock_ms += dt_ms;
        let dt = std::mem::take(&mut self.since_detect_ms) + dt_ms;
        let update = self.tracker.update(&[], dt);
        update
            .ended
            .into_iter()
            .map(|t| {
                self.classified.remove(&t.id);
                (t.id, t.age_ms)
            })
            .collect()
    }

    /// The camera stopped: every confirmed track leaves.
    pub fn finish(&mut self) -> Vec<(TrackId, u64)> {
        self.classified.clear();
        self.tracker
            .finish()
            .into_iter()
            .map(|t| (t.id, t.age_ms))
            .collect()
    }
}

/// Whether `b` lies mostly (half its area or more) inside `squares`: the
/// planner's own measure ([`super::regions::covered`]), as the tracker uses.
pub fn inside(b: &BoxF, squares: &[BoxF]) -> bool {
    super::regions::covered(b, squares) >= 0.5
}

/// The whole pixels `b` covers in a `width × height` frame: clipped,
/// rounded outwards, at least 1×1.
pub fn crop_rect(width: u32, height: u32, b: &BoxF) -> Rect {
    let b = b.clip(width as f32, height as f32);
    let x0 = (b.x0.floor() as u32).min(width.saturating_sub(1));
    let y0 = (b.y0.floor() as u32).min(height.saturating_sub(1));
    let x1 = (b.x1.ceil() as u32).clamp(x0 + 1, width);
    let y1 = (b.y1.ceil() as u32).clamp(y0 + 1, height);
    Rect {
        x: x0,
        y: y0,
        w: x1 - x0,
        h: y1 - y0,
    }
}

/// The pixels of `b` ([`crop_rect`]) cut out of a packed RGB8
/// `width × height` frame: `(rgb, w, h)`.
pub fn crop(rgb: &[u8], width: u32, height: u32, b: &BoxF) -> (Vec<u8>, u32, u32) {
    let r = crop_rect(width, height, b);
    (r.cut(rgb, width), r.w, r.h)
}

#[cfg(test)]
mod looker_tests;

#[cfg(test)]
mod tests {
    use super::*;

    /// A crowd of 40 with at most 8 crops a frame: every frame classifies
    /// 8, nobody twice before everyone once, the rest deferred and counted.
    #[test]
    fn a_crowd_larger_than_the_frame_cap_waits_its_turn() {
        let config = PeopleConfig {
            min_hits: 1,
            max_crops_per_frame: 8,
            settle_after: 0,
            ..PeopleConfig::default()
        };
        let mut s = Schedule::new(config, 0.5);
        let crowd: Vec<Detection> = (0..40)
            .map(|i| {
                let (x, y) = (
                    (i % 10) as f32 * 60.0 + 10.0,
                    (i / 10) as f32 * 110.0 + 10.0,
                );
                Detection {
                    bbox: BoxF::new(x, y, x + 50.0, y + 100.0),
                    score: 0.9,
                    class: 1,
                }
            })
            .collect();
        let mut seen = std::collections::HashSet::new();
        for frame in 0..5 {
            let step = s.step(Some(&crowd), 640, 480, 100);
            assert_eq!(step.active, 40);
            assert_eq!(step.crops.len(), 8, "frame {frame}");
            assert_eq!(step.deferred, 32 - 8 * frame, "frame {frame}");
            for (id, _) in &step.crops {
                assert!(
                    seen.insert(*id),
                    "{id:?} classified twice before the others once"
                );
            }
        }
        assert_eq!(seen.len(), 40);
        // Everyone classified once and not yet due again: no crop, none deferred.
        let step = s.step(Some(&crowd), 640, 480, 100);
        assert_eq!((step.crops.len(), step.deferred), (0, 0));
        // Due again after classify_every_ms: the longest waiting first.
        let step = s.step(Some(&crowd), 640, 480, 2000);
        assert_eq!((step.crops.len(), step.deferred), (8, 32));
    }

    /// A person whose tags are still in doubt is classified every
    /// `settle_every_ms`; once settled, every `classify_every_ms`.
    #[test]
    fn people_in_doubt_are_classified_sooner_until_their_tags_settle() {
        let config = PeopleConfig {
            min_hits: 1,
            settle_after: 2,
            settle_every_ms: 500,
            classify_every_ms: 2000,
            max_classifications: 20,
            ..PeopleConfig::default()
        };
        let mut s = Schedule::new(config.clone(), 0.5);
        let one = [Detection {
            bbox: BoxF::new(100.0, 100.0, 150.0, 200.0),
            score: 0.9,
            class: 1,
        }];
        let mut settling = Settling::default();
        // The tags the inference side decides after each classification.
        let decided = [vec![1], vec![2], vec![2], vec![2], vec![2]];
        let mut at = vec![];
        let mut n = 0;
        for frame in 0..100u64 {
            let step = s.step(Some(&one), 640, 480, 100);
            for (id, _) in step.crops {
                at.push(frame);
                if settling.observe(&decided[n.min(4)], config.settle_after) {
                    s.settled(id);
                }
                n += 1;
            }
        }
        // In doubt: 0.5 s apart (frames 0, 5, 10, 15); settled after the
        // third equal decision (frame 15), then 2 s apart.
        assert_eq!(at[..6], [0, 5, 10, 15, 35, 55]);
        let mut never = Settling::default();
        assert!(!never.observe(&[3], 2) && !never.observe(&[3], 2) && never.observe(&[3], 2));
        assert!(!never.observe(&[], 2), "a change starts the count again");
    }

    /// A camera that stops delivering frames: the people it held leave
    /// once `max_missed_ms` has passed without a frame, not when frames
    /// come again (they were listed in view while the camera was down).
    #[test]
    fn people_leave_a_camera_that_is_interrupted() {
        let config = PeopleConfig {
            min_hits: 1,
            max_missed_ms: 1500,
            ..PeopleConfig::default()
        };
        let mut s = Schedule::new(config, 0.5);
        let two = [100.0f32, 300.0].map(|x| Detection {
            bbox: BoxF::new(x, 100.0, x + 50.0, 200.0),
            score: 0.9,
            class: 1,
        });
        let step = s.step(Some(&two), 640, 480, 0);
        assert_eq!(step.entered.len(), 2);
        s.step(Some(&two), 640, 480, 100);
        assert!(s.age(1000).is_empty(), "a short interruption keeps them");
        let left = s.age(1000);
        assert_eq!(left.len(), 2, "gone 2 s > max_missed_ms");
        assert!(left.iter().all(|&(_, dwell)| dwell == 2100), "{left:?}");
        assert!(s.tracker.tracks().is_empty());
        // Back: the same people are new tracks.
        let step = s.step(Some(&two), 640, 480, 100);
        assert_eq!(step.entered.len(), 2);
        assert!(step
            .entered
            .iter()
            .all(|id| !left.iter().any(|l| l.0 == *id)));
    }

    #[test]
    fn crop_cuts_the_box_and_stays_inside() {
        let (w, h) = (4u32, 3u32);
        let rgb: Vec<u8> = (0..w * h * 3).map(|i| i as u8).collect();
        let (c, cw, ch) = crop(&rgb, w, h, &BoxF::new(1.2, 1.0, 2.5, 2.0));
        assert_eq!((cw, ch), (2, 1));
        assert_eq!(c, rgb[(4 + 1) * 3..(4 + 3) * 3].to_vec());
        let (_, cw, ch) = crop(&rgb, w, h, &BoxF::new(-5.0, -5.0, 50.0, 50.0));
        assert_eq!((cw, ch), (4, 3));
        let (c, cw, ch) = crop(&rgb, w, h, &BoxF::new(9.0, 9.0, 9.0, 9.0));
        assert_eq!((cw, ch, c.len()), (1, 1, 3));
    }
}
