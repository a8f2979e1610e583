//! The daemon wires the stages: one capture thread per camera (capture +
//! CPU preprocessing) → per-camera drop-oldest queues → one inference
//! thread (batching across cameras, backend, decision, smoothing) → the
//! MQTT publisher. Stages only meet through these seams.
//!
//! Two halves: a publisher that owns the MQTT session and the outbox for
//! the life of the process, and a [`pipeline`] (sources, preprocessor,
//! backend, decision, smoothing) that a reload (SIGHUP) rebuilds: the new
//! one is opened and checked completely before the old one stops; if that
//! fails, the old one keeps serving and the reason goes to the log and the
//! health message. The MQTT session is never dropped for a reload.
//!
//! [`run`] returns when every camera has stopped or when `shutdown`
//! resolves; either way queued frames are finished and pending events are
//! flushed to the broker (up to a timeout) before it returns. Cameras that
//! all ended (files played once) are a clean end; when any of them failed
//! it is [`DaemonError::CamerasFailed`], so that the process exits non-zero
//! and systemd (`Restart=on-failure`) starts it again.

mod gate;
pub mod http;
mod inference;
pub mod notify;
pub mod page;
pub mod pipeline;
pub mod queue;
mod settings;
pub mod subjects;

pub use pipeline::{open_cameras, Parts};
pub use settings::{credentials, http_token, mqtt_settings, tls};

use crate::bundle::BundleError;
use crate::capture::CaptureError;
use crate::publish::mqtt::Publisher;
use crate::publish::store::{Store, StoreError};
use crate::telemetry::{Metrics, Snapshot};
use pipeline::{model_name, Carried, Outlet, Pipeline};
use std::future::Future;
use std::sync::Arc;
use tokio::sync::mpsc;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("config key `{key}` = {path}: {problem}. Fix: {fix}")]
    File {
        key: &'static str,
        path: String,
        problem: String,
        fix: &'static str,
    },
    #[error(transparent)]
    Outbox(#[from] StoreError),
    #[error("config key `cameras[{index}]` ({name}): {error}")]
    Camera {
        index: usize,
        name: String,
        error: CaptureError,
    },
    #[error("config key `model.bundle`: {0}")]
    Bundle(#[from] BundleError),
    #[error("config key `model.backend` = {kind:?}: {error}")]
    Backend {
        kind: &'static str,
        error: crate::infer::InferError,
    },
    #[error("config key `pipeline.preprocess` = \"cuda\": {0}")]
    Preprocess(crate::preprocess::PreprocessError),
    /// A combination of keys that would fail every frame.
    #[error("{0}")]
    Placement(String),
    /// Every camera stopped, these because they failed (the others ended).
    #[error("every camera has stopped; failed: {}. Exiting with an error so that systemd restarts stylecam", .0.join(", "))]
    CamerasFailed(Vec<String>),
}

/// Re-reads the config and opens the new pipeline's parts (on a blocking
/// thread); the error says what is wrong.
pub type Loader = Arc<dyn Fn() -> Result<Parts, String> + Send + Sync>;

/// Reload requests (SIGHUP) and how to build what they ask for.
pub struct Reloads {
    pub requests: mpsc::UnboundedReceiver<()>,
    pub load: Loader,
    /// `check-config` on the file (the status page shows its verdict).
    pub check: http::Checker,
    /// What that check reads, summarised: it runs again only when this changes.
    pub fingerprint: http::check::Fingerprint,
    /// The config file (the page's teach routes edit `model.bundle` in it).
    pub config_path: std::path::PathBuf,
}

enum Next {
    Ended(Vec<inference::CameraState>),
    Shutdown,
    Reload,
}

/// Runs the pipeline `parts` opened until every camera ends or `shutdown`
/// resolves, rebuilding it on each reload request.
pub async fn run(
    parts: Parts,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
    mut reloads: Option<Reloads>,
) -> Result<Snapshot, DaemonError> {
    let cfg = parts.cfg.clone();
    let mut settings = mqtt_settings(&cfg);
    settings.credentials = credentials(&cfg)?;
    settings.tls = tls(&cfg)?;
    let topics = settings.topics.clone();
    let outbox_path = std::path::absolute(&cfg.outbox.path).unwrap_or(cfg.outbox.path.clone());
    if cfg.outbox.path.is_relative() {
        log::info!(
            "outbox.path = {} (relative) is {}",
            cfg.outbox.path.display(),
            outbox_path.display()
        );
    }
    let (store, restored) = Store::open(&outbox_path)?;
    // A training the last run of the daemon left running was cut: its run
    // says so (the bundle in use was never touched by it).
    let teach_dir = std::path::absolute(&cfg.teach.dir).unwrap_or(cfg.teach.dir.clone());
    crate::collect::job::recover(&teach_dir);
    let publisher = Publisher::start(settings.clone(), store, restored.pending, metrics.clone());
    let access = Arc::new(http::Access::new(
        &cfg.http,
        http_token(&cfg)?,
        reloads
            .as_ref()
            .map(|r| http::CachedCheck::new(r.check.clone(), r.fingerprint.clone())),
    ));
    let config_path = reloads.as_ref().map(|r| r.config_path.clone());
    access.set_paths(http::Paths::from_config(&cfg, config_path.as_deref()));
    if !cfg.metrics.listen.is_empty() {
        let rules = http::Rules {
            camera_grace: std::time::Duration::from_secs(cfg.metrics.camera_grace_s),
            outbox_limit: cfg.outbox.max_events as u64,
            stall_after: std::time::Duration::from_secs(cfg.metrics.stall_after_s),
        };
        tokio::spawn(http::serve(
            cfg.metrics.listen.clone(),
            metrics.clone(),
            rules,
            http::Bounds::from_config(&cfg.http),
            access.clone(),
        ));
    }
    let out = Outlet {
        publisher: Arc::new(publisher),
        topics,
        epoch: restored.epoch,
        seqs: restored.seqs,
        metrics: metrics.clone(),
    };
    let mut carried = Carried::new();
    let mut cameras_now = camera_names(&parts.cfg);
    let mut pipeline = Pipeline::start(parts, &mut carried, &out, false);
    let mut failed = vec![];
    let notifier = notify::Notifier::from_env();
    let watchdog = notify::watchdog_from_env();
    if let Some(w) = watchdog {
        log::info!("systemd watchdog: {} s", w.as_secs_f64());
    }
    let supervisor = tokio::spawn(notify::supervise(
        notifier.clone(),
        watchdog,
        std::time::Duration::from_secs(cfg.metrics.stall_after_s),
        metrics.clone(),
    ));
    tokio::pin!(shutdown);
    loop {
        let next = tokio::select! {
            r = &mut pipeline.worker => Next::Ended(r.expect("inference thread panicked")),
            _ = &mut shutdown => Next::Shutdown,
            Some(()) = async {
                match reloads.as_mut() {
                    Some(r) => r.requests.recv().await,
                    None => std::future::pending().await,
                }
            } => Next::Reload,
        };
        match next {
            Next::Ended(cameras) => {
                pipeline.finish(cameras, &mut carried);
                failed = metrics
                    .snapshot()
                    .cameras
                    .into_iter()
                    .filter(|c| c.state == "failed" && cameras_now.contains(&c.name))
                    .map(|c| c.name)
                    .collect();
                break;
            }
            Next::Shutdown => {
                log::info!("shutting down: finishing queued frames and flushing events");
                pipeline.stop(&mut carried).await;
                break;
            }
            Next::Reload => {
                let load = reloads.as_ref().expect("a reload came").load.clone();
                log::info!("reload requested: reading the config and the bundle again");
                notifier.reloading();
                let built = tokio::task::spawn_blocking(move || load())
                    .await
                    .unwrap_or_else(|e| Err(format!("the loader panicked: {e}")));
                match built {
                    Ok(parts) => {
                        for key in keys_needing_restart(&cfg, &parts.cfg) {
                            log::warn!("reload: `{key}` changed; it takes effect after a restart (the MQTT session and the outbox stay)");
                        }
                        // The page's token (`token_file` re-read: rotation),
                        // host names and snapshots follow the new config.
                        match http_token(&parts.cfg) {
                            Ok(token) => access.reload(&parts.cfg.http, token),
                            Err(e) => log::error!("reload: {e}; the page keeps the token it had"),
                        }
                        access.set_paths(http::Paths::from_config(
                            &parts.cfg,
                            config_path.as_deref(),
                        ));
                        let (model, backend) = (model_name(&parts.bundle), parts.backend.name());
                        cameras_now = camera_names(&parts.cfg);
                        pipeline.stop(&mut carried).await;
                        pipeline = Pipeline::start(parts, &mut carried, &out, true);
                        log::info!("reloaded: serving {model} on the {backend} backend");
                    }
                    Err(reason) => {
                        log::error!("reload failed, the running pipeline goes on: {reason}");
                        metrics.reload_failed(reason);
                    }
                }
                notifier.send(&format!(
                    "READY=1\nSTATUS={}",
                    notify::status_line(&metrics)
                ));
            }
        }
    }
    notifier.send("STOPPING=1\nSTATUS=stopping: flushing events");
    supervisor.abort();
    let publisher = Arc::try_unwrap(out.publisher)
        .ok()
        .expect("the pipeline has ended");
    publisher.close().await;
    if !failed.is_empty() {
        return Err(DaemonError::CamerasFailed(failed));
    }
    Ok(metrics.snapshot())
}

fn camera_names(cfg: &crate::config::Validated) -> Vec<String> {
    cfg.cameras.iter().map(|c| c.name.clone()).collect()
}

/// Keys a reload cannot apply (they belong to the long-lived publisher),
/// when they differ between the running and the new config.
fn keys_needing_restart(
    old: &crate::config::Validated,
    new: &crate::config::Validated,
) -> Vec<&'static str> {
    let mut keys = vec![];
    if old.device != new.device {
        keys.push("device");
    }
    if old.mqtt != new.mqtt {
        keys.push("mqtt");
    }
    if old.outbox != new.outbox {
        keys.push("outbox");
    }
    if old.metrics != new.metrics {
        keys.push("metrics");
    }
    // Of [http], only the listener's bounds wait for a restart (the token,
    // host names and snapshots are applied by the reload).
    let bounds = |h: &crate::config::HttpConfig| {
        (
            h.max_connections,
            h.max_connections_per_address,
            h.request_timeout_ms,
        )
    };
    if bounds(&old.http) != bounds(&new.http) {
        keys.push("http");
    }
    keys
}
