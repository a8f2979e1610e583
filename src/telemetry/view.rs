//! What the status page shows of a camera beyond its counters: its latest
//! frame (masks painted) while somebody is looking, the boxes it tags in it,
//! and each subject's latest decision; and the device's last events.
//!
//! Cheap when nobody looks: a camera thread asks [`CameraView::snapshot_due`]
//! (two relaxed loads) per frame and copies a frame at most once a second,
//! only within a few seconds of a page asking for one. Pictures stay in
//! memory; nothing here is written to disk.

use super::{age, since_start, stamp};
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// A snapshot is taken while a page asked for one this recently.
const WANTED_FOR: Duration = Duration::from_secs(3);
/// At most one snapshot per camera this often.
pub const SNAPSHOT_EVERY: Duration = Duration::from_secs(1);
/// Events kept for the page.
pub const RECENT_EVENTS: usize = 50;

/// One camera's picture and subjects.
#[derive(Debug, Default)]
pub struct CameraView {
    /// Until when (a stamp, ms) a page wants snapshots; 0: never asked.
    wanted_until: AtomicU64,
    /// When the last snapshot was taken (a [`stamp`]; 0: never).
    taken_at: AtomicU64,
    picture: Mutex<Option<Arc<Picture>>>,
    subjects: Mutex<BTreeMap<String, SubjectView>>,
}

/// A frame as the models see it (privacy masks painted), RGB8.
#[derive(Debug)]
pub struct Picture {
    pub rgb: Vec<u8>,
    pub width: u32,
    pub height: u32,
    pub captured_at: SystemTime,
    /// What was tagged in this frame: regions, tracked people.
    pub outlines: Vec<Outline>,
    /// The JPEG, encoded the first time a page asks for it.
    pub jpeg: std::sync::OnceLock<Vec<u8>>,
}

/// A box drawn over the picture: `rect` in fractions of the frame.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outline {
    /// The subject's id: a region's name, a person's track id.
    pub id: String,
    pub rect: [f32; 4],
    /// What it is: `subject` (a region or a person: `id` names it),
    /// `motion` (where something moved) or `look` (a square the detector
    /// looked at).
    pub kind: &'static str,
}

/// A subject's latest decision, as the page's chart shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SubjectView {
    /// `frame`, `region` or `person`.
    pub kind: &'static str,
    /// The tags in force (after smoothing / hysteresis), class indices.
    pub tags: Vec<usize>,
    /// The probabilities decided on (smoothed, or a person's mean).
    pub probs: Vec<f32>,
    /// `p'` of eq. 2.
    pub adjusted: Vec<f32>,
    /// The labels the decision kept (the 1..5 rule applied).
    pub decided: Vec<usize>,
    /// Classifications behind `probs` (a person's views; 1 otherwise).
    pub views: u32,
    /// When the frame decided on was captured (as in the MQTT payloads).
    pub at: String,
}

/// What the page shows of the running pipeline, set when it starts.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PageInfo {
    /// `device`: the box's name.
    pub device: String,
    /// The configured cameras, in order: name, `analyze` mode, source kind.
    pub cameras: Vec<(String, String, String)>,
    /// Class ids and display names, in the model's order.
    pub classes: Vec<(String, String)>,
    /// The decision's parameters (eq. 2 and the 1..5 rule).
    pub thresholds: Vec<f32>,
    pub second_thresholds: Vec<f32>,
    pub alpha: f32,
    pub min_labels: usize,
    pub max_labels: usize,
    /// `model.precision`, and the engine in use (TensorRT) or "".
    pub precision: String,
    pub engine: String,
    /// The running config as TOML, secrets replaced by `"***"`.
    pub config: String,
    /// `http.snapshots`.
    pub snapshots: bool,
}

impl CameraView {
    /// A page wants this camera's picture: snapshots are taken for the
    /// next few seconds.
    pub fn want_snapshot(&self) {
        let until = since_start() + WANTED_FOR;
        self.wanted_until.store(until.as_millis() as u64, Relaxed);
    }

    /// Whether the camera thread should hand over this frame.
    pub fn snapshot_due(&self) -> bool {
        let now = since_start().as_millis() as u64;
        let wanted = self.wanted_until.load(Relaxed);
        wanted != 0 && now <= wanted && age(&self.taken_at).is_none_or(|a| a >= SNAPSHOT_EVERY)
    }

    pub fn put_picture(&self, picture: Picture) {
        stamp(&self.taken_at);
        *self.picture.lock().expect("camera view") = Some(Arc::new(picture));
    }

    /// The latest picture, if one was taken.
    pub fn picture(&self) -> Option<Arc<Picture>> {
        self.picture.lock().expect("camera view").clone()
    }

    /// A subject's decision (frame, region, person `id`).
    pub fn decided(&self, id: String, view: SubjectView) {
        self.subjects.lock().expect("camera view").insert(id, view);
    }

    /// A person left the camera's view.
    pub fn left(&self, id: &str) {
        self.subjects.lock().expect("camera view").remove(id);
    }

    /// A new pipeline: subjects start afresh (tracks ended with the old
    /// one, regions may have changed), and so does the picture: one taken
    /// before a reload may lack a mask the new config paints.
    pub fn clear(&self) {
        self.subjects.lock().expect("camera view").clear();
        *self.picture.lock().expect("camera view") = None;
        self.taken_at.store(0, Relaxed);
    }

    pub fn subjects(&self) -> BTreeMap<String, SubjectView> {
        self.subjects.lock().expect("camera view").clone()
    }
}

/// The last [`RECENT_EVENTS`] events, newest last, as published.
#[derive(Debug, Default)]
pub struct RecentEvents(Mutex<VecDeque<(String, String)>>);

impl RecentEvents {
    pub fn push(&self, topic: &str, payload: &[u8]) {
        let mut q = self.0.lock().expect("recent events");
        if q.len() == RECENT_EVENTS {
            q.pop_front();
        }
        q.push_back((topic.to_string(), String::from_utf8_lossy(payload).into()));
    }

    /// `(topic, payload)`, newest last.
    pub fn list(&self) -> Vec<(String, String)> {
        self.0
            .lock()
            .expect("recent events")
            .iter()
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_are_taken_only_when_asked_and_at_most_once_a_second() {
        let v = CameraView::default();
        assert!(!v.snapshot_due(), "nobody asked");
        v.want_snapshot();
        assert!(v.snapshot_due());
        v.put_picture(Picture {
            rgb: vec![0; 12],
            width: 2,
            height: 2,
            captured_at: SystemTime::now(),
            outlines: vec![],
            jpeg: Default::default(),
        });
        assert!(!v.snapshot_due(), "one per second");
        assert_eq!(v.picture().unwrap().width, 2);
    }

    /// A reload that adds a mask: the picture from before it (unmasked)
    /// is never served after it; the next one is taken at once.
    #[test]
    fn a_new_pipeline_holds_no_picture_of_the_old_one() {
        let v = CameraView::default();
        v.want_snapshot();
        v.put_picture(Picture {
            rgb: vec![255; 12],
            width: 2,
            height: 2,
            captured_at: SystemTime::now(),
            outlines: vec![],
            jpeg: Default::default(),
        });
        v.clear();
        assert!(v.picture().is_none(), "the old picture is still served");
        assert!(v.snapshot_due(), "a new picture is due at once");
    }

    #[test]
    fn the_last_fifty_events_are_kept() {
        let e = RecentEvents::default();
        for i in 0..60 {
            e.push("t", format!("{i}").as_bytes());
        }
        let l = e.list();
        assert_eq!(l.len(), RECENT_EVENTS);
        assert_eq!(l[0].1, "10");
        assert_eq!(l[49].1, "59");
    }
}
