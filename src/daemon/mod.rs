//! The daemon wires the stages: one capture thread per camera (capture +
//! CPU preprocessing) → per-camera drop-oldest queues → one inference
//! thread (batching across cameras, backend, decision, smoothing) → the
//! MQTT publisher. Stages only meet through these seams.
//!
//! [`run`] returns when every camera has ended or when `shutdown`
//! resolves; either way queued frames are finished and pending events are
//! flushed to the broker (up to a timeout) before it returns.

mod inference;
pub mod metrics;
pub mod queue;
mod settings;

pub use settings::{credentials, mqtt_settings, tls};

use crate::bundle::Bundle;
use crate::capture::{self, CaptureError, FrameSource, SourceState};
use crate::config::Validated;
use crate::infer::Backend;
use crate::preprocess;
use crate::publish::mqtt::Publisher;
use crate::publish::store::{Store, StoreError};
use crate::smooth::{Hysteresis, Smoother};
use inference::{CameraState, Inference};
use metrics::{Metrics, Snapshot, Stage};
use queue::{FrameQueues, Prepared};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("config key `{key}` = {path}: {problem}. Fix: {fix}")]
    File {
        key: &'static str,
        path: String,
        problem: String,
        fix: &'static str,
    },
    #[error("{0}")]
    Outbox(#[from] StoreError),
    #[error("config key `cameras[{index}]` ({name}): {source}")]
    Camera {
        index: usize,
        name: String,
        source: CaptureError,
    },
    #[error("{0}")]
    Infer(#[from] crate::infer::InferError),
}

/// Opens every camera before anything else starts, so a bad camera is a
/// start-up error that names its config key.
pub fn open_cameras(cfg: &Validated) -> Result<Vec<Box<dyn FrameSource>>, DaemonError> {
    cfg.cameras
        .iter()
        .enumerate()
        .map(|(index, c)| {
            capture::open(c).map_err(|source| DaemonError::Camera {
                index,
                name: c.name.clone(),
                source,
            })
        })
        .collect()
}

fn capture_loop(
    index: usize,
    mut source: Box<dyn FrameSource>,
    spec: preprocess::Spec,
    queues: Arc<FrameQueues>,
    metrics: Arc<Metrics>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Relaxed) {
        let t0 = Instant::now();
        let frame = match source.next_frame() {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(CaptureError::Skipped { .. }) => {
                metrics.frame_skipped();
                continue;
            }
            Err(e @ CaptureError::Fatal(_)) => {
                log::error!("camera #{index} stops: {e}");
                break;
            }
        };
        metrics.frame_captured();
        let t1 = Instant::now();
        metrics.time(Stage::Capture, t1 - t0, 1);
        match preprocess::preprocess(&frame, &spec) {
            Ok(tensor) => {
                metrics.time(Stage::Preprocess, t1.elapsed(), 1);
                let item = Prepared {
                    camera: index,
                    seq: frame.seq,
                    captured_at: frame.captured_at,
                    tensor,
                };
                if queues.push(item) {
                    metrics.frame_dropped();
                }
            }
            Err(e) => {
                metrics.frame_skipped();
                log::warn!("{e}");
            }
        }
    }
    if source.state() == SourceState::Ended {
        log::info!("camera #{index}: no more frames");
    }
    queues.camera_ended();
}

/// Runs the pipeline until every camera ends or `shutdown` resolves.
pub async fn run(
    cfg: &Validated,
    bundle: Bundle,
    backend: Box<dyn Backend>,
    sources: Vec<Box<dyn FrameSource>>,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) -> Result<Snapshot, DaemonError> {
    let mut settings = mqtt_settings(cfg);
    settings.credentials = credentials(cfg)?;
    settings.tls = tls(cfg)?;
    let topics = settings.topics.clone();
    let (store, restored) = Store::open(&cfg.outbox.path)?;
    let publisher = Publisher::start(settings, store, restored.pending, metrics.clone());
    let queues = Arc::new(FrameQueues::new(sources.len(), cfg.pipeline.queue_depth));
    let stop = Arc::new(AtomicBool::new(false));
    let spec = bundle.manifest.input.clone();
    let mut captures = vec![];
    for (i, source) in sources.into_iter().enumerate() {
        let (spec, queues, metrics, stop) =
            (spec.clone(), queues.clone(), metrics.clone(), stop.clone());
        captures.push(
            std::thread::Builder::new()
                .name(format!("camera-{i}"))
                .spawn(move || capture_loop(i, source, spec, queues, metrics, stop))
                .expect("spawn camera thread"),
        );
    }
    let classes = bundle.manifest.classes.len();
    let inference = Inference {
        backend,
        decision: bundle.decision(),
        cameras: cfg
            .cameras
            .iter()
            .map(|c| CameraState {
                name: c.name.clone(),
                smoother: Smoother::from_config(&cfg.smoothing),
                hysteresis: Hysteresis::new(
                    classes,
                    cfg.smoothing.enter_frames,
                    cfg.smoothing.leave_frames,
                ),
                // Event numbers go on from the last run's.
                events: restored.seqs.get(&c.name).copied().unwrap_or(0),
            })
            .collect(),
        bundle,
        topics,
        publish_frames: cfg.mqtt.publish_frames,
        max_batch: cfg.model.max_batch,
        max_wait: Duration::from_millis(cfg.model.max_wait_ms),
    };
    let publisher = Arc::new(publisher);
    let worker = {
        let (queues, publisher, metrics) = (queues.clone(), publisher.clone(), metrics.clone());
        tokio::task::spawn_blocking(move || inference.run(&queues, &publisher, &metrics))
    };
    tokio::pin!(worker);
    tokio::pin!(shutdown);
    let result = tokio::select! {
        r = &mut worker => r,
        _ = &mut shutdown => {
            log::info!("shutting down: finishing queued frames and flushing events");
            stop.store(true, Ordering::Relaxed);
            queues.stop();
            worker.await
        }
    };
    stop.store(true, Ordering::Relaxed);
    queues.stop();
    for c in captures {
        let _ = c.join();
    }
    let publisher = Arc::try_unwrap(publisher)
        .ok()
        .expect("inference thread has ended");
    publisher.close().await;
    match result {
        Ok(r) => r?,
        Err(e) => panic!("inference thread panicked: {e}"),
    }
    Ok(metrics.snapshot())
}
