//! The inference thread: takes batches across cameras, runs the backend,
//! then per frame the decision, smoothing and change detection, and hands
//! tag events to the publisher.

use super::gate::Reuse;
use super::queue::{FrameQueues, Input, Prepared};
use crate::bundle::Bundle;
use crate::config::SmoothingConfig;
use crate::infer::{Backend, InferError};
use crate::preprocess::Preprocessor;
use crate::publish::{payload, Message, Sink, Topics};
use crate::smooth::{Hysteresis, Smoother};
use crate::styles::DecisionParams;
use crate::telemetry::{Beat, Metrics, RateLimit, Stage};
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
}

/// A frame of a batch: in a backend slot, or answered by the change gate
/// with its keyframe's probabilities.
struct Ready {
    item: Prepared,
    reused: Option<Vec<f32>>,
}

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
                if r.reused.is_none() {
                    self.reuse.inferred(r.item.camera, r.item.seq, p);
                }
            }
        }
        self.cameras
    }

    /// Puts each frame of `batch` into the next input slot of the backend
    /// (copying a tensor, or preprocessing a raw frame in place), or, for a
    /// frame the change gate passed whose keyframe's probabilities are at
    /// hand, takes those; returns the frames that made it, in their order.
    fn fill(&mut self, batch: Vec<Prepared>, metrics: &Metrics) -> Vec<Ready> {
        let mut ready = Vec::with_capacity(batch.len());
        let mut slot = 0;
        for item in batch {
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
            };
            match result {
                Ok(()) => {
                    slot += 1;
                    ready.push(Ready { item, reused: None });
                }
                Err(e) => {
                    metrics.frame_skipped();
                    exit_on_sticky_cuda_error(&e);
                    static BAD_FRAMES: RateLimit = RateLimit::new(Duration::from_secs(10));
                    if let Some(held) = BAD_FRAMES.allow() {
                        let more = match held {
                            0 => String::new(),
                            n => format!(" ({n} more such frames skipped since the last line)"),
                        };
                        log::warn!("camera #{} frame {}: {e}{more}", item.camera, item.seq);
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
        fn slot(&mut self, i: usize) -> Slot<'_> {
            self.inner.slot(i)
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
