//! The change gate (`[gate]`): a store camera mostly sees the same scene,
//! so a frame that looks like the last frame its camera sent to the
//! backend reuses that frame's probabilities.
//!
//! The camera thread takes each frame's luma thumbnail
//! ([`Thumbnail`]) and compares it with the camera's [`Keyframe`], the
//! thumbnail of the last frame the backend ran. Closer than
//! `gate.threshold` and younger than `gate.max_age_ms`, the frame is queued
//! raw (not preprocessed) and marked with the keyframe's sequence number;
//! the inference thread then decides, smooths and publishes it with that
//! keyframe's probabilities, under its own sequence number and capture time,
//! so smoothing, events and timestamps run as if it had been inferred. The
//! keyframe is set by the inference thread only after the backend ran a
//! frame, so a marked frame always names probabilities that exist; the
//! last few keyframes' are kept, and a frame whose keyframe was pushed out
//! in between is preprocessed and inferred after all.

use crate::config::GateConfig;
use crate::preprocess::signature::Thumbnail;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// The last frame of one camera the backend ran, shared by the camera's
/// thread (reads) and the inference thread (writes).
#[derive(Debug, Default)]
pub(super) struct Keyframe(Mutex<Option<Reference>>);

#[derive(Debug)]
struct Reference {
    thumb: Thumbnail,
    seq: u64,
    captured_at: SystemTime,
}

impl Keyframe {
    /// The inference thread ran frame `seq`.
    pub(super) fn set(&self, thumb: Thumbnail, seq: u64, captured_at: SystemTime) {
        *self.0.lock().expect("keyframe") = Some(Reference {
            thumb,
            seq,
            captured_at,
        });
    }
}

/// One camera's side of the gate.
#[derive(Debug, Clone)]
pub(super) struct CameraGate {
    threshold: f32,
    max_age: Duration,
    keyframe: Arc<Keyframe>,
}

impl CameraGate {
    pub(super) fn new(cfg: &GateConfig, keyframe: Arc<Keyframe>) -> Self {
        Self {
            threshold: cfg.threshold,
            max_age: Duration::from_millis(cfg.max_age_ms),
            keyframe,
        }
    }

    /// The keyframe whose probabilities a frame with `thumb`, captured at
    /// `captured_at`, may reuse; `None` = run the backend.
    pub(super) fn check(&self, thumb: &Thumbnail, captured_at: SystemTime) -> Option<u64> {
        let key = self.keyframe.0.lock().expect("keyframe");
        let key = key.as_ref()?;
        // A clock step backwards counts as too old.
        let age = captured_at.duration_since(key.captured_at).ok()?;
        (age < self.max_age && thumb.distance(&key.thumb) < self.threshold).then_some(key.seq)
    }
}

/// Keyframes whose probabilities are kept per camera: a frame compared
/// with keyframe K may reach the inference thread after a newer frame of
/// its camera was inferred (it was queued behind it), and still takes K's.
const KEPT: usize = 8;

/// The inference thread's view: per camera, the probabilities of its
/// latest keyframes.
#[derive(Debug, Default)]
pub(super) struct Reuse {
    last: Vec<std::collections::VecDeque<(u64, Vec<f32>)>>,
    keyframes: Vec<Arc<Keyframe>>,
}

impl Reuse {
    pub(super) fn new(keyframes: Vec<Arc<Keyframe>>) -> Self {
        Self {
            last: vec![Default::default(); keyframes.len()],
            keyframes,
        }
    }

    /// The probabilities of camera `camera`'s frame `seq`, if it is one of
    /// the keyframes kept.
    pub(super) fn probs(&self, camera: usize, seq: u64) -> Option<&[f32]> {
        self.last
            .get(camera)?
            .iter()
            .find(|(s, _)| *s == seq)
            .map(|(_, p)| p.as_slice())
    }

    /// The backend ran camera `camera`'s frame `seq`: it is the new keyframe.
    pub(super) fn inferred(
        &mut self,
        camera: usize,
        seq: u64,
        captured_at: SystemTime,
        thumb: Thumbnail,
        probs: &[f32],
    ) {
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
        self.keyframes[camera].set(thumb, seq, captured_at);
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
    fn reuses_only_close_young_keyframes_still_kept() {
        let cfg = GateConfig {
            enabled: true,
            threshold: 2.0,
            max_age_ms: 1000,
        };
        let key = Arc::new(Keyframe::default());
        let gate = CameraGate::new(&cfg, key.clone());
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
        let ms = |n| t0 + Duration::from_millis(n);
        assert_eq!(gate.check(&thumb(50), t0), None, "no keyframe yet");
        let mut reuse = Reuse::new(vec![key]);
        reuse.inferred(0, 7, t0, thumb(50), &[0.25, 0.75]);
        assert_eq!(gate.check(&thumb(51), ms(100)), Some(7), "close and young");
        assert_eq!(gate.check(&thumb(53), ms(100)), None, "3 grey levels apart");
        assert_eq!(gate.check(&thumb(50), ms(1000)), None, "as old as max_age");
        assert_eq!(gate.check(&thumb(50), t0 - Duration::from_millis(5)), None);
        assert_eq!(reuse.probs(0, 7), Some(&[0.25, 0.75][..]));
        reuse.inferred(0, 9, ms(200), thumb(80), &[0.5, 0.5]);
        assert_eq!(gate.check(&thumb(80), ms(300)), Some(9));
        // A frame compared with 7 but queued behind 9 still finds 7's
        // probabilities, until KEPT newer keyframes push them out.
        assert_eq!(reuse.probs(0, 7), Some(&[0.25, 0.75][..]));
        for seq in 10..10 + KEPT as u64 - 1 {
            reuse.inferred(0, seq, ms(300), thumb(80), &[0.1, 0.9]);
        }
        assert_eq!(reuse.probs(0, 7), None, "pushed out");
        assert_eq!(reuse.probs(0, 9), Some(&[0.5, 0.5][..]));
    }
}
