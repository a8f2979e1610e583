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

use crate::bundle::Bundle;
use crate::capture::{self, CaptureError, FrameSource, SourceState};
use crate::config::{Secret, Validated};
use crate::infer::Backend;
use crate::preprocess;
use crate::publish::link::Protocol;
use crate::publish::mqtt::{Publisher, Settings, Tls};
use crate::publish::outbox::Limits;
use crate::publish::store::{Store, StoreError};
use crate::publish::Topics;
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

pub fn mqtt_settings(cfg: &Validated) -> Settings {
    let q = &cfg.mqtt;
    Settings {
        protocol: if q.protocol == "5" {
            Protocol::V5
        } else {
            Protocol::V311
        },
        host: q.host.clone(),
        port: q.port,
        client_id: q
            .client_id
            .clone()
            .unwrap_or_else(|| format!("stylecam-{}", cfg.device)),
        keep_alive: Duration::from_secs(q.keep_alive_s),
        credentials: None,
        tls: None,
        topics: Topics {
            prefix: q.prefix.clone(),
            device: cfg.device.clone(),
        },
        limits: Limits {
            max_events: cfg.outbox.max_events,
            max_bytes: usize::try_from(cfg.outbox.max_bytes).unwrap_or(usize::MAX),
            max_age_ms: cfg.outbox.max_age_s.saturating_mul(1000),
            refuse_new: cfg.outbox.when_full == "refuse_new",
        },
        flush_timeout: Duration::from_secs(5),
        health_interval: Duration::from_secs(q.health_interval_s),
    }
}

/// The broker login: username with the password from the config (usually
/// the environment) or from `mqtt.password_file`.
pub fn credentials(cfg: &Validated) -> Result<Option<(String, Secret)>, DaemonError> {
    let q = &cfg.mqtt;
    let Some(user) = q.username.clone() else {
        return Ok(None);
    };
    let password = match (&q.password, &q.password_file) {
        (Some(p), _) => p.clone(),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path).map_err(|e| DaemonError::File {
                key: "mqtt.password_file",
                path: path.display().to_string(),
                problem: e.to_string(),
                fix: "make the file readable by stylecam, or set STYLECAM_MQTT__PASSWORD",
            })?;
            Secret(text.lines().next().unwrap_or("").to_string())
        }
        (None, None) => Secret(String::new()),
    };
    Ok(Some((user, password)))
}

/// Where Linux distributions keep the system's CA bundle.
const SYSTEM_CA_BUNDLES: [&str; 3] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// TLS material from `mqtt.ca_file` (or the system bundle) and the client
/// certificate files.
pub fn tls(cfg: &Validated) -> Result<Option<Tls>, DaemonError> {
    let q = &cfg.mqtt;
    if !q.tls {
        return Ok(None);
    }
    let read = |key: &'static str, path: &std::path::Path, fix: &'static str| {
        std::fs::read(path).map_err(|e| DaemonError::File {
            key,
            path: path.display().to_string(),
            problem: e.to_string(),
            fix,
        })
    };
    let ca_pem = match &q.ca_file {
        Some(p) => read(
            "mqtt.ca_file",
            p,
            "point mqtt.ca_file at the PEM file of the CA that signed the broker's certificate",
        )?,
        None => {
            let found = SYSTEM_CA_BUNDLES
                .iter()
                .find(|p| std::path::Path::new(p).is_file());
            let Some(bundle) = found else {
                return Err(DaemonError::File {
                    key: "mqtt.ca_file",
                    path: "(unset)".into(),
                    problem: "no system CA bundle found".into(),
                    fix: "install ca-certificates, or set mqtt.ca_file",
                });
            };
            read(
                "mqtt.ca_file",
                std::path::Path::new(bundle),
                "install ca-certificates, or set mqtt.ca_file",
            )?
        }
    };
    let client_auth = match (&q.client_cert_file, &q.client_key_file) {
        (Some(c), Some(k)) => Some((
            read(
                "mqtt.client_cert_file",
                c,
                "point it at the PEM client certificate",
            )?,
            read(
                "mqtt.client_key_file",
                k,
                "point it at the PEM private key of the client certificate",
            )?,
        )),
        _ => None,
    };
    Ok(Some(Tls {
        ca_pem,
        client_auth,
    }))
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
        topics: mqtt_settings(cfg).topics,
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
