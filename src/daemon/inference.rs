//! The inference thread: takes batches across cameras, runs the backend,
//! then per frame the decision, smoothing and change detection, and hands
//! tag events to the publisher.

use super::gate::Reuse;
use super::queue::{FrameQueues, Input, Prepared};
use super::subjects::{Notice, People, PersonState, RegionState, Subject};
use crate::bundle::Bundle;
use crate::config::SmoothingConfig;
use crate::detect::track::TrackId;
use crate::infer::{Backend, InferError};
use crate::preprocess::kernels::Rect;
use crate::preprocess::Preprocessor;
use crate::publish::{payload, Message, Sink, Topics};
use crate::smooth::{Hysteresis, Smoother};
use crate::styles::DecisionParams;
use crate::telemetry::view::SubjectView;
use crate::telemetry::{Beat, Metrics, PeopleCounters, RateLimit, Stage};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One camera's decision state; it outlives a pipeline (by name).
pub(super) struct CameraState {
    pub(super) name: String,
    pub(super) smoother: Smoother,
    pub(super) hysteresis: Hysteresis,
    /// Events decided in this epoch (the last `seq`).
    pub(super) events: u64,
    /// What the smoothing state was built for.
    pub(super) classes: usize,
    pub(super) smoothing: SmoothingConfig,
    /// `regions` mode: each region's state, in config order.
    pub(super) regions: Vec<RegionState>,
    /// `people` mode: the people in view.
    pub(super) people: People,
    pub(super) mode: crate::config::AnalyzeMode,
}

/// What a person event says (see [`Inference::person_event`]).
struct PersonChange<'a> {
    event: &'static str,
    id: crate::detect::track::TrackId,
    person: &'a PersonState,
    frame_seq: u64,
    captured_at: std::time::SystemTime,
    labels: &'a [usize],
    added: &'a [usize],
    removed: &'a [usize],
    scores: &'a [f32],
    dwell_s: Option<f64>,
}

/// A frame of a batch: in a backend slot, or answered by the change gate
/// with its keyframe's probabilities.
struct Ready {
    item: Prepared,
    reused: Option<Vec<f32>>,
}

/// How long a stopping inference thread waits for the cameras' last
/// track notices.
const LEAVE_GRACE: Duration = Duration::from_secs(3);

/// Consecutive failed batches after which the backend is opened again.
const REOPEN_AFTER: u32 = 3;

pub(super) type Reopen = Box<dyn Fn() -> Result<Box<dyn Backend>, InferError> + Send>;

pub(super) struct Inference {
    pub(super) backend: Box<dyn Backend>,
    /// Opens a fresh backend of the same kind on the same bundle.
    pub(super) reopen: Reopen,
    /// Prepares frames that reach the batch raw (`preprocess_on = "inference_thread"`).
    pub(super) preprocessor: Box<dyn Preprocessor>,
    pub(super) decision: DecisionParams,
    pub(super) bundle: Bundle,
    pub(super) cameras: Vec<CameraState>,
    pub(super) topics: Topics,
    /// The outbox's epoch, in every event and state message.
    pub(super) epoch: String,
    pub(super) publish_frames: bool,
    pub(super) max_batch: usize,
    pub(super) max_wait: Duration,
    /// The change gate's keyframe probabilities per camera.
    pub(super) reuse: Reuse,
    /// The backend's [`Backend::escalated`] at the last report.
    pub(super) escalated_seen: u64,
    /// Per camera: the track notices of a people camera.
    pub(super) notices: Vec<Option<std::sync::mpsc::Receiver<Notice>>>,
    /// Per camera: where a people camera hears that a person's tags have
    /// settled, and after how many unchanged decisions they do
    /// (`cameras.people.settle_after`).
    pub(super) settled: Vec<Option<(std::sync::mpsc::Sender<TrackId>, u32)>>,
    /// Crop collection: each classified person's probabilities, for the
    /// view a camera thread kept (None: collection is off).
    pub(super) collect: Option<crate::collect::ProbsTx>,
}

/// CUDA errors after which the process's CUDA context is unusable: every
/// later call fails the same way until the process ends.
const STICKY_CUDA_ERRORS: [&str; 9] = [
    "CUDA_ERROR_ILLEGAL_ADDRESS",
    "CUDA_ERROR_LAUNCH_FAILED",
    "CUDA_ERROR_HARDWARE_STACK_ERROR",
    "CUDA_ERROR_ILLEGAL_INSTRUCTION",
    "CUDA_ERROR_MISALIGNED_ADDRESS",
    "CUDA_ERROR_INVALID_ADDRESS_SPACE",
    "CUDA_ERROR_INVALID_PC",
    "CUDA_ERROR_ECC_UNCORRECTABLE",
    "CUDA_ERROR_UNKNOWN",
];

/// The sticky CUDA error named in `message`, if any.
pub(super) fn sticky_cuda_error(message: &str) -> Option<&'static str> {
    STICKY_CUDA_ERRORS.into_iter().find(|c| message.contains(c))
}

/// Ends the process on a sticky CUDA error, so that systemd restarts it
/// with a fresh context (the outbox is on disk; nothing committed is lost).
fn exit_on_sticky_cuda_error(message: &str) {
    if let Some(code) = sticky_cuda_error(message) {
        log::error!(
            "{code}: the CUDA context is lost and every later call would fail ({message}); \
             exiting so that systemd restarts stylecam"
        );
        std::process::exit(70);
    }
}

impl Inference {
    pub(super) fn run(
        mut self,
        queues: &FrameQueues,
        publisher: &dyn Sink,
        metrics: &Metrics,
    ) -> Vec<CameraState> {
        let classes = self.bundle.manifest.classes.len();
        let mut failures = 0u32;
        while let Some(batch) = queues.take_batch(self.max_batch, self.max_wait) {
            metrics.beat(Beat::Inference);
            self.drain_notices(publisher, metrics);
            let ready = self.fill(batch, metrics);
            let n = ready.iter().filter(|r| r.reused.is_none()).count();
            let mut probs = Vec::new();
            if n > 0 {
                let t0 = Instant::now();
                match self.backend.run(n) {
                    Ok(p) => probs = p.to_vec(),
                    Err(e) => {
                        exit_on_sticky_cuda_error(&e.to_string());
                        failures += 1;
                        metrics.frames_failed(n as u64);
                        if failures == 1 {
                            log::error!(
                                "{} backend failed on a batch of {n}: {e} (frames dropped; going on)",
                                self.backend.name()
                            );
                        }
                        if failures.is_multiple_of(REOPEN_AFTER) {
                            self.reopen_backend(failures, metrics);
                        }
                    }
                }
                if !probs.is_empty() {
                    if failures > 0 {
                        log::info!(
                            "{} backend runs again after {failures} failed batch(es)",
                            self.backend.name()
                        );
                        failures = 0;
                    }
                    metrics.time(Stage::Infer, t0.elapsed(), n as u64);
                    metrics.frames_inferred(n as u64);
                    let escalated = self.backend.escalated();
                    metrics.frames_escalated(escalated.saturating_sub(self.escalated_seen));
                    self.escalated_seen = escalated;
                }
            }
            let mut inferred = probs.chunks_exact(classes);
            for r in ready {
                let p = match &r.reused {
                    Some(p) => {
                        metrics.frames_gated(1);
                        p.as_slice()
                    }
                    // The batch failed: its inferred frames are dropped.
                    None => match inferred.next() {
                        Some(p) => p,
                        None => continue,
                    },
                };
                self.handle(&r.item, p, publisher, metrics);
                if r.reused.is_none() && r.item.subject == Subject::Frame {
                    self.reuse.inferred(r.item.camera, r.item.seq, p);
                }
            }
        }
        // Stopped (shutdown or reload): the cameras' threads send their
        // last notices (everyone in view leaves) before they end, which
        // may be after the queues ran dry. A camera that does not end
        // within the grace time loses its `left` events (logged).
        if !queues.wait_cameras_ended(LEAVE_GRACE) {
            log::warn!(
                "a camera did not stop within {} s: people still in its view get no `left` event",
                LEAVE_GRACE.as_secs()
            );
        }
        self.drain_notices(publisher, metrics);
        self.cameras
    }

    /// Track lifecycle from the people cameras: a person comes into view,
    /// or leaves (with a `left` event when it was tagged).
    fn drain_notices(&mut self, publisher: &dyn Sink, metrics: &Metrics) {
        for camera in 0..self.notices.len() {
            let pending: Vec<Notice> = match &self.notices[camera] {
                Some(rx) => rx.try_iter().collect(),
                None => continue,
            };
            for n in pending {
                match n {
                    Notice::Entered { id, at } => {
                        self.cameras[camera].people.insert(id, PersonState::new(at));
                    }
                    Notice::Left {
                        id,
                        at,
                        frame_seq,
                        dwell_ms,
                    } => {
                        let Some(person) = self.cameras[camera].people.remove(&id) else {
                            continue;
                        };
                        metrics
                            .camera(&self.cameras[camera].name)
                            .view
                            .left(&id.to_string());
                        let Some(tags) = person.tags.clone() else {
                            PeopleCounters::add(&metrics.people().untagged, 1);
                            continue;
                        };
                        let summary = person.summary();
                        self.person_event(
                            camera,
                            PersonChange {
                                event: "left",
                                id,
                                person: &person,
                                frame_seq,
                                captured_at: at,
                                labels: &tags,
                                added: &[],
                                removed: &[],
                                scores: &summary,
                                dwell_s: Some(dwell_ms as f64 / 1000.0),
                            },
                            publisher,
                            metrics,
                        );
                    }
                }
            }
        }
    }

    /// Puts each frame of `batch` into the next input slot of the backend
    /// (copying a tensor, or preprocessing a raw frame in place), or, for a
    /// frame the change gate passed whose keyframe's probabilities are at
    /// hand, takes those; returns the frames that made it, in their order.
    fn fill(&mut self, batch: Vec<Prepared>, metrics: &Metrics) -> Vec<Ready> {
        let mut ready = Vec::with_capacity(batch.len());
        let mut slot = 0;
        let mut items = batch.into_iter().peekable();
        while let Some(item) = items.next() {
            if let Some(key) = item.reuse {
                if let Some(p) = self.reuse.probs(item.camera, key) {
                    let reused = Some(p.to_vec());
                    ready.push(Ready { item, reused });
                    continue;
                }
                // Inferred after all (its raw frame came with it).
                self.reuse.lost(item.camera, key);
            }
            let i = slot;
            let t0 = Instant::now();
            // The other crops of the same frame go with it: one call, one
            // launch on the GPU, consecutive slots.
            let mut more: Vec<(Prepared, Rect)> = vec![];
            if let Input::Crop { frame, .. } = &item.input {
                while let Some(next) = items.next_if(
                    |n| matches!(&n.input, Input::Crop { frame: f, .. } if Arc::ptr_eq(f, frame)),
                ) {
                    let Input::Crop { rect, .. } = &next.input else {
                        continue;
                    };
                    let rect = *rect;
                    more.push((next, rect));
                }
            }
            let result = match &item.input {
                Input::Tensor(t) => self.backend.write(i, t).map_err(|e| e.to_string()),
                Input::Frame(f) => {
                    let r = self
                        .preprocessor
                        .prepare(f, self.backend.slot(i))
                        .map_err(|e| e.to_string());
                    metrics.time(Stage::Preprocess, t0.elapsed(), 1);
                    r
                }
                Input::Crop { frame, rect } => {
                    let rects: Vec<Rect> = std::iter::once(*rect)
                        .chain(more.iter().map(|(_, r)| *r))
                        .collect();
                    let r = self
                        .preprocessor
                        .prepare_crops(frame, &rects, self.backend.slots(i, rects.len()))
                        .map_err(|e| e.to_string());
                    metrics.time(Stage::Preprocess, t0.elapsed(), rects.len() as u64);
                    r
                }
            };
            let group = std::iter::once(item).chain(more.into_iter().map(|(p, _)| p));
            match result {
                Ok(()) => {
                    for item in group {
                        slot += 1;
                        ready.push(Ready { item, reused: None });
                    }
                }
                Err(e) => {
                    let mut first = None;
                    for item in group {
                        metrics.frame_skipped();
                        first.get_or_insert((item.camera, item.seq));
                    }
                    let (camera, seq) = first.expect("at least the item");
                    exit_on_sticky_cuda_error(&e);
                    static BAD_FRAMES: RateLimit = RateLimit::new(Duration::from_secs(10));
                    if let Some(held) = BAD_FRAMES.allow() {
                        let more = match held {
                            0 => String::new(),
                            n => format!(" ({n} more such frames skipped since the last line)"),
                        };
                        log::warn!("camera #{camera} frame {seq}: {e}{more}");
                    }
                }
            }
        }
        ready
    }

    fn reopen_backend(&mut self, failures: u32, metrics: &Metrics) {
        match (self.reopen)() {
            Ok(b) => {
                log::warn!(
                    "{} backend re-opened after {failures} failed batches in a row",
                    b.name()
                );
                metrics.backend_reopened();
                self.max_batch = self.max_batch.min(b.limits().max);
                self.escalated_seen = b.escalated();
                self.backend = b;
            }
            Err(e) => log::error!("re-opening the backend after {failures} failed batches: {e}"),
        }
    }

    fn handle(&mut self, f: &Prepared, p: &[f32], publisher: &dyn Sink, metrics: &Metrics) {
        match f.subject {
            Subject::Frame => self.handle_frame(f, p, publisher, metrics),
            Subject::Region(r) => self.handle_region(f, r, p, publisher, metrics),
            Subject::Person(id) => self.handle_person(f, id, p, publisher, metrics),
        }
    }

    /// A region's crop: smoothed and decided like a frame, its `styles`
    /// event naming the region.
    fn handle_region(
        &mut self,
        f: &Prepared,
        r: usize,
        p: &[f32],
        publisher: &dyn Sink,
        metrics: &Metrics,
    ) {
        let t0 = Instant::now();
        let model = self.model_ref();
        let taxonomy = &self.bundle.manifest.classes;
        let cam = &mut self.cameras[f.camera];
        let Some(region) = cam.regions.get_mut(r) else {
            return;
        };
        let smoothed = region.smoother.push(p);
        let decision = self.decision.decide(&smoothed);
        let change = region.hysteresis.update(&decision.labels);
        metrics.camera(&cam.name).view.decided(
            region.name.clone(),
            SubjectView {
                kind: "region",
                tags: region.hysteresis.tags(),
                probs: smoothed.clone(),
                adjusted: decision.adjusted,
                decided: decision.labels,
                views: 1,
                at: crate::publish::payload::timestamp(f.captured_at),
            },
        );
        metrics.time(Stage::Decide, t0.elapsed(), 1);
        let Some(change) = change else { return };
        region.tags = change.tags.clone();
        region.scores = smoothed.clone();
        let name = region.name.clone();
        cam.events += 1;
        metrics.event();
        log::info!(
            "camera {} region {name}: tags {:?}",
            cam.name,
            payload::ids(taxonomy, &change.tags)
        );
        let captured_at = payload::timestamp(f.captured_at);
        let event = payload::StylesEvent {
            v: payload::VERSION,
            kind: "styles",
            device: self.topics.device.clone(),
            camera: cam.name.clone(),
            epoch: self.epoch.clone(),
            seq: cam.events,
            frame_seq: f.seq,
            captured_at: captured_at.clone(),
            tags: payload::tags(taxonomy, &change.tags, &smoothed),
            added: payload::ids(taxonomy, &change.added),
            removed: payload::ids(taxonomy, &change.removed),
            model,
            region: Some(name),
        };
        publisher.send(Message {
            topic: self.topics.styles(&cam.name),
            payload: payload::to_json(&event),
            reliable: true,
            retain: false,
            event: Some((cam.name.clone(), cam.events)),
        });
        self.send_state(f.camera, captured_at, publisher);
    }

    /// A person's crop: added to the person's views; `entered` once its
    /// tags are first decided, `changed` when the decisions since agree on
    /// a change (the camera's `smoothing.enter_frames` / `leave_frames`).
    fn handle_person(
        &mut self,
        f: &Prepared,
        id: crate::detect::track::TrackId,
        p: &[f32],
        publisher: &dyn Sink,
        metrics: &Metrics,
    ) {
        let t0 = Instant::now();
        PeopleCounters::add(&metrics.people().classifications, 1);
        if let Some(c) = &self.collect {
            c.probs(f.camera, f.seq, id, p);
        }
        let s = &self.cameras[f.camera].smoothing;
        let (enter, leave) = (s.enter_frames, s.leave_frames);
        // A crop of a person who already left (its notice came first).
        let Some(person) = self.cameras[f.camera].people.get_mut(&id) else {
            return;
        };
        let summary = person.add(p);
        let decision = self.decision.decide(&summary);
        let labels = decision.labels.clone();
        if let Some((tx, after)) = &self.settled[f.camera] {
            if !person.settled && person.settling.observe(&labels, *after) {
                person.settled = true;
                // The camera thread may have ended (a stop): nothing to tell.
                let _ = tx.send(id);
            }
        }
        metrics.time(Stage::Decide, t0.elapsed(), 1);
        let change = match person.hysteresis.as_mut() {
            None => {
                person.hysteresis = Some(Hysteresis::seeded(summary.len(), enter, leave, &labels));
                Some(("entered", labels, vec![], vec![]))
            }
            Some(h) => h
                .update(&labels)
                .map(|c| ("changed", c.tags, c.added, c.removed)),
        };
        if let Some((_, labels, _, _)) = &change {
            person.tags = Some(labels.clone());
        }
        let person = person.clone();
        self.person_view(
            f.camera,
            id,
            &person,
            &summary,
            decision,
            f.captured_at,
            metrics,
        );
        let Some((event, labels, added, removed)) = change else {
            return;
        };
        self.person_event(
            f.camera,
            PersonChange {
                event,
                id,
                person: &person,
                frame_seq: f.seq,
                captured_at: f.captured_at,
                labels: &labels,
                added: &added,
                removed: &removed,
                scores: &summary,
                dwell_s: None,
            },
            publisher,
            metrics,
        );
    }

    /// A person's latest decision, for the status page.
    #[allow(clippy::too_many_arguments)]
    fn person_view(
        &self,
        camera: usize,
        id: crate::detect::track::TrackId,
        person: &super::subjects::PersonState,
        summary: &[f32],
        decision: crate::styles::Decision,
        at: std::time::SystemTime,
        metrics: &Metrics,
    ) {
        metrics.camera(&self.cameras[camera].name).view.decided(
            id.to_string(),
            SubjectView {
                kind: "person",
                tags: person.tags.clone().unwrap_or_default(),
                probs: summary.to_vec(),
                adjusted: decision.adjusted,
                decided: decision.labels,
                views: person.classifications,
                at: crate::publish::payload::timestamp(at),
            },
        );
    }

    fn model_ref(&self) -> payload::ModelRef {
        payload::ModelRef {
            name: self.bundle.manifest.name.clone(),
            version: self.bundle.manifest.version.clone(),
        }
    }

    /// Publishes one person event and the camera's state after it.
    fn person_event(
        &mut self,
        camera: usize,
        c: PersonChange<'_>,
        publisher: &dyn Sink,
        metrics: &Metrics,
    ) {
        let model = self.model_ref();
        let taxonomy = &self.bundle.manifest.classes;
        let cam = &mut self.cameras[camera];
        cam.events += 1;
        metrics.event();
        log::info!(
            "camera {}: person {} {}: tags {:?}",
            cam.name,
            c.id,
            c.event,
            payload::ids(taxonomy, c.labels)
        );
        let captured_at = payload::timestamp(c.captured_at);
        let event = payload::PersonEvent {
            v: payload::VERSION,
            kind: "person",
            event: c.event,
            device: self.topics.device.clone(),
            camera: cam.name.clone(),
            epoch: self.epoch.clone(),
            seq: cam.events,
            person: c.id.to_string(),
            frame_seq: c.frame_seq,
            captured_at: captured_at.clone(),
            first_seen: payload::timestamp(c.person.first_seen),
            tags: payload::tags(taxonomy, c.labels, c.scores),
            added: payload::ids(taxonomy, c.added),
            removed: payload::ids(taxonomy, c.removed),
            classifications: c.person.classifications.max(1),
            dwell_s: c.dwell_s,
            model,
        };
        let cam = &self.cameras[camera];
        publisher.send(Message {
            topic: self.topics.people(&cam.name),
            payload: payload::to_json(&event),
            reliable: true,
            retain: false,
            event: Some((cam.name.clone(), cam.events)),
        });
        self.send_state(camera, captured_at, publisher);
    }

    /// The retained `state` of a regions or people camera: every region's
    /// tags, or the tagged people in view.
    fn send_state(&self, camera: usize, captured_at: String, publisher: &dyn Sink) {
        let taxonomy = &self.bundle.manifest.classes;
        let cam = &self.cameras[camera];
        let regions = (cam.mode == crate::config::AnalyzeMode::Regions).then(|| {
            cam.regions
                .iter()
                .map(|r| payload::SubjectTags {
                    id: r.name.clone(),
                    tags: payload::tags(taxonomy, &r.tags, &r.scores),
                })
                .collect()
        });
        let people = (cam.mode == crate::config::AnalyzeMode::People).then(|| {
            cam.people
                .iter()
                .filter_map(|(id, p)| {
                    let tags = p.tags.as_ref()?;
                    Some(payload::SubjectTags {
                        id: id.to_string(),
                        tags: payload::tags(taxonomy, tags, &p.summary()),
                    })
                })
                .collect()
        });
        let state = payload::StateMessage {
            v: payload::VERSION,
            kind: "state",
            device: self.topics.device.clone(),
            camera: cam.name.clone(),
            epoch: self.epoch.clone(),
            seq: cam.events,
            captured_at,
            tags: vec![],
            regions,
            people,
        };
        publisher.send(Message {
            topic: self.topics.state(&cam.name),
            payload: payload::to_json(&state),
            reliable: true,
            retain: true,
            event: None,
        });
    }

    fn handle_frame(&mut self, f: &Prepared, p: &[f32], publisher: &dyn Sink, metrics: &Metrics) {
        let t0 = Instant::now();
        let taxonomy = &self.bundle.manifest.classes;
        let cam = &mut self.cameras[f.camera];
        let smoothed = cam.smoother.push(p);
        let decision = self.decision.decide(&smoothed);
        let change = cam.hysteresis.update(&decision.labels);
        metrics.camera(&cam.name).view.decided(
            "frame".into(),
            SubjectView {
                kind: "frame",
                tags: cam.hysteresis.tags(),
                probs: smoothed.clone(),
                adjusted: decision.adjusted.clone(),
                decided: decision.labels.clone(),
                views: 1,
                at: crate::publish::payload::timestamp(f.captured_at),
            },
        );
        let t1 = Instant::now();
        metrics.time(Stage::Decide, t1 - t0, 1);
        let captured_at = payload::timestamp(f.captured_at);
        if self.publish_frames {
            let m = payload::FrameMessage {
                v: payload::VERSION,
                kind: "frame",
                device: self.topics.device.clone(),
                camera: cam.name.clone(),
                frame_seq: f.seq,
                captured_at: captured_at.clone(),
                probs: p.to_vec(),
                labels: payload::ids(taxonomy, &decision.labels),
            };
            publisher.send(Message {
                topic: self.topics.frames(&cam.name),
                payload: payload::to_json(&m),
                reliable: false,
                retain: false,
                event: None,
            });
        }
        if let Some(change) = change {
            cam.events += 1;
            metrics.event();
            let tags = payload::tags(taxonomy, &change.tags, &smoothed);
            log::info!(
                "camera {}: tags {:?} (+{:?} -{:?})",
                cam.name,
                payload::ids(taxonomy, &change.tags),
                payload::ids(taxonomy, &change.added),
                payload::ids(taxonomy, &change.removed)
            );
            let event = payload::StylesEvent {
                v: payload::VERSION,
                kind: "styles",
                device: self.topics.device.clone(),
                camera: cam.name.clone(),
                epoch: self.epoch.clone(),
                seq: cam.events,
                frame_seq: f.seq,
                captured_at: captured_at.clone(),
                tags: tags.clone(),
                added: payload::ids(taxonomy, &change.added),
                removed: payload::ids(taxonomy, &change.removed),
                model: payload::ModelRef {
                    name: self.bundle.manifest.name.clone(),
                    version: self.bundle.manifest.version.clone(),
                },
                region: None,
            };
            let state = payload::StateMessage {
                v: payload::VERSION,
                kind: "state",
                device: self.topics.device.clone(),
                camera: cam.name.clone(),
                epoch: self.epoch.clone(),
                seq: cam.events,
                captured_at,
                tags,
                regions: None,
                people: None,
            };
            publisher.send(Message {
                topic: self.topics.styles(&cam.name),
                payload: payload::to_json(&event),
                reliable: true,
                retain: false,
                event: Some((cam.name.clone(), cam.events)),
            });
            publisher.send(Message {
                topic: self.topics.state(&cam.name),
                payload: payload::to_json(&state),
                reliable: true,
                retain: true,
                event: None,
            });
        }
        metrics.time(Stage::Publish, t1.elapsed(), 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::infer::{cpu::CpuBackend, BatchLimits, Slot};
    use std::sync::Mutex;

    /// The demo bundle's CPU backend, failing its first `fail` runs.
    struct Flaky {
        inner: CpuBackend,
        fail: usize,
    }

    impl Backend for Flaky {
        fn name(&self) -> &'static str {
            "flaky"
        }
        fn limits(&self) -> BatchLimits {
            self.inner.limits()
        }
        fn sample_len(&self) -> usize {
            self.inner.sample_len()
        }
        fn classes(&self) -> usize {
            self.inner.classes()
        }
        fn slots(&mut self, i: usize, n: usize) -> Slot<'_> {
            self.inner.slots(i, n)
        }
        fn run(&mut self, n: usize) -> Result<&[f32], InferError> {
            if self.fail > 0 {
                self.fail -= 1;
                return Err(InferError::Run("injected failure".into()));
            }
            self.inner.run(n)
        }
    }

    #[derive(Default)]
    struct Collect(Mutex<Vec<Message>>);

    impl Sink for Collect {
        fn send(&self, msg: Message) {
            self.0.lock().unwrap().push(msg);
        }
    }

    /// Failed batches are counted and skipped, the daemon goes on, and the
    /// third failure in a row re-opens the backend, which then serves.
    #[test]
    fn failed_batches_are_counted_and_the_backend_is_reopened() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo-bundle");
        let bundle = Bundle::load(&dir).unwrap();
        let classes = bundle.manifest.classes.len();
        let reopened = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let reopen: Reopen = {
            let (bundle, reopened) = (bundle.clone(), reopened.clone());
            Box::new(move || {
                reopened.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Ok(Box::new(CpuBackend::open(&bundle)?) as Box<dyn Backend>)
            })
        };
        let smoothing = crate::config::SmoothingConfig::default();
        let inference = Inference {
            backend: Box::new(Flaky {
                inner: CpuBackend::open(&bundle).unwrap(),
                fail: 5,
            }),
            reopen,
            preprocessor: Box::new(crate::preprocess::CpuPreprocessor::new(
                bundle.manifest.input.clone(),
            )),
            decision: bundle.decision(),
            cameras: vec![CameraState {
                name: "cam".into(),
                smoother: Smoother::from_config(&smoothing),
                hysteresis: Hysteresis::new(classes, 1, 1),
                events: 0,
                classes,
                smoothing,
                regions: vec![],
                people: Default::default(),
                mode: crate::config::AnalyzeMode::Frame,
            }],
            topics: Topics {
                prefix: "stylecam".into(),
                device: "t".into(),
            },
            epoch: "0123456789abcdef".into(),
            publish_frames: true,
            max_batch: 1,
            max_wait: Duration::ZERO,
            reuse: Reuse::default(),
            escalated_seen: 0,
            notices: vec![None],
            settled: vec![None],
            collect: None,
            bundle,
        };
        let queues = FrameQueues::new(1, 16);
        let per = 3 * 224 * 224;
        for seq in 0..8 {
            queues.push(Prepared {
                camera: 0,
                seq,
                captured_at: std::time::SystemTime::UNIX_EPOCH + Duration::from_millis(seq),
                input: Input::Tensor(vec![0.1 * seq as f32; per]),
                subject: Subject::Frame,
                reuse: None,
            });
        }
        queues.camera_ended();
        let (sink, metrics) = (Collect::default(), Metrics::default());
        let cameras = inference.run(&queues, &sink, &metrics);
        let snap = metrics.snapshot();
        // Three failures, a re-open, then the new backend serves the other five.
        assert_eq!(reopened.load(std::sync::atomic::Ordering::Relaxed), 1);
        assert_eq!(
            (
                snap.frames_failed,
                snap.backend_reopens,
                snap.frames_inferred
            ),
            (3, 1, 5)
        );
        let frames = sink
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m.topic.ends_with("/frames"))
            .count();
        assert_eq!(frames, 5, "every inferred frame was decided and published");
        assert_eq!(cameras.len(), 1);
    }

    #[test]
    fn sticky_cuda_errors_are_told_apart() {
        let e = "CUDA preprocessing: DriverError(CUDA_ERROR_ILLEGAL_ADDRESS, \"an illegal memory access was encountered\")";
        assert_eq!(sticky_cuda_error(e), Some("CUDA_ERROR_ILLEGAL_ADDRESS"));
        assert_eq!(
            sticky_cuda_error(
                "CUDA preprocessing: DriverError(CUDA_ERROR_OUT_OF_MEMORY, \"out of memory\")"
            ),
            None
        );
        assert_eq!(
            sticky_cuda_error("frame cam#3: 100 bytes, expected 614400"),
            None
        );
    }
}
