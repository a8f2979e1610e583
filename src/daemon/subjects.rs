//! What a camera tags besides the whole frame: regions and tracked
//! people. The capture thread decides what is classified (crops, subjects);
//! the inference thread keeps each subject's decision state here.

use crate::detect::people::{Settling, Summary};
use crate::detect::track::TrackId;
use crate::smooth::{Hysteresis, Smoother};
use std::collections::BTreeMap;
use std::time::SystemTime;

/// The subject a queued input belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// The whole frame (`analyze = "frame"`).
    Frame,
    /// Region `i` of the camera's `regions`.
    Region(usize),
    /// A tracked person's crop.
    Person(TrackId),
}

/// Track lifecycle, sent by a people camera's thread to the inference
/// thread on a lossless channel (the frame queue may drop frames; these
/// are never dropped).
#[derive(Debug, Clone)]
pub enum Notice {
    /// A track was confirmed: a person is in view.
    Entered { id: TrackId, at: SystemTime },
    /// A confirmed track ended after `dwell_ms`.
    Left {
        id: TrackId,
        at: SystemTime,
        frame_seq: u64,
        dwell_ms: u64,
    },
}

/// One region's smoothing state.
pub(super) struct RegionState {
    pub(super) name: String,
    pub(super) smoother: Smoother,
    pub(super) hysteresis: Hysteresis,
    /// The region's current tags (class indices) and their scores.
    pub(super) tags: Vec<usize>,
    pub(super) scores: Vec<f32>,
}

/// One person's decision state: its classifications (several views of one
/// person, at most `cameras.people.max_classifications`), summarised by
/// their per-class median ([`Summary::Median`]) and decided like a frame's
/// probabilities; after the first decision (`entered`), a tag comes or
/// goes only when `smoothing.enter_frames` / `leave_frames` decisions in a
/// row agree.
#[derive(Debug, Clone)]
pub(super) struct PersonState {
    pub(super) first_seen: SystemTime,
    views: Vec<Vec<f32>>,
    pub(super) classifications: u32,
    /// The tags last published (`None` until `entered` was sent).
    pub(super) tags: Option<Vec<usize>>,
    /// Seeded with the first decision.
    pub(super) hysteresis: Option<Hysteresis>,
    /// Whether the decisions have settled (told to the camera's schedule
    /// once, which then classifies the person less often).
    pub(super) settling: Settling,
    pub(super) settled: bool,
}

impl PersonState {
    pub(super) fn new(first_seen: SystemTime) -> Self {
        Self {
            first_seen,
            views: vec![],
            classifications: 0,
            tags: None,
            hysteresis: None,
            settling: Settling::default(),
            settled: false,
        }
    }

    /// Adds one classification; returns the summary so far.
    pub(super) fn add(&mut self, probs: &[f32]) -> Vec<f32> {
        if self.views.first().is_some_and(|v| v.len() != probs.len()) {
            // Another model after a reload: its classes are not these.
            self.views.clear();
            self.classifications = 0;
        }
        self.views.push(probs.to_vec());
        self.classifications += 1;
        self.summary()
    }

    /// The views' per-class median.
    pub(super) fn summary(&self) -> Vec<f32> {
        Summary::Median.of(&self.views)
    }
}

/// The people in view of one camera, by track id.
pub(super) type People = BTreeMap<TrackId, PersonState>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_person_is_decided_on_the_median_of_its_views() {
        let mut p = PersonState::new(SystemTime::UNIX_EPOCH);
        assert_eq!(p.add(&[0.2, 0.8]), vec![0.2, 0.8]);
        let m = p.add(&[0.4, 0.0]);
        assert!((m[0] - 0.3).abs() < 1e-6 && (m[1] - 0.4).abs() < 1e-6);
        // One odd view (another person's coat in the crop) barely moves
        // the median; it would move the mean from 0.27 to 0.45.
        p.add(&[0.2, 0.0]);
        let m = p.add(&[0.99, 0.0]);
        assert!((m[0] - 0.3).abs() < 1e-6, "{m:?}");
        assert!(m[1].abs() < 1e-6, "{m:?}");
        assert_eq!(p.classifications, 4);
        // A reload with another model's classes starts over.
        assert_eq!(p.add(&[0.5, 0.5, 0.5]), vec![0.5, 0.5, 0.5]);
        assert_eq!(p.classifications, 1);
    }
}
