//! Multi-object tracking per camera, SORT-style: each track predicts its
//! box with a constant-velocity motion model (an alpha-beta filter on the
//! box's centre; its size is smoothed, not extrapolated), detections are
//! assigned to predictions by optimal IoU matching (the Hungarian method on
//! `1 − IoU`, pairs below `min_iou` forbidden), then the tracks left over
//! with the low-score detections by IoU (ByteTrack's second association: a
//! person half hidden scores low), then with the confident detections left
//! by the distance of their centres (within half the track's height,
//! similar heights: a person whose box jumped or who was missed for a
//! while). Only confident detections (`high_score`) start tracks. A track
//! that misses detections coasts on its prediction, its velocity fading,
//! for up to `max_missed_ms` before it ends.
//!
//! Track ids are random per run (a per-tracker random key permutes a
//! counter): they never repeat within a run and carry nothing that links a
//! person across runs or cameras. There is no appearance or biometric
//! feature: a track is only a box that moves.

use super::{BoxF, Detection};
use std::hash::{BuildHasher, Hasher};
use std::time::Instant;

/// The tracker's clock: the time between frames on the monotonic clock, so
/// that a step of the wall clock (NTP, an operator, a box without a
/// real-time clock setting itself) neither ages tracks nor freezes them.
/// Frames' wall-clock times only go into payloads.
#[derive(Debug, Default)]
pub struct Clock {
    last: Option<Instant>,
}

impl Clock {
    /// The longest step one tick may take (a camera thread that stalled).
    pub const MAX_STEP_MS: u64 = 10_000;

    /// Milliseconds since the previous tick (0 for the first), at most
    /// [`Self::MAX_STEP_MS`].
    pub fn tick(&mut self, now: Instant) -> u64 {
        let dt = self
            .last
            .map_or(0, |l| now.saturating_duration_since(l).as_millis() as u64);
        self.last = Some(now);
        dt.min(Self::MAX_STEP_MS)
    }
}

/// Tracker settings (the camera's `[cameras.people]` keys).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrackerConfig {
    /// A detection and a track's prediction pair only above this IoU.
    pub min_iou: f32,
    /// Detections a new track needs before it is confirmed (counted).
    pub min_hits: u32,
    /// A track with no detection for this long ends.
    pub max_missed_ms: u64,
    /// Detections scoring below this only continue tracks (they never
    /// start one): the detector's `score_threshold`. 0 = every detection.
    pub high_score: f32,
    /// Filter gains: how much of a measurement's surprise moves the
    /// position (alpha) and the velocity (beta).
    pub alpha: f32,
    pub beta: f32,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        Self {
            min_iou: 0.2,
            min_hits: 3,
            max_missed_ms: 1500,
            high_score: 0.0,
            alpha: 0.6,
            beta: 0.2,
        }
    }
}

impl From<&crate::config::PeopleConfig> for TrackerConfig {
    fn from(p: &crate::config::PeopleConfig) -> Self {
        Self {
            min_iou: p.min_iou,
            min_hits: p.min_hits,
            max_missed_ms: p.max_missed_ms,
            ..Self::default()
        }
    }
}

/// The second stage pairs a track and a detection whose centres are less
/// than this many of the track's box heights apart (0.75 made fewer tracks
/// on vtest.avi but switched identities once more: docs/benchmarks.md)...
const NEAR: f32 = 0.5;
/// ...and whose heights are within this ratio.
const NEAR_HEIGHTS: (f32, f32) = (0.67, 1.5);

/// A region run looked at a track when at least this share of its
/// predicted box lay in the run's squares.
const LOOKED: f32 = 0.5;

/// A per-run random track id (16 hex digits on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrackId(pub u64);

impl std::fmt::Display for TrackId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// One tracked object.
#[derive(Debug, Clone, PartialEq)]
pub struct Track {
    pub id: TrackId,
    /// The filtered box at the last update (frame pixels).
    pub bbox: BoxF,
    /// The last detection's own box and score (what a crop is cut from).
    pub detected: Option<Detection>,
    /// State `[cx, cy, w, h]` and the centre's velocity per second.
    state: [f32; 4],
    velocity: [f32; 2],
    pub hits: u32,
    /// Time since the last detection, ms.
    pub missed_ms: u64,
    /// Time since the track started, ms.
    pub age_ms: u64,
    pub confirmed: bool,
}

impl Track {
    fn from_state(s: [f32; 4]) -> BoxF {
        let [cx, cy, w, h] = s;
        BoxF::new(cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0)
    }

    /// The box `dt` seconds on: the centre moves, the size stays.
    fn predicted(&self, dt: f32) -> [f32; 4] {
        let mut p = self.state;
        p[0] += self.velocity[0] * dt;
        p[1] += self.velocity[1] * dt;
        p
    }
}

/// What one update changed.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Update {
    /// Tracks confirmed by this update.
    pub confirmed: Vec<TrackId>,
    /// Tracks that ended (confirmed ones only; a tentative track that
    /// vanishes was never reported).
    pub ended: Vec<Track>,
    /// Per detection (in input order): the track it was given to, if any.
    pub assigned: Vec<Option<TrackId>>,
}

/// The tracks of one camera.
#[derive(Debug)]
pub struct Tracker {
    config: TrackerConfig,
    tracks: Vec<Track>,
    key: u64,
    counter: u64,
}

impl Tracker {
    pub fn new(config: TrackerConfig) -> Self {
        // A random key per tracker from the OS's hash seed.
        let key = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        Self {
            config,
            tracks: vec![],
            key,
            counter: 0,
        }
    }

    pub fn config(&self) -> &TrackerConfig {
        &self.config
    }

    /// Live tracks, tentative ones included.
    pub fn tracks(&self) -> &[Track] {
        &self.tracks
    }

    pub fn get(&self, id: TrackId) -> Option<&Track> {
        self.tracks.iter().find(|t| t.id == id)
    }

    fn next_id(&mut self) -> TrackId {
        // SplitMix64's output function over key + counter: a bijection of
        // the counter, so ids never repeat within a run.
        self.counter += 1;
        let mut z = self
            .key
            .wrapping_add(self.counter.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        TrackId(z ^ (z >> 31))
    }

    /// Ends every track (the camera stopped): confirmed ones are returned.
    pub fn finish(&mut self) -> Vec<Track> {
        std::mem::take(&mut self.tracks)
            .into_iter()
            .filter(|t| t.confirmed)
            .collect()
    }

    /// [`update`](Self::update) after a detector run that looked only at
    /// `looked` (squares in frame pixels; `None` = the whole frame): a
    /// track the run did not look at is not missed by it — it coasts
    /// without aging toward `max_missed_ms`. It may still take a detection
    /// the run made at a square's edge (a person partly inside), so that no
    /// second track starts on the same person.
    pub fn update_looked(
        &mut self,
        detections: &[Detection],
        dt_ms: u64,
        looked: Option<&[BoxF]>,
    ) -> Update {
        self.advance(detections, dt_ms, looked)
    }

    /// Advances every track by `dt_ms` and assigns this frame's detections
    /// (a detector run over the whole frame).
    pub fn update(&mut self, detections: &[Detection], dt_ms: u64) -> Update {
        self.advance(detections, dt_ms, None)
    }

    /// [`update_looked`](Self::update_looked): a track counts as looked at
    /// when at least [`LOOKED`] of its predicted box lies in the squares.
    fn advance(&mut self, detections: &[Detection], dt_ms: u64, looked: Option<&[BoxF]>) -> Update {
        let dt = dt_ms as f32 / 1000.0;
        let c = self.config;
        let predicted: Vec<[f32; 4]> = self.tracks.iter().map(|t| t.predicted(dt)).collect();
        let boxes: Vec<BoxF> = predicted.iter().map(|&p| Track::from_state(p)).collect();
        let seen: Vec<bool> = match looked {
            None => vec![true; boxes.len()],
            Some(sq) => boxes
                .iter()
                .map(|b| super::regions::covered(b, sq) >= LOOKED)
                .collect(),
        };
        let high = |d: &Detection| d.score >= c.high_score;
        let mut m = Matching::new(&boxes, detections);
        let iou = |b: &BoxF, d: &Detection| {
            let iou = b.iou(&d.bbox);
            (iou >= c.min_iou).then_some(1.0 - iou)
        };
        // 1. Confident detections by IoU with the predictions.
        m.stage(|b, d| iou(b, d).filter(|_| high(d)));
        // 2. The tracks left by IoU with the low-score detections
        //    (ByteTrack's second association: a person half hidden).
        m.stage(|b, d| iou(b, d).filter(|_| !high(d)));
        // 3. Still left: confident detections by centre distance (a box
        //    that jumped as a group split, a person missed for a while).
        m.stage(|b, d| {
            let ratio = d.bbox.height() / b.height().max(1.0);
            let (bx, by) = b.centre();
            let (dx, dy) = d.bbox.centre();
            let dist = (bx - dx).hypot(by - dy) / b.height().max(1.0);
            (high(d) && dist < NEAR && (NEAR_HEIGHTS.0..NEAR_HEIGHTS.1).contains(&ratio))
                .then_some(dist)
        });
        let pairs = m.pairs;
        let mut update = Update {
            assigned: vec![None; detections.len()],
            ..Update::default()
        };
        let mut matched = vec![false; self.tracks.len()];
        for (ti, di) in pairs {
            matched[ti] = true;
            let d = detections[di];
            let t = &mut self.tracks[ti];
            let (cx, cy) = d.bbox.centre();
            let z = [cx, cy, d.bbox.width(), d.bbox.height()];
            let p = predicted[ti];
            for k in 0..4 {
                let r = z[k] - p[k];
                t.state[k] = p[k] + c.alpha * r;
                if k < 2 && dt > 0.0 {
                    t.velocity[k] += c.beta * r / dt;
                }
            }
            t.bbox = Track::from_state(t.state);
            t.detected = Some(d);
            t.hits += 1;
            t.missed_ms = 0;
            t.age_ms += dt_ms;
            if !t.confirmed && t.hits >= c.min_hits {
                t.confirmed = true;
                update.confirmed.push(t.id);
            }
            update.assigned[di] = Some(t.id);
        }
        // Unmatched tracks coast; those missing too long end.
        let mut kept = Vec::with_capacity(self.tracks.len());
        for (i, mut t) in std::mem::take(&mut self.tracks).into_iter().enumerate() {
            if !matched[i] {
                t.state = predicted[i];
                // Unseen, the track slows down (halving each second): a
                // person who stopped behind something is still there.
                let fade = 0.5f32.powf(dt_ms as f32 / 1000.0);
                t.velocity.iter_mut().for_each(|v| *v *= fade);
                t.bbox = Track::from_state(t.state);
                t.detected = None;
                // Not looked at, not missed.
                if seen[i] {
                    t.missed_ms += dt_ms;
                }
                t.age_ms += dt_ms;
                // A tentative track must be seen on consecutive frames.
                let gone = t.missed_ms > c.max_missed_ms || (!t.confirmed && t.missed_ms > 0);
                if gone {
                    if t.confirmed {
                        update.ended.push(t);
                    }
                    continue;
                }
            }
            kept.push(t);
        }
        self.tracks = kept;
        // Unmatched detections start tentative tracks.
        for (di, d) in detections.iter().enumerate() {
            if update.assigned[di].is_some() || !high(d) {
                continue;
            }
            let id = self.next_id();
            let (cx, cy) = d.bbox.centre();
            let t = Track {
                id,
                bbox: d.bbox,
                detected: Some(*d),
                state: [cx, cy, d.bbox.width(), d.bbox.height()],
                velocity: [0.0; 2],
                hits: 1,
                missed_ms: 0,
                age_ms: 0,
                confirmed: c.min_hits <= 1,
            };
            if t.confirmed {
                update.confirmed.push(id);
            }
            update.assigned[di] = Some(id);
            self.tracks.push(t);
        }
        update
    }
}

/// Tracks (their predicted `boxes`) and detections matched over several
/// stages: each stage pairs only what the earlier ones left free.
struct Matching<'a> {
    boxes: &'a [BoxF],
    detections: &'a [Detection],
    free_t: Vec<bool>,
    free_d: Vec<bool>,
    pairs: Vec<(usize, usize)>,
}

impl<'a> Matching<'a> {
    fn new(boxes: &'a [BoxF], detections: &'a [Detection]) -> Self {
        Self {
            boxes,
            detections,
            free_t: vec![true; boxes.len()],
            free_d: vec![true; detections.len()],
            pairs: vec![],
        }
    }

    /// Optimal matching of the free tracks and detections under `cost`
    /// (None = forbidden); the pairs found are no longer free.
    fn stage(&mut self, cost: impl Fn(&BoxF, &Detection) -> Option<f32>) {
        let m: Vec<Vec<f32>> = self
            .boxes
            .iter()
            .enumerate()
            .map(|(ti, b)| {
                self.detections
                    .iter()
                    .enumerate()
                    .map(
                        |(di, d)| match (self.free_t[ti] && self.free_d[di], cost(b, d)) {
                            (true, Some(x)) => x,
                            _ => f32::INFINITY,
                        },
                    )
                    .collect()
            })
            .collect();
        for (ti, di) in assign(&m) {
            self.free_t[ti] = false;
            self.free_d[di] = false;
            self.pairs.push((ti, di));
        }
    }
}

/// Minimum-cost assignment of rows to columns (the Hungarian method,
/// O(n³)); infinite costs are forbidden pairs. Returns (row, column) pairs.
pub fn assign(cost: &[Vec<f32>]) -> Vec<(usize, usize)> {
    let rows = cost.len();
    let cols = cost.first().map_or(0, Vec::len);
    if rows == 0 || cols == 0 {
        return vec![];
    }
    // Square matrix with forbidden pairs at a large finite cost, so every
    // row gets some column; pairs at that cost are dropped afterwards.
    let n = rows.max(cols);
    const BIG: f64 = 1e6;
    let at = |i: usize, j: usize| -> f64 {
        if i < rows && j < cols && cost[i][j].is_finite() {
            cost[i][j] as f64
        } else {
            BIG
        }
    };
    // Potentials u (rows), v (columns); p[j] = row matched to column j (1-based).
    let (mut u, mut v) = (vec![0f64; n + 1], vec![0f64; n + 1]);
    let (mut p, mut way) = (vec![0usize; n + 1], vec![0usize; n + 1]);
    for i in 1..=n {
        p[0] = i;
        let mut j0 = 0;
        let mut minv = vec![f64::INFINITY; n + 1];
        let mut used = vec![false; n + 1];
        loop {
            used[j0] = true;
            let i0 = p[j0];
            let mut delta = f64::INFINITY;
            let mut j1 = 0;
            for j in 1..=n {
                if !used[j] {
                    let cur = at(i0 - 1, j - 1) - u[i0] - v[j];
                    if cur < minv[j] {
                        minv[j] = cur;
                        way[j] = j0;
                    }
                    if minv[j] < delta {
                        delta = minv[j];
                        j1 = j;
                    }
                }
            }
            for j in 0..=n {
                if used[j] {
                    u[p[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
            if p[j0] == 0 {
                break;
            }
        }
        loop {
            let j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    (1..=n)
        .filter(|&j| p[j] != 0)
        .map(|j| (p[j] - 1, j - 1))
        .filter(|&(i, j)| i < rows && j < cols && cost[i][j].is_finite())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Steps are the time between ticks (the camera thread ticks when a
    /// frame arrives), capped, never negative.
    #[test]
    fn the_tracker_clock_steps_by_monotonic_time() {
        let (mut clock, t0) = (Clock::default(), Instant::now());
        let at = |ms| t0 + std::time::Duration::from_millis(ms);
        let steps: Vec<u64> = [0, 100, 200, 20_000].map(|ms| clock.tick(at(ms))).into();
        assert_eq!(steps, [0, 100, 100, Clock::MAX_STEP_MS]);
        assert_eq!(clock.tick(t0), 0, "never backwards");
    }

    fn det(x: f32, y: f32) -> Detection {
        Detection {
            bbox: BoxF::new(x, y, x + 20.0, y + 50.0),
            score: 0.9,
            class: 1,
        }
    }

    #[test]
    fn hungarian_beats_greedy() {
        // Greedy takes (0,0) at 0.1 and is left with (1,1) at 0.9 (total
        // 1.0); the optimum is (0,1) + (1,0) = 0.2 + 0.3.
        let cost = vec![vec![0.1, 0.2], vec![0.3, 0.9]];
        let mut got = assign(&cost);
        got.sort();
        assert_eq!(got, [(0, 1), (1, 0)]);
        let forbidden = vec![vec![f32::INFINITY, 0.5], vec![f32::INFINITY, 0.4]];
        assert_eq!(assign(&forbidden), [(1, 1)]);
        assert_eq!(assign(&[vec![0.5, 0.1, 0.7]]), [(0, 1)]);
        assert!(assign(&[]).is_empty());
    }

    #[test]
    fn one_walker_is_one_track_through_a_short_gap() {
        let mut t = Tracker::new(TrackerConfig::default());
        let mut ids = std::collections::BTreeSet::<TrackId>::new();
        let mut confirmed = 0;
        for f in 0..40 {
            // 4 px per frame to the right; frames 20..24 have no detection.
            let dets: Vec<Detection> = if (20..24).contains(&f) {
                vec![]
            } else {
                vec![det(10.0 + 4.0 * f as f32, 100.0)]
            };
            let u = t.update(&dets, 100);
            confirmed += u.confirmed.len();
            ids.extend(u.assigned.iter().flatten().copied());
            assert!(u.ended.is_empty(), "frame {f}");
        }
        assert_eq!((ids.len(), confirmed), (1, 1), "{ids:?}");
        let ended = t.finish();
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].hits, 36);
    }

    #[test]
    fn a_flicker_never_confirms_and_ids_differ_between_trackers() {
        let mut t = Tracker::new(TrackerConfig::default());
        let u = t.update(&[det(0.0, 0.0)], 100);
        assert!(u.confirmed.is_empty());
        let u = t.update(&[], 100);
        assert!(u.ended.is_empty(), "a tentative track ends silently");
        assert!(t.tracks().is_empty());
        let a = Tracker::new(TrackerConfig::default()).next_id();
        let b = Tracker::new(TrackerConfig::default()).next_id();
        assert_ne!(a, b, "ids are random per tracker (per run)");
    }
}
