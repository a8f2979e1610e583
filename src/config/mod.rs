//! Configuration: serde structs with defaults ([`Config`]), a pure
//! [`Config::validate`] that returns a [`Validated`] config, and the loader
//! that merges a TOML file with `STYLECAM_…` environment overrides.
//!
//! Nothing here opens a device or a socket: `check-config` runs exactly this
//! code, so what it accepts is what `run` accepts.

mod validate;

pub use validate::{ConfigError, Validated};

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The commented default configuration; `generate-config` prints it and a
/// test proves that it passes `check-config`.
pub const DEFAULT_TOML: &str = include_str!("default.toml");

/// Environment variables with this prefix override file keys:
/// `STYLECAM_MQTT__PORT=1884` sets `mqtt.port` (`__` separates levels).
pub const ENV_PREFIX: &str = "STYLECAM";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Device id used in MQTT topics; unique per box.
    #[serde(default = "default_device")]
    pub device: String,
    #[serde(default)]
    pub model: ModelConfig,
    #[serde(default)]
    pub cameras: Vec<CameraConfig>,
    #[serde(default)]
    pub pipeline: PipelineConfig,
    #[serde(default)]
    pub smoothing: SmoothingConfig,
    #[serde(default)]
    pub mqtt: MqttConfig,
    #[serde(default)]
    pub outbox: OutboxConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Directory holding `bundle.toml` and `model.onnx`.
    #[serde(default = "default_bundle")]
    pub bundle: PathBuf,
    /// `auto`, `cpu` or `tensorrt`.
    #[serde(default = "default_backend")]
    pub backend: String,
    /// Largest batch sent to the backend across cameras.
    #[serde(default = "default_max_batch")]
    pub max_batch: usize,
    /// How long the batcher waits for more frames once it holds one.
    #[serde(default = "default_max_wait_ms")]
    pub max_wait_ms: u64,
}

/// One camera. `source` picks the kind; the other keys belong to that kind.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraConfig {
    pub name: String,
    /// `files`, `synthetic` (and `v4l2` once its issue lands).
    pub source: String,
    /// files: a folder or a glob of JPEG/PNG files.
    #[serde(default)]
    pub path: Option<String>,
    /// files: start again after the last file.
    #[serde(default, rename = "loop")]
    pub looping: bool,
    /// files: frames emitted per image (a still shelf looks the same for a while).
    #[serde(default = "one")]
    pub repeat: u32,
    /// Target frames per second (0 = as fast as possible).
    #[serde(default = "default_fps")]
    pub fps: f64,
    /// synthetic: frame size and pixel format (`yuyv`, `rgb`, `nv12`).
    #[serde(default = "default_width")]
    pub width: u32,
    #[serde(default = "default_height")]
    pub height: u32,
    #[serde(default = "default_pixel_format")]
    pub pixel_format: String,
    /// synthetic: stop after this many frames (0 = never).
    #[serde(default)]
    pub frames: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Frames that may wait per camera; when inference lags, the oldest is dropped.
    #[serde(default = "default_queue_depth")]
    pub queue_depth: usize,
}

/// The durable outbox: where QoS 1 messages wait for the broker's PUBACK.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxConfig {
    /// redb database file (created if missing; one per daemon).
    #[serde(default = "default_outbox_path")]
    pub path: PathBuf,
    #[serde(default = "default_outbox_events")]
    pub max_events: usize,
    #[serde(default = "default_outbox_bytes")]
    pub max_bytes: u64,
    /// Messages older than this are dropped (0 = keep until delivered).
    #[serde(default = "default_outbox_age")]
    pub max_age_s: u64,
    /// `drop_oldest` or `refuse_new`.
    #[serde(default = "default_when_full")]
    pub when_full: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmoothingConfig {
    /// `median` or `ema` over recent frames' probabilities.
    #[serde(default = "default_smoothing_method")]
    pub method: String,
    /// median: number of frames in the window.
    #[serde(default = "default_window")]
    pub window: usize,
    /// ema: weight of the newest frame, in (0, 1].
    #[serde(default = "default_ema_alpha")]
    pub ema_alpha: f32,
    /// A tag appears after this many consecutive frames that decide it.
    #[serde(default = "default_hysteresis")]
    pub enter_frames: u32,
    /// A tag goes away after this many consecutive frames without it.
    #[serde(default = "default_hysteresis")]
    pub leave_frames: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// Start an in-process broker (rumqttd) on host:port.
    #[serde(default)]
    pub embedded: bool,
    #[serde(default = "default_host")]
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    /// Topic prefix: `{prefix}/{device}/…`.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// Defaults to `stylecam-{device}`: stable per device.
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default = "default_keep_alive")]
    pub keep_alive_s: u64,
    /// Publish every frame's decision on `…/{camera}/frames` (QoS 0).
    #[serde(default)]
    pub publish_frames: bool,
    /// Login name, when the broker requires one.
    #[serde(default)]
    pub username: Option<String>,
    /// The password itself; best set from the environment
    /// (`STYLECAM_MQTT__PASSWORD`), never written to logs.
    #[serde(default)]
    pub password: Option<Secret>,
    /// A file whose first line is the password (e.g. mode 0600).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Seconds between retained `…/health` messages (counters, drops).
    #[serde(default = "default_health_interval")]
    pub health_interval_s: u64,
    /// MQTT version: `3.1.1` or `5`.
    #[serde(default = "default_protocol")]
    pub protocol: String,
    /// Connect with TLS (port 8883 by convention).
    #[serde(default)]
    pub tls: bool,
    /// PEM file of the CA(s) to trust; without it, the system's roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate and key, for brokers that require one.
    #[serde(default)]
    pub client_cert_file: Option<PathBuf>,
    #[serde(default)]
    pub client_key_file: Option<PathBuf>,
}

/// A value that must not appear in logs or `Debug` output.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"***\"")
    }
}

fn default_device() -> String {
    "stylecam-dev".into()
}
fn default_bundle() -> PathBuf {
    "assets/demo-bundle".into()
}
fn default_backend() -> String {
    "auto".into()
}
fn default_max_batch() -> usize {
    4
}
fn default_max_wait_ms() -> u64 {
    10
}
fn one() -> u32 {
    1
}
fn default_fps() -> f64 {
    5.0
}
fn default_width() -> u32 {
    640
}
fn default_height() -> u32 {
    480
}
fn default_pixel_format() -> String {
    "yuyv".into()
}
fn default_queue_depth() -> usize {
    2
}
fn default_outbox_path() -> PathBuf {
    "stylecam-outbox.redb".into()
}
fn default_outbox_events() -> usize {
    100_000
}
fn default_outbox_bytes() -> u64 {
    64 << 20
}
fn default_outbox_age() -> u64 {
    7 * 24 * 3600
}
fn default_when_full() -> String {
    "drop_oldest".into()
}
fn default_smoothing_method() -> String {
    "median".into()
}
fn default_window() -> usize {
    3
}
fn default_ema_alpha() -> f32 {
    0.5
}
fn default_hysteresis() -> u32 {
    2
}
fn default_host() -> String {
    "127.0.0.1".into()
}
fn default_port() -> u16 {
    1883
}
fn default_health_interval() -> u64 {
    60
}
fn default_protocol() -> String {
    "3.1.1".into()
}
fn default_prefix() -> String {
    "stylecam".into()
}
fn default_keep_alive() -> u64 {
    30
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            bundle: default_bundle(),
            backend: default_backend(),
            max_batch: default_max_batch(),
            max_wait_ms: default_max_wait_ms(),
        }
    }
}
impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            queue_depth: default_queue_depth(),
        }
    }
}
impl Default for OutboxConfig {
    fn default() -> Self {
        Self {
            path: default_outbox_path(),
            max_events: default_outbox_events(),
            max_bytes: default_outbox_bytes(),
            max_age_s: default_outbox_age(),
            when_full: default_when_full(),
        }
    }
}

impl Default for SmoothingConfig {
    fn default() -> Self {
        Self {
            method: default_smoothing_method(),
            window: default_window(),
            ema_alpha: default_ema_alpha(),
            enter_frames: default_hysteresis(),
            leave_frames: default_hysteresis(),
        }
    }
}
impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            embedded: false,
            host: default_host(),
            port: default_port(),
            prefix: default_prefix(),
            client_id: None,
            keep_alive_s: default_keep_alive(),
            publish_frames: false,
            username: None,
            password: None,
            password_file: None,
            protocol: default_protocol(),
            health_interval_s: default_health_interval(),
            tls: false,
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
        }
    }
}

impl CameraConfig {
    /// A files camera over `path`, with defaults for the rest.
    pub fn files(name: &str, path: &str) -> Self {
        let mut c: CameraConfig = toml::from_str(&format!(
            "name = {name:?}\nsource = \"files\"\npath = {path:?}"
        ))
        .expect("static camera table");
        c.looping = true;
        c
    }
}

/// Reads a TOML file (if given) and the `STYLECAM_…` environment into a
/// [`Config`]. Syntax and type errors name the file and the key.
pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
    let mut builder = config::Config::builder();
    match path {
        Some(p) => {
            if !p.exists() {
                return Err(ConfigError::new(
                    "",
                    p.display().to_string(),
                    "does not exist",
                    "pass an existing file, or write one with `stylecam generate-config > stylecam.toml`",
                ));
            }
            builder = builder.add_source(config::File::from(p).format(config::FileFormat::Toml));
        }
        None => {
            builder = builder.add_source(config::File::from_str(
                DEFAULT_TOML,
                config::FileFormat::Toml,
            ));
        }
    }
    builder = builder.add_source(
        config::Environment::with_prefix(ENV_PREFIX)
            .prefix_separator("_")
            .separator("__")
            .try_parsing(true),
    );
    let raw = builder.build().map_err(|e| ConfigError::parse(path, e))?;
    raw.try_deserialize::<Config>()
        .map_err(|e| ConfigError::parse(path, e))
}

/// [`load`] then [`Config::validate`].
pub fn load_validated(path: Option<&Path>) -> Result<Validated, ConfigError> {
    load(path)?.validate()
}
