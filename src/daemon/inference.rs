//! The inference thread: takes batches across cameras, runs the backend,
//! then per frame the decision, smoothing and change detection, and hands
//! tag events to the publisher.

use super::metrics::{Metrics, Stage};
use super::queue::{FrameQueues, Prepared};
use super::DaemonError;
use crate::bundle::Bundle;
use crate::infer::Backend;
use crate::publish::mqtt::Publisher;
use crate::publish::{payload, Message, Topics};
use crate::smooth::{Hysteresis, Smoother};
use crate::styles::DecisionParams;
use std::time::{Duration, Instant};

pub(super) struct CameraState {
    pub(super) name: String,
    pub(super) smoother: Smoother,
    pub(super) hysteresis: Hysteresis,
    pub(super) events: u64,
}

pub(super) struct Inference {
    pub(super) backend: Box<dyn Backend>,
    pub(super) decision: DecisionParams,
    pub(super) bundle: Bundle,
    pub(super) cameras: Vec<CameraState>,
    pub(super) topics: Topics,
    pub(super) publish_frames: bool,
    pub(super) max_batch: usize,
    pub(super) max_wait: Duration,
}

impl Inference {
    pub(super) fn run(
        mut self,
        queues: &FrameQueues,
        publisher: &Publisher,
        metrics: &Metrics,
    ) -> Result<(), DaemonError> {
        let classes = self.bundle.manifest.classes.len();
        let mut input = vec![];
        while let Some(batch) = queues.take_batch(self.max_batch, self.max_wait) {
            let n = batch.len();
            input.clear();
            for f in &batch {
                input.extend_from_slice(&f.tensor);
            }
            let t0 = Instant::now();
            let probs = self.backend.infer(&input, n)?;
            metrics.time(Stage::Infer, t0.elapsed(), n as u64);
            metrics.frames_inferred(n as u64);
            for (f, p) in batch.iter().zip(probs.chunks_exact(classes)) {
                self.handle(f, p, publisher, metrics);
            }
        }
        Ok(())
    }

    fn handle(&mut self, f: &Prepared, p: &[f32], publisher: &Publisher, metrics: &Metrics) {
        let t0 = Instant::now();
        let taxonomy = &self.bundle.manifest.classes;
        let cam = &mut self.cameras[f.camera];
        let smoothed = cam.smoother.push(p);
        let decision = self.decision.decide(&smoothed);
        let change = cam.hysteresis.update(&decision.labels);
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
            };
            let state = payload::StateMessage {
                v: payload::VERSION,
                kind: "state",
                device: self.topics.device.clone(),
                camera: cam.name.clone(),
                seq: cam.events,
                captured_at,
                tags,
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
