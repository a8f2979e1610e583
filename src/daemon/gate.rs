//! The change gate (`[gate]`): a store camera mostly sees the same scene,
//! so a frame that looks like the last frame its camera sent to the
//! backend reuses that frame's probabilities.
//!
//! The camera thread takes each frame's luma thumbnail ([`Thumbnail`]) and
//! compares it with its keyframe's, the last frame it sent on to be
//! inferred. Closer than `gate.threshold` and younger than
//! `gate.max_age_ms`, the frame is queued raw (not preprocessed) and marked
//! with the keyframe's sequence number; otherwise it is sent on and becomes
//! the keyframe. A camera's frames reach the inference thread in order, so
//! the keyframe has run by the time its marked frames arrive: they are
//! decided, smoothed and published with its probabilities ([`Reuse`]),
//! under their own sequence number and capture time, as if they had been
//! inferred. A keyframe that never ran (dropped as stale, or its batch
//! failed) is reported back as lost: its marked frames are preprocessed and
//! inferred after all, and the camera picks a new keyframe.

use crate::config::GateConfig;
use crate::preprocess::signature::Thumbnail;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// No keyframe was lost.
const NONE: u64 = u64::MAX;

#[derive(Debug)]
struct Reference {
    thumb: Thumbnail,
    seq: u64,
    captured_at: SystemTime,
}

/// One camera's side of the gate, on its capture thread: the keyframe is
/// the last frame it sent on to be inferred.
#[derive(Debug)]
pub(super) struct CameraGate {
    threshold: f32,
    max_age: Duration,
    keyframe: Option<Reference>,
    /// A keyframe the inference thread never saw (dropped as stale, or its
    /// batch failed), reported by [`Reuse`].
    lost: Arc<AtomicU64>,
}

impl CameraGate {
    pub(super) fn new(cfg: &GateConfig, lost: Arc<AtomicU64>) -> Self {
        Self {
            threshold: cfg.threshold,
            max_age: Duration::from_millis(cfg.max_age_ms),
            keyframe: None,
            lost,
        }
    }

    /// The keyframe whose probabilities frame `seq` (thumbnail `thumb`,
    /// captured at `captured_at`) may reuse; `None` = infer it, and it
    /// becomes the keyframe.
    pub(super) fn check(
        &mut self,
        thumb: &Thumbnail,
        seq: u64,
        captured_at: SystemTime,
    ) -> Option<u64> {
        if let Some(k) = &self.keyframe {
            // A clock step backwards counts as too old.
            let young = captured_at
                .duration_since(k.captured_at)
                .is_ok_and(|age| age < self.max_age);
            let alive = self.lost.load(Relaxed) != k.seq;
            if young && alive && thumb.distance(&k.thumb) < self.threshold {
                return Some(k.seq);
            }
        }
        self.keyframe = Some(Reference {
            thumb: thumb.clone(),
            seq,
            captured_at,
        });
        None
    }

    /// Debug: the keyframe, age and distance a frame is judged against.
    pub(super) fn explain(&self, thumb: &Thumbnail, captured_at: SystemTime) -> String {
        match &self.keyframe {
            None => "no keyframe".into(),
            Some(k) => format!(
                "keyframe {} age {:?} distance {:.2}",
                k.seq,
                captured_at.duration_since(k.captured_at),
                thumb.distance(&k.thumb)
            ),
        }
    }
}

/// Inferred frames whose probabilities are kept per camera: a keyframe's
/// frames usually follow it closely, but a batch may hold several cameras'
/// frames.
const KEPT: usize = 8;

/// The inference thread's view: per camera (with the gate on), the
/// probabilities of its latest inferred frames.
#[derive(Debug, Default)]
pub(super) struct Reuse {
    last: Vec<std::collections::VecDeque<(u64, Vec<f32>)>>,
    lost: Vec<Arc<AtomicU64>>,
}

impl Reuse {
    /// One "lost keyframe" slot per camera, shared with its [`CameraGate`].
    pub(super) fn new(lost: Vec<Arc<AtomicU64>>) -> Self {
        Self {
            last: vec![Default::default(); lost.len()],
            lost,
        }
    }

    /// A fresh slot for [`Reuse::new`] and [`CameraGate::new`].
    pub(super) fn slot() -> Arc<AtomicU64> {
        Arc::new(AtomicU64::new(NONE))
    }

    /// The probabilities of camera `camera`'s frame `seq`, if kept.
    pub(super) fn probs(&self, camera: usize, seq: u64) -> Option<&[f32]> {
        self.last
            .get(camera)?
            .iter()
            .find(|(s, _)| *s == seq)
            .map(|(_, p)| p.as_slice())
    }

    /// Camera `camera`'s keyframe `seq` never ran: its camera picks a new one.
    pub(super) fn lost(&self, camera: usize, seq: u64) {
        if let Some(l) = self.lost.get(camera) {
            l.store(seq, Relaxed);
        }
    }

    /// The backend ran camera `camera`'s frame `seq`.
    pub(super) fn inferred(&mut self, camera: usize, seq: u64, probs: &[f32]) {
        let Some(kept) = self.last.get_mut(camera) else {
            return;
        };
        let mut entry = match kept.len() {
            KEPT.. => kept.pop_front().expect("full"),
            _ => (seq, Vec::new()),
        };
        entry.0 = seq;
        entry.1.clear();
        entry.1.extend_from_slice(probs);
        kept.push_back(entry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::{Frame, PixelFormat};

    fn thumb(level: u8) -> Thumbnail {
        Thumbnail::of(&Frame::still(
            "t",
            PixelFormat::Gray8,
            64,
            64,
            vec![level; 64 * 64],
        ))
        .unwrap()
    }

    #[test]
    fn reuses_only_close_young_keyframes_that_were_not_lost() {
        let cfg = GateConfig {
            enabled: true,
            threshold: 2.0,
            max_age_ms: 1000,
        };
        let lost = Reuse::slot();
        let mut gate = CameraGate::new(&cfg, lost.clone());
        let mut reuse = Reuse::new(vec![lost]);
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
        let ms = |n| t0 + Duration::from_millis(n);
        assert_eq!(
            gate.check(&thumb(50), 7, t0),
            None,
            "no keyframe: 7 is inferred"
        );
        assert_eq!(
            gate.check(&thumb(51), 8, ms(100)),
            Some(7),
            "close and young"
        );
        assert_eq!(
            gate.check(&thumb(50), 9, ms(1000)),
            None,
            "as old as max_age: 9 is the keyframe"
        );
        assert_eq!(
            gate.check(&thumb(53), 10, ms(1100)),
            None,
            "3 grey levels apart: 10"
        );
        assert_eq!(
            gate.check(&thumb(53), 11, ms(1000)),
            None,
            "captured before 10"
        );
        assert_eq!(gate.check(&thumb(53), 12, ms(1200)), Some(11));
        reuse.inferred(0, 7, &[0.25, 0.75]);
        assert_eq!(reuse.probs(0, 7), Some(&[0.25, 0.75][..]));
        // 11 never reached the backend: reported lost, the next frame is inferred.
        assert_eq!(reuse.probs(0, 11), None);
        reuse.lost(0, 11);
        assert_eq!(
            gate.check(&thumb(53), 13, ms(1300)),
            None,
            "keyframe 11 was lost"
        );
        assert_eq!(gate.check(&thumb(53), 14, ms(1400)), Some(13));
        for seq in 20..20 + KEPT as u64 {
            reuse.inferred(0, seq, &[0.1, 0.9]);
        }
        assert_eq!(reuse.probs(0, 7), None, "pushed out by newer frames");
    }
}
