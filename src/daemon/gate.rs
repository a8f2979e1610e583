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
//! frame, so a marked frame always names probabilities that exist; if they
//! were replaced in between (a newer keyframe), the frame is preprocessed
//! and inferred after all.

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

/// The inference thread's view: per camera, the probabilities of its
/// keyframe.
#[derive(Debug, Default)]
pub(super) struct Reuse {
    last: Vec<Option<(u64, Vec<f32>)>>,
    keyframes: Vec<Arc<Keyframe>>,
}

impl Reuse {
    pub(super) fn new(keyframes: Vec<Arc<Keyframe>>) -> Self {
        Self {
            last: vec![None; keyframes.len()],
            keyframes,
        }
    }

    /// The probabilities of camera `camera`'s frame `seq`, if it is still
    /// the keyframe.
    pub(super) fn probs(&self, camera: usize, seq: u64) -> Option<&[f32]> {
        match self.last.get(camera)? {
            Some((s, p)) if *s == seq => Some(p),
            _ => None,
        }
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
        let Some(slot) = self.last.get_mut(camera) else {
            return;
        };
        match slot {
            Some((s, p)) if p.len() == probs.len() => {
                *s = seq;
                p.copy_from_slice(probs);
            }
            _ => *slot = Some((seq, probs.to_vec())),
        }
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
    fn reuses_only_close_young_keyframes_that_still_exist() {
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
        assert_eq!(reuse.probs(0, 7), None, "replaced by frame 9");
        assert_eq!(gate.check(&thumb(80), ms(300)), Some(9));
    }
}
