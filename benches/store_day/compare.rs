//! A run against the every-frame run (a) on the same stream: who of (a)'s
//! people it found, whether their final tags agree, and the far, small
//! people apart.

use crate::run::Run;
use std::collections::HashMap;
use stylecam::detect::track::TrackId;
use stylecam::detect::BoxF;
use stylecam::styles::DecisionParams;

/// A box of the other run overlaps a person's box on a frame at this IoU.
pub const MIN_IOU: f32 = 0.3;
/// In view at least this many frames (1 s at 10 fps): must be found.
pub const MUST_FRAMES: usize = 10;
/// Far: the box's centre in the top 40% of the frame (vtest's far path and
/// the road behind the lawn).
pub const FAR_TOP: f32 = 0.4;

/// A confirmed track of a run: the frames it was in view and its boxes.
pub struct Person {
    pub id: TrackId,
    pub frames: Vec<(usize, BoxF)>,
}

impl Person {
    /// The median box centre's height in the frame (0 top .. 1 bottom).
    pub fn median_y(&self, height: u32) -> f32 {
        let mut y: Vec<f32> = self.frames.iter().map(|(_, b)| b.centre().1).collect();
        y.sort_by(f32::total_cmp);
        y[y.len() / 2] / height as f32
    }

    pub fn median_height(&self) -> f32 {
        let mut h: Vec<f32> = self.frames.iter().map(|(_, b)| b.height()).collect();
        h.sort_by(f32::total_cmp);
        h[h.len() / 2]
    }

    pub fn far(&self, height: u32) -> bool {
        self.median_y(height) < FAR_TOP
    }
}

/// A run's people in order of first appearance, each from its
/// confirmation to its last detection: a track that ended coasted
/// `coast` frames on its prediction first (`max_missed_ms` / frame
/// interval; the detector ran on every frame of (a)), which are cut.
pub fn people_detected(run: &Run, coast: usize) -> Vec<Person> {
    let n = run.in_view.len();
    people(run)
        .into_iter()
        .filter_map(|mut p| {
            let ended = p.frames.last().is_some_and(|(i, _)| i + 1 < n);
            if ended {
                p.frames.truncate(p.frames.len().saturating_sub(coast));
            }
            (!p.frames.is_empty()).then_some(p)
        })
        .collect()
}

/// A run's people in order of first appearance.
pub fn people(run: &Run) -> Vec<Person> {
    let mut by: HashMap<TrackId, Vec<(usize, BoxF)>> = HashMap::new();
    let mut order = vec![];
    for (i, view) in run.in_view.iter().enumerate() {
        for (id, b) in view {
            by.entry(*id)
                .or_insert_with(|| {
                    order.push(*id);
                    vec![]
                })
                .push((i, *b));
        }
    }
    order
        .into_iter()
        .map(|id| Person {
            id,
            frames: by.remove(&id).unwrap(),
        })
        .collect()
}

/// One person of (a) seen by the other run.
pub struct Match {
    pub frames: usize,
    /// Frames where some confirmed track of the other run overlaps it.
    pub covered: usize,
    /// The other run's track overlapping it on most frames.
    pub best: Option<TrackId>,
    pub far: bool,
    pub height: f32,
    pub first: usize,
}

impl Match {
    pub fn found(&self) -> bool {
        2 * self.covered > self.frames
    }
}

pub fn matches(a: &[Person], other: &Run, frame_height: u32) -> Vec<Match> {
    a.iter()
        .map(|p| {
            let mut covered = 0;
            let mut votes: HashMap<TrackId, usize> = HashMap::new();
            for (i, b) in &p.frames {
                let mut any = false;
                for (id, ob) in &other.in_view[*i] {
                    if b.iou(ob) >= MIN_IOU {
                        any = true;
                        *votes.entry(*id).or_default() += 1;
                    }
                }
                covered += any as usize;
            }
            Match {
                frames: p.frames.len(),
                covered,
                best: votes
                    .into_iter()
                    .max_by_key(|(id, n)| (*n, std::cmp::Reverse(*id)))
                    .map(|x| x.0),
                far: p.far(frame_height),
                height: p.median_height(),
                first: p.frames[0].0,
            }
        })
        .collect()
}

/// Final tags of (a)'s found people against the other run's (its best
/// matching track): (compared, equal). People without views on either
/// side are not compared.
pub fn tags(
    a: &[Person],
    m: &[Match],
    run_a: &Run,
    other: &Run,
    decision: &DecisionParams,
) -> (usize, usize) {
    let (ta, to) = (run_a.final_tags(decision), other.final_tags(decision));
    let (mut n, mut same) = (0, 0);
    for (p, m) in a.iter().zip(m) {
        let (Some(x), Some(y)) = (
            ta.get(&p.id),
            m.best.filter(|_| m.found()).and_then(|b| to.get(&b)),
        ) else {
            continue;
        };
        n += 1;
        same += (x == y) as usize;
    }
    (n, same)
}

/// Recall figures of one run against (a).
pub struct Recall {
    pub people: usize,
    /// In view ≥ 1 s: (count, found).
    pub long: (usize, usize),
    /// Shorter: (frames, found, first frame) each.
    pub short: Vec<(usize, bool, usize)>,
    /// The far people (≥ 1 s): (count, found).
    pub far: (usize, usize),
    /// The long people not found: (first frame, frames, covered, height).
    pub missed: Vec<(usize, usize, usize, f32)>,
}

pub fn recall(m: &[Match]) -> Recall {
    let long: Vec<&Match> = m.iter().filter(|x| x.frames >= MUST_FRAMES).collect();
    let far: Vec<&&Match> = long.iter().filter(|x| x.far).collect();
    Recall {
        people: m.len(),
        long: (long.len(), long.iter().filter(|x| x.found()).count()),
        short: m
            .iter()
            .filter(|x| x.frames < MUST_FRAMES)
            .map(|x| (x.frames, x.found(), x.first))
            .collect(),
        far: (far.len(), far.iter().filter(|x| x.found()).count()),
        missed: long
            .iter()
            .filter(|x| !x.found())
            .map(|x| (x.first, x.frames, x.covered, x.height))
            .collect(),
    }
}

/// Confirmed tracks (≥ 1 s) whose median box centre is in the far band.
pub fn far_tracks(p: &[Person], frame_height: u32) -> usize {
    p.iter()
        .filter(|x| x.frames.len() >= MUST_FRAMES && x.far(frame_height))
        .count()
}
