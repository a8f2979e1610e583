//! The camera thread's side of collection: which views of a person are
//! kept (at most `max_per_person`, at least `min_interval_ms` apart by
//! capture time), and the kept view's pixels: the masked crop resized
//! exactly as the classifier's input is (the bundle's [`Spec`], the CPU
//! preprocessor's resample, before normalisation), the person's head
//! blurred where it lands in that input ([`blur::head_rows`]).
//! The pixels go to the collector's thread as a ticket; the model's
//! probabilities follow from the inference thread ([`ProbsTx`]).

use super::blur;
use super::writer::{Msg, Ticket};
use crate::detect::track::TrackId;
use crate::detect::BoxF;
use crate::preprocess::Spec;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::mpsc::Sender;
use std::time::{Duration, SystemTime};

/// Tracks remembered per camera at most (older ones are forgotten: a
/// person gone that long is not seen again by this run's tracker).
const REMEMBERED: usize = 4096;

/// One camera's picker (people mode, `collect = true`).
pub struct Picker {
    pub(super) camera: usize,
    pub(super) spec: Spec,
    pub(super) max_per_person: u32,
    pub(super) min_interval: Duration,
    /// `Some` when the head band is blurred.
    pub(super) blur: Option<blur::HeadBlur>,
    pub(super) salt: std::collections::hash_map::RandomState,
    /// Views taken and the capture time of the last, per track.
    pub(super) people: HashMap<TrackId, (u32, SystemTime)>,
    pub(super) tx: Sender<Msg>,
}

impl Picker {
    /// The person's id in the sidecars: 16 hex digits from a keyed hash
    /// of the track id under this run's random key (never the tracker's
    /// id, never the same across runs).
    pub fn person_id(&self, id: TrackId) -> String {
        format!("{:016x}", self.salt.hash_one((self.camera, id.0)))
    }

    /// Whether a view of `id` captured at `at` is to be kept (and if so,
    /// counts it).
    pub fn due(&mut self, id: TrackId, at: SystemTime) -> bool {
        if self.people.len() >= REMEMBERED && !self.people.contains_key(&id) {
            // Forget the half seen longest ago.
            let mut times: Vec<SystemTime> = self.people.values().map(|v| v.1).collect();
            times.sort();
            let cut = times[times.len() / 2];
            self.people.retain(|_, v| v.1 > cut);
        }
        match self.people.get_mut(&id) {
            None => {
                self.people.insert(id, (1, at));
                true
            }
            Some((n, last)) => {
                let apart = at.duration_since(*last).unwrap_or(Duration::ZERO);
                if *n >= self.max_per_person || apart < self.min_interval {
                    return false;
                }
                *n += 1;
                *last = at;
                true
            }
        }
    }

    /// A person's crop about to be classified: kept (as a ticket to the
    /// collector) when due. `rgb` is the masked `w × h` frame and `b` the
    /// box the classifier's crop is cut from.
    #[allow(clippy::too_many_arguments)]
    pub fn offer(
        &mut self,
        seq: u64,
        captured_at: SystemTime,
        rgb: &[u8],
        w: u32,
        h: u32,
        id: TrackId,
        b: &BoxF,
    ) {
        if !self.due(id, captured_at) {
            return;
        }
        let (image, rect, band) = person_input(rgb, w, h, b, &self.spec, self.blur);
        let ticket = Ticket {
            camera: self.camera,
            seq,
            id,
            person: self.person_id(id),
            captured_at,
            bbox: [rect.x, rect.y, rect.w, rect.h],
            frame: [w, h],
            size: [self.spec.width, self.spec.height],
            rgb: image,
            head_blur: self.blur.is_some(),
            head_rows: band.map(|(y0, y1)| [y0, y1]),
        };
        // The collector may have stopped (a stop): nothing to keep then.
        let _ = self.tx.send(Msg::Ticket(Box::new(ticket)));
    }
}

/// The collected image of the person whose crop box is `b` (the person's
/// box grown by the people stage's margin, clipped) in a packed RGB8
/// `w × h` frame: cut by [`crate::detect::people::crop_rect`], made the
/// classifier's input by [`classifier_input`], the person's head blurred
/// where it lands in it when `blur` is given. Returns the image, the crop
/// rectangle and the input rows blurred (`None`: none, or the crop cut the
/// head away).
pub fn person_input(
    rgb: &[u8],
    w: u32,
    h: u32,
    b: &BoxF,
    spec: &Spec,
    blur: Option<blur::HeadBlur>,
) -> (
    Vec<u8>,
    crate::preprocess::kernels::Rect,
    Option<(u32, u32)>,
) {
    let rect = crate::detect::people::crop_rect(w, h, b);
    let band = blur.and_then(|head| blur::head_rows(b, h, rect.y, rect.w, rect.h, spec, head));
    let image = classifier_input(&rect.cut(rgb, w), rect.w, rect.h, spec, band);
    (image, rect, band)
}

/// The classifier's input image of a packed RGB8 crop: resampled to the
/// spec's size with its resize mode (the CPU preprocessor's own
/// [`crate::preprocess::resample_rgb`]), rounded to 8 bits; letterbox
/// padding is the mean colour (what normalisation maps to 0, as the model
/// sees it). Then rows `band` (`y0..y1` of the input) are blurred.
pub fn classifier_input(
    crop: &[u8],
    w: u32,
    h: u32,
    spec: &Spec,
    band: Option<(u32, u32)>,
) -> Vec<u8> {
    let hwc = crate::preprocess::resample_rgb(crop, w, h, spec.width, spec.height, spec.resize);
    let pad = spec
        .mean
        .map(|m| (m * 255.0).round().clamp(0.0, 255.0) as u8);
    let mut out: Vec<u8> = hwc
        .iter()
        .enumerate()
        .map(|(i, v)| {
            if v.is_nan() {
                pad[i % 3]
            } else {
                v.round().clamp(0.0, 255.0) as u8
            }
        })
        .collect();
    if let Some((y0, y1)) = band {
        blur::blur_rows(&mut out, spec.width, spec.height, y0, y1);
    }
    out
}

/// The inference thread's side: a classified person's probabilities, for
/// the collector to pair with the camera's ticket.
#[derive(Clone)]
pub struct ProbsTx {
    pub(super) collecting: Vec<bool>,
    pub(super) tx: Sender<Msg>,
}

impl ProbsTx {
    /// Camera `camera`'s frame `seq` gave person `id` these probabilities.
    pub fn probs(&self, camera: usize, seq: u64, id: TrackId, probs: &[f32]) {
        if self.collecting.get(camera).copied().unwrap_or(false) {
            let _ = self.tx.send(Msg::Probs {
                camera,
                seq,
                id,
                probs: probs.to_vec(),
            });
        }
    }
}
