//! Configuration: serde structs with defaults ([`Config`]), a pure
//! [`Config::validate`] that returns a [`Validated`] config, and the loader
//! that merges a TOML file with `STYLECAM_…` environment overrides.
//!
//! Nothing here opens a device or a socket: `check-config` runs exactly this
//! code, so what it accepts is what `run` accepts.

mod collect;
mod redact;
mod validate;

#[cfg(test)]
mod generated;

pub use collect::{CollectConfig, TeachConfig};
pub use validate::{ConfigError, Validated};

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The commented default configuration; `generate-config` prints it and a
/// test proves that it passes `check-config`.
pub const DEFAULT_TOML: &str = include_str!("default.toml");

/// Environment variables with this prefix override file keys:
/// `STYLECAM_MQTT__PORT=1884` sets `mqtt.port` (`__` separates levels).
pub const ENV_PREFIX: &str = "STYLECAM";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    pub gate: GateConfig,
    #[serde(default)]
    pub mqtt: MqttConfig,
    #[serde(default)]
    pub outbox: OutboxConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
    #[serde(default)]
    pub http: HttpConfig,
    /// Person crops kept for teaching (off by default).
    #[serde(default)]
    pub collect: CollectConfig,
    /// The label store, taxonomy and features for teaching.
    #[serde(default)]
    pub teach: TeachConfig,
}

/// The status page on `metrics.listen`: who may see it, and whether it
/// shows pictures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Required of every request from beyond loopback (`Authorization:
    /// Bearer …`, or the page's login); best set from the environment
    /// (`STYLECAM_HTTP__TOKEN`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<Secret>,
    /// A file whose first line is the token (e.g. mode 0640, group stylecam).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// Camera snapshots on the page (masks painted, in memory only);
    /// `false` turns every image off.
    #[serde(default = "yes")]
    pub snapshots: bool,
    /// Open connections to the listener at most, all clients together
    /// (also held under the descriptor limit, keeping a reserve for
    /// cameras, MQTT and the outbox).
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Open connections from one address at most.
    #[serde(default = "default_max_connections_per_address")]
    pub max_connections_per_address: usize,
    /// A request's headers, and then its body, must arrive within this
    /// long each; the answer must be taken within it too.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// Names the box is reached by besides IP addresses, `localhost` and
    /// its host name (the `Host` header is checked against them: a page
    /// on another site cannot reach this one through DNS rebinding).
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Require the token from loopback too: set it when a reverse proxy
    /// or a tunnel on the box forwards outside requests, which then look
    /// local.
    #[serde(default)]
    pub token_on_loopback: bool,
    /// How long a sign-in on the page lasts.
    #[serde(default = "default_session_hours")]
    pub session_hours: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            token: None,
            token_file: None,
            snapshots: true,
            max_connections: default_max_connections(),
            max_connections_per_address: default_max_connections_per_address(),
            request_timeout_ms: default_request_timeout_ms(),
            hosts: vec![],
            token_on_loopback: false,
            session_hours: default_session_hours(),
        }
    }
}

fn default_max_connections() -> usize {
    256
}
fn default_max_connections_per_address() -> usize {
    32
}
fn default_request_timeout_ms() -> u64 {
    10_000
}
fn default_session_hours() -> u64 {
    12
}

fn yes() -> bool {
    true
}

/// `/metrics` (Prometheus/OpenMetrics text) and `/healthz` over HTTP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// `host:port` to serve on; loopback by default; "" turns it off.
    #[serde(default = "default_metrics_listen")]
    pub listen: String,
    /// `/healthz` fails once a camera has been reconnecting this long.
    #[serde(default = "default_camera_grace_s")]
    pub camera_grace_s: u64,
    /// `/healthz` fails, and the systemd watchdog pings stop (a restart),
    /// once frames arrive but none has been inferred for this long, or
    /// messages wait on a live broker connection and none is acknowledged.
    /// 0 turns the check off.
    #[serde(default = "default_stall_after_s")]
    pub stall_after_s: u64,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            listen: default_metrics_listen(),
            camera_grace_s: default_camera_grace_s(),
            stall_after_s: default_stall_after_s(),
        }
    }
}

fn default_metrics_listen() -> String {
    "127.0.0.1:9464".into()
}
fn default_camera_grace_s() -> u64 {
    30
}
fn default_stall_after_s() -> u64 {
    120
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Directory holding `bundle.toml` and `model.onnx`.
    #[serde(default = "default_bundle")]
    pub bundle: PathBuf,
    /// `auto`, `cpu`, `onnxruntime` or `tensorrt`.
    #[serde(default = "default_backend")]
    pub backend: BackendKind,
    /// Threads inside one inference (onnxruntime; 0 = its default, one per core).
    #[serde(default)]
    pub threads: usize,
    /// `libonnxruntime.so` for the onnxruntime backend; without it,
    /// ORT_DYLIB_PATH, then the system's and the PyPI wheel's usual places.
    #[serde(default)]
    pub onnxruntime_library: Option<PathBuf>,
    /// Largest batch sent to the backend across cameras.
    #[serde(default = "default_max_batch")]
    pub max_batch: usize,
    /// How long the batcher waits for more frames once it holds one.
    #[serde(default = "default_max_wait_ms")]
    pub max_wait_ms: u64,
    /// Run the bundle's `[cascade]` edge model first (where the bundle has
    /// one); `false`: the ensemble runs every frame.
    #[serde(default = "default_cascade")]
    pub cascade: bool,
    /// Folder with TensorRT's libraries (or the main library's file); else
    /// TENSORRT_LIB_DIR, then the system's library search.
    #[serde(default)]
    pub tensorrt_library: Option<PathBuf>,
    /// The TensorRT engine cache (`stylecam build-engine` writes it).
    #[serde(default = "default_engines")]
    pub engines: PathBuf,
    /// The precision of the TensorRT engine to run.
    #[serde(default)]
    pub precision: Precision,
    /// INT8 calibration: the images `stylecam calibrate` reads and the
    /// scales it writes (`int8-<graph sha>.json`).
    #[serde(default = "default_calibration")]
    pub calibration: PathBuf,
    /// The file this config was read from (not a key): named in the
    /// commands error messages print.
    #[serde(skip)]
    pub config_file: Option<PathBuf>,
}

fn default_engines() -> PathBuf {
    "trt-engines".into()
}

fn default_calibration() -> PathBuf {
    "calibration".into()
}

fn default_cascade() -> bool {
    true
}

/// One camera: its name, target rate and source. In the file `source`
/// picks the kind and the other keys belong to that kind
/// (`[[cameras]] name = "door" source = "files" path = "photos"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "RawCameraTable", into = "RawCameraTable")]
pub struct CameraConfig {
    pub name: String,
    /// Target frames per second (0 = as fast as possible).
    pub fps: f64,
    pub source: SourceConfig,
    /// What is tagged: the frame, regions or people; privacy masks.
    pub analysis: Analysis,
    /// Keep crops of this camera's people for teaching (people mode, and
    /// only while `[collect] enabled`).
    pub collect: bool,
}

/// What a camera's frames are analysed for (keys of the camera's table,
/// whatever its source).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Analysis {
    /// `frame` (the default), `regions` or `people`.
    #[serde(default)]
    pub analyze: AnalyzeMode,
    /// `regions` mode: named rectangles, each tagged like a frame of its own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<RegionConfig>,
    /// Painted black before any model sees the frame, in every mode:
    /// rectangles `[x0, y0, x1, y1]` or polygons `[[x, y], …]`, fractions
    /// of the frame.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub masks: Vec<Shape>,
    /// `people` mode's tracker and classification schedule.
    #[serde(default)]
    pub people: PeopleConfig,
    /// `people` mode: where the detector looks.
    #[serde(default)]
    pub motion: MotionConfig,
}

/// `analyze`: what a camera tags.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AnalyzeMode {
    /// The whole frame is one subject (what stylecam always did).
    #[default]
    Frame,
    /// Each configured region is a subject.
    Regions,
    /// Each tracked person is a subject (the bundle needs a `[detector]`).
    People,
}

impl AnalyzeMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Frame => "frame",
            Self::Regions => "regions",
            Self::People => "people",
        }
    }
}

/// One region of `regions` mode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionConfig {
    /// Named in the region's events (an MQTT-safe name).
    pub name: String,
    /// `[x0, y0, x1, y1]` in fractions of the frame.
    pub rect: [f32; 4],
}

/// `[cameras.people]`: tracking and when a person is classified.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PeopleConfig {
    /// Run the detector on every k-th frame; the tracker predicts between.
    pub detect_every: u32,
    /// Detections before a track is confirmed (and first classified).
    pub min_hits: u32,
    /// A track unseen this long has left.
    pub max_missed_ms: u64,
    /// A detection joins a track only above this overlap with its prediction.
    pub min_iou: f32,
    /// Detections from this score up to the detector's `score_threshold`
    /// only continue tracks (a person half hidden), never start one or
    /// give a crop; at or above the threshold: no low-score stage.
    pub low_score: f32,
    /// A confirmed track is classified again after this long...
    pub classify_every_ms: u64,
    /// ...or at once when its box grew by this factor (a closer, better view)...
    pub regrow: f32,
    /// ...up to this many classifications per track.
    pub max_classifications: u32,
    /// A person's tags are settled once this many classifications in a
    /// row left the decision on their accumulated probabilities unchanged
    /// (0: settled at once, the plain `classify_every_ms` schedule)...
    pub settle_after: u32,
    /// ...and until then they are classified again after this long
    /// instead of `classify_every_ms` (a person whose tags are close to a
    /// threshold gets more views, one far from all gets fewer).
    pub settle_every_ms: u64,
    /// At most this many crops of one frame are classified (a crowd larger
    /// than this waits: never-classified people first, then the longest
    /// waiting; the rest stay due for the next frame, counted as deferred).
    pub max_crops_per_frame: u32,
    /// Crops smaller than this many pixels high are not classified.
    pub min_crop_height: u32,
    /// The crop is the box grown by this fraction of its size per side.
    pub margin: f32,
    /// The detector runs at most this often per second, whatever the
    /// camera delivers (0 = on every `detect_every`-th frame).
    pub detect_fps: f32,
    /// A person who has not moved is re-detected this often (so that they
    /// do not leave while standing still); one who moves, whenever the
    /// detector runs.
    pub stationary_interval_ms: u64,
    /// At most this many regions go through the detector on one frame;
    /// more wait for the next detector frame (counted as deferred).
    pub max_regions: u32,
    /// When the squares around motion and the people tracked would cover
    /// more than this share of the frame, the detector sees the whole
    /// frame once instead. 0 (the default): always the whole frame, only
    /// when and as often as motion and the people tracked ask for it
    /// (measured best with SSDLite on vtest.avi: docs/benchmarks.md).
    pub whole_frame_at: f32,
    /// The smallest square the detector looks at, in frame pixels (a
    /// smaller one is enlarged to the detector's input); 0 = the
    /// detector's input size.
    pub region_side: u32,
}

impl Default for PeopleConfig {
    fn default() -> Self {
        Self {
            detect_every: 1,
            min_hits: 3,
            max_missed_ms: 1500,
            min_iou: 0.2,
            low_score: 0.1,
            classify_every_ms: 1000,
            regrow: 1.5,
            max_classifications: 10,
            settle_after: 2,
            settle_every_ms: 500,
            max_crops_per_frame: 8,
            min_crop_height: 48,
            margin: 0.1,
            detect_fps: 5.0,
            stationary_interval_ms: 5000,
            max_regions: 4,
            whole_frame_at: 0.0,
            region_side: 0,
        }
    }
}

/// `[cameras.motion]`: where something moves, on a small grey image of
/// each frame (people mode: the detector looks only there and around the
/// people already tracked; docs/people-mode.md "Motion").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MotionConfig {
    /// Off: the detector sees the whole frame at `people.detect_fps`.
    pub enabled: bool,
    /// The grey image's height in pixels (its width keeps the frame's shape).
    pub frame_height: u32,
    /// A pixel moves when it differs from the running average by more than
    /// this many grey levels (1..=255).
    pub threshold: u8,
    /// Moving areas smaller than this many pixels of the grey image are ignored.
    pub contour_area: u32,
    /// Stretch each grey image's contrast (dark scenes) before comparing.
    pub improve_contrast: bool,
    /// How fast the running average follows the scene (0..1 per frame):
    /// slow lighting drift is absorbed, a person is not.
    pub frame_alpha: f32,
    /// When more than this share of the image moves at once (lights switched
    /// on or off), the average is recalibrated instead of reporting motion.
    pub lightning_threshold: f32,
}

impl Default for MotionConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            frame_height: 100,
            threshold: 30,
            contour_area: 10,
            improve_contrast: true,
            frame_alpha: 0.01,
            lightning_threshold: 0.8,
        }
    }
}

/// A privacy mask's (or a region's) outline in fractions of the frame
/// (0..1, x to the right, y down), so one config fits any resolution.
/// A rectangle `[x0, y0, x1, y1]` or a polygon `[[x, y], …]` (at least
/// three points, even-odd rule), in fractions of the frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Shape {
    Rect([f32; 4]),
    Polygon(Vec<[f32; 2]>),
}

impl Shape {
    /// What is wrong with it, if anything (`key` names it in the message).
    pub fn check(&self, key: &str) -> Result<(), String> {
        let inside = |v: f32| (0.0..=1.0).contains(&v);
        match self {
            Shape::Rect([x0, y0, x1, y1]) => {
                if ![x0, y0, x1, y1].iter().all(|v| inside(**v)) {
                    return Err(format!(
                        "{key} = [{x0}, {y0}, {x1}, {y1}] reaches outside the frame. Fix: give [x0, y0, x1, y1] as fractions of the frame, each in 0..=1 (e.g. [0.0, 0.0, 0.25, 1.0] is the left quarter)"
                    ));
                }
                if x1 <= x0 || y1 <= y0 {
                    return Err(format!(
                        "{key} = [{x0}, {y0}, {x1}, {y1}] is empty. Fix: x1 must be greater than x0 and y1 greater than y0"
                    ));
                }
            }
            Shape::Polygon(points) => {
                if points.len() < 3 {
                    return Err(format!(
                        "{key} has {} point(s). Fix: a polygon needs at least 3 [x, y] points",
                        points.len()
                    ));
                }
                if let Some(p) = points.iter().find(|p| !(inside(p[0]) && inside(p[1]))) {
                    return Err(format!(
                        "{key}: point [{}, {}] is outside the frame. Fix: give each point as fractions of the frame, in 0..=1",
                        p[0], p[1]
                    ));
                }
            }
        }
        Ok(())
    }

    /// The bounding box `[x0, y0, x1, y1]` in pixels of a `w × h` frame.
    pub fn bounds(&self, w: u32, h: u32) -> [f32; 4] {
        let (w, h) = (w as f32, h as f32);
        match self {
            Shape::Rect([x0, y0, x1, y1]) => [x0 * w, y0 * h, x1 * w, y1 * h],
            Shape::Polygon(points) => {
                let xs = points.iter().map(|p| p[0] * w);
                let ys = points.iter().map(|p| p[1] * h);
                [
                    xs.clone().fold(f32::MAX, f32::min),
                    ys.clone().fold(f32::MAX, f32::min),
                    xs.fold(f32::MIN, f32::max),
                    ys.fold(f32::MIN, f32::max),
                ]
            }
        }
    }

    /// Whether the centre of pixel (x, y) of a `w × h` frame is inside.
    pub fn covers(&self, x: usize, y: usize, w: u32, h: u32) -> bool {
        let (px, py) = ((x as f32 + 0.5) / w as f32, (y as f32 + 0.5) / h as f32);
        match self {
            Shape::Rect([x0, y0, x1, y1]) => px >= *x0 && px < *x1 && py >= *y0 && py < *y1,
            Shape::Polygon(points) => {
                let mut inside = false;
                let mut j = points.len() - 1;
                for i in 0..points.len() {
                    let ([xi, yi], [xj, yj]) = (points[i], points[j]);
                    if (yi > py) != (yj > py) && px < (xj - xi) * (py - yi) / (yj - yi) + xi {
                        inside = !inside;
                    }
                    j = i;
                }
                inside
            }
        }
    }
}

/// A camera table as written: the analysis keys, then the source's own
/// keys (tagged by `source`; unknown keys are errors).
#[derive(Serialize, Deserialize)]
struct RawCameraTable {
    #[serde(default)]
    analyze: AnalyzeMode,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    regions: Vec<RegionConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    masks: Vec<Shape>,
    #[serde(default, skip_serializing_if = "is_default")]
    people: PeopleConfig,
    #[serde(default, skip_serializing_if = "is_default")]
    motion: MotionConfig,
    #[serde(default, skip_serializing_if = "is_default")]
    collect: bool,
    #[serde(flatten)]
    camera: RawCamera,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

impl From<RawCameraTable> for CameraConfig {
    fn from(t: RawCameraTable) -> Self {
        let mut c = CameraConfig::from(t.camera);
        c.analysis = Analysis {
            analyze: t.analyze,
            regions: t.regions,
            masks: t.masks,
            people: t.people,
            motion: t.motion,
        };
        c.collect = t.collect;
        c
    }
}

impl From<CameraConfig> for RawCameraTable {
    fn from(c: CameraConfig) -> Self {
        let a = c.analysis.clone();
        Self {
            analyze: a.analyze,
            regions: a.regions,
            masks: a.masks,
            people: a.people,
            motion: a.motion,
            collect: c.collect,
            camera: c.into(),
        }
    }
}

/// A camera's source and the keys that belong to it.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceConfig {
    Files(FilesCamera),
    Synthetic(SyntheticCamera),
    V4l2(V4l2Camera),
}

/// `source = "v4l2"`: a USB/CSI camera through V4L2.
#[derive(Debug, Clone, PartialEq)]
pub struct V4l2Camera {
    /// The node: `/dev/video0`, or better a stable name
    /// (`/dev/v4l/by-id/…`, `/dev/v4l/by-path/…`) that survives re-plugging
    /// into another port order.
    pub device: String,
    /// Pixel formats to ask for, most wanted first; the first the camera
    /// offers is used.
    pub formats: Vec<CameraFormat>,
    pub width: u32,
    pub height: u32,
    /// mmap buffers shared with the driver (2..=32).
    pub buffers: u32,
    /// No frame for this many frame intervals (at least 500 ms; 2 s for the
    /// first frame after a (re)start) counts as a stalled stream.
    pub stall_frames: u32,
    /// Reconnect backoff: the first retry waits `backoff_min_ms`, each
    /// failed one doubles it up to `backoff_max_ms`.
    pub backoff_min_ms: u64,
    pub backoff_max_ms: u64,
}

/// What a V4L2 camera may deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CameraFormat {
    Mjpeg,
    Yuyv,
    Nv12,
}

/// `source = "files"`: still images as a camera.
#[derive(Debug, Clone, PartialEq)]
pub struct FilesCamera {
    /// A folder or a glob of JPEG/PNG files.
    pub path: String,
    /// Start again after the last file (`loop`).
    pub looping: bool,
    /// Frames emitted per image (a still shelf looks the same for a while).
    pub repeat: u32,
}

/// `source = "synthetic"`: a moving test pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticCamera {
    pub width: u32,
    pub height: u32,
    pub pixel_format: SyntheticFormat,
    /// Stop after this many frames (0 = never).
    pub frames: u64,
}

/// Pixel formats the synthetic source can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyntheticFormat {
    Yuyv,
    Rgb,
    Nv12,
}

/// The file's shape of a camera table: tagged by `source`, each kind with
/// its own keys (unknown keys are errors).
#[derive(Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "lowercase")]
enum RawCamera {
    Files(RawFiles),
    Synthetic(RawSynthetic),
    V4l2(RawV4l2),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawV4l2 {
    name: String,
    #[serde(default = "default_v4l2_fps")]
    fps: f64,
    #[serde(default)]
    device: String,
    #[serde(default = "default_camera_formats")]
    formats: Vec<CameraFormat>,
    #[serde(default = "default_v4l2_width")]
    width: u32,
    #[serde(default = "default_v4l2_height")]
    height: u32,
    #[serde(default = "default_buffers")]
    buffers: u32,
    #[serde(default = "default_stall_frames")]
    stall_frames: u32,
    #[serde(default = "default_backoff_min_ms")]
    backoff_min_ms: u64,
    #[serde(default = "default_backoff_max_ms")]
    backoff_max_ms: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFiles {
    name: String,
    #[serde(default = "default_fps")]
    fps: f64,
    #[serde(default)]
    path: String,
    #[serde(default, rename = "loop")]
    looping: bool,
    #[serde(default = "one")]
    repeat: u32,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSynthetic {
    name: String,
    #[serde(default = "default_fps")]
    fps: f64,
    #[serde(default = "default_width")]
    width: u32,
    #[serde(default = "default_height")]
    height: u32,
    #[serde(default = "default_pixel_format")]
    pixel_format: SyntheticFormat,
    #[serde(default)]
    frames: u64,
}

impl From<RawCamera> for CameraConfig {
    fn from(raw: RawCamera) -> Self {
        match raw {
            RawCamera::Files(f) => Self {
                name: f.name,
                fps: f.fps,
                source: SourceConfig::Files(FilesCamera {
                    path: f.path,
                    looping: f.looping,
                    repeat: f.repeat,
                }),
                analysis: Analysis::default(),
                collect: false,
            },
            RawCamera::Synthetic(s) => Self {
                name: s.name,
                fps: s.fps,
                source: SourceConfig::Synthetic(SyntheticCamera {
                    width: s.width,
                    height: s.height,
                    pixel_format: s.pixel_format,
                    frames: s.frames,
                }),
                analysis: Analysis::default(),
                collect: false,
            },
            RawCamera::V4l2(v) => Self {
                name: v.name,
                fps: v.fps,
                source: SourceConfig::V4l2(V4l2Camera {
                    device: v.device,
                    formats: v.formats,
                    width: v.width,
                    height: v.height,
                    buffers: v.buffers,
                    stall_frames: v.stall_frames,
                    backoff_min_ms: v.backoff_min_ms,
                    backoff_max_ms: v.backoff_max_ms,
                }),
                analysis: Analysis::default(),
                collect: false,
            },
        }
    }
}

impl From<CameraConfig> for RawCamera {
    fn from(c: CameraConfig) -> Self {
        match c.source {
            SourceConfig::Files(f) => RawCamera::Files(RawFiles {
                name: c.name,
                fps: c.fps,
                path: f.path,
                looping: f.looping,
                repeat: f.repeat,
            }),
            SourceConfig::Synthetic(s) => RawCamera::Synthetic(RawSynthetic {
                name: c.name,
                fps: c.fps,
                width: s.width,
                height: s.height,
                pixel_format: s.pixel_format,
                frames: s.frames,
            }),
            SourceConfig::V4l2(v) => RawCamera::V4l2(RawV4l2 {
                name: c.name,
                fps: c.fps,
                device: v.device,
                formats: v.formats,
                width: v.width,
                height: v.height,
                buffers: v.buffers,
                stall_frames: v.stall_frames,
                backoff_min_ms: v.backoff_min_ms,
                backoff_max_ms: v.backoff_max_ms,
            }),
        }
    }
}

impl SourceConfig {
    /// The `source` key's value.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Files(_) => "files",
            Self::Synthetic(_) => "synthetic",
            Self::V4l2(_) => "v4l2",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Frames that may wait per camera; when inference lags, the oldest is dropped.
    #[serde(default = "default_queue_depth")]
    pub queue_depth: usize,
    /// `capture_threads` (each camera's thread, as frames arrive) or
    /// `inference_thread` (at batch time, straight into the backend's input).
    #[serde(default = "default_preprocess_on")]
    pub preprocess_on: RunsOn,
    /// `cpu`, `cuda` (the GPU kernels, on the inference thread), or `auto`
    /// (CUDA when the backend takes device input and CUDA is usable).
    #[serde(default)]
    pub preprocess: PreprocessKind,
    /// libnvrtc for the CUDA kernels (default: the usual places).
    #[serde(default)]
    pub nvrtc_library: Option<PathBuf>,
    /// Folder for compiled kernels (relative: to the working directory).
    #[serde(default = "default_kernel_cache")]
    pub kernel_cache: PathBuf,
}

/// `pipeline.preprocess`: which preprocessor the pipeline runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PreprocessKind {
    #[default]
    Auto,
    Cpu,
    Cuda,
}

impl PreprocessKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PreprocessKind::Auto => "auto",
            PreprocessKind::Cpu => "cpu",
            PreprocessKind::Cuda => "cuda",
        }
    }
}

fn default_kernel_cache() -> PathBuf {
    PathBuf::from("kernel-cache")
}

/// `[gate]`: the change gate. A frame whose luma thumbnail differs from
/// that of its camera's last inferred frame by less than `threshold`, and
/// which comes less than `max_age_ms` after it, reuses that frame's
/// probabilities instead of running the backend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateConfig {
    /// Off: every frame runs the backend.
    #[serde(default = "default_gate_enabled")]
    pub enabled: bool,
    /// Mean absolute difference of the 32×32 luma thumbnails, grey levels.
    #[serde(default = "default_gate_threshold")]
    pub threshold: f32,
    /// The keyframe interval: a frame this long after the last inferred one
    /// is inferred whatever it looks like.
    #[serde(default = "default_gate_max_age_ms")]
    pub max_age_ms: u64,
}

impl Default for GateConfig {
    fn default() -> Self {
        Self {
            enabled: default_gate_enabled(),
            threshold: default_gate_threshold(),
            max_age_ms: default_gate_max_age_ms(),
        }
    }
}

fn default_gate_enabled() -> bool {
    false
}
fn default_gate_threshold() -> f32 {
    1.0
}
fn default_gate_max_age_ms() -> u64 {
    1000
}

/// The durable outbox: where QoS 1 messages wait for the broker's PUBACK.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    pub when_full: WhenFull,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmoothingConfig {
    /// `median` or `ema` over recent frames' probabilities.
    #[serde(default = "default_smoothing_method")]
    pub method: SmoothingMethod,
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// Largest MQTT packet sent or accepted, bytes (rumqttc's own default
    /// is 10 KiB; a health message with many cameras is larger). A larger
    /// message is refused with an error, never sent.
    #[serde(default = "default_max_packet_bytes")]
    pub max_packet_bytes: usize,
    /// MQTT version: `3.1.1` or `5`.
    #[serde(default = "default_protocol")]
    pub protocol: MqttProtocol,
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
    /// Allow a broker password over plain TCP to a host that is not this
    /// machine (only on a network you trust).
    #[serde(default)]
    pub allow_insecure: bool,
}

/// `model.backend`: which inference backend runs the bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// The first usable of tensorrt, onnxruntime, cpu.
    Auto,
    /// tract-onnx, pure Rust, always available.
    Cpu,
    /// onnxruntime's CPU provider through `libonnxruntime.so`.
    Onnxruntime,
    /// A TensorRT engine from the cache `stylecam build-engine` fills.
    Tensorrt,
}

impl BackendKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Cpu => "cpu",
            Self::Onnxruntime => "onnxruntime",
            Self::Tensorrt => "tensorrt",
        }
    }
}

/// `model.precision`: what a TensorRT engine computes in. TensorRT 11 and
/// TensorRT-RTX are strongly typed, so each precision is its own graph.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    Fp32,
    Fp16,
    Int8,
}

impl Precision {
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Fp16 => "fp16",
            Precision::Int8 => "int8",
        }
    }
}

/// Where preprocessing runs (`pipeline.preprocess_on`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunsOn {
    /// On each camera's thread, as frames arrive (CPU: uses every core).
    CaptureThreads,
    /// At batch time on the inference thread, straight into the backend's slot.
    InferenceThread,
}

/// `outbox.when_full`: what a full outbox does with the next message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Drop the oldest waiting message (counted) to make room.
    DropOldest,
    /// Keep what waits and drop the new message (counted).
    RefuseNew,
}

/// `smoothing.method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmoothingMethod {
    /// Per-class median over `window` frames.
    Median,
    /// Exponential moving average with weight `ema_alpha` for the newest frame.
    Ema,
}

/// `mqtt.protocol`: the MQTT version spoken to the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MqttProtocol {
    #[serde(rename = "3.1.1")]
    V311,
    #[serde(rename = "5")]
    V5,
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
fn default_backend() -> BackendKind {
    BackendKind::Auto
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
fn default_v4l2_fps() -> f64 {
    30.0
}
fn default_camera_formats() -> Vec<CameraFormat> {
    vec![CameraFormat::Mjpeg, CameraFormat::Yuyv, CameraFormat::Nv12]
}
fn default_v4l2_width() -> u32 {
    1280
}
fn default_v4l2_height() -> u32 {
    720
}
fn default_buffers() -> u32 {
    4
}
fn default_stall_frames() -> u32 {
    15
}
fn default_backoff_min_ms() -> u64 {
    250
}
fn default_backoff_max_ms() -> u64 {
    10_000
}
fn default_pixel_format() -> SyntheticFormat {
    SyntheticFormat::Yuyv
}
fn default_preprocess_on() -> RunsOn {
    RunsOn::CaptureThreads
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
fn default_when_full() -> WhenFull {
    WhenFull::DropOldest
}
fn default_smoothing_method() -> SmoothingMethod {
    SmoothingMethod::Median
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
fn default_max_packet_bytes() -> usize {
    1 << 20
}

fn default_health_interval() -> u64 {
    60
}
fn default_protocol() -> MqttProtocol {
    MqttProtocol::V311
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
            threads: 0,
            onnxruntime_library: None,
            max_batch: default_max_batch(),
            max_wait_ms: default_max_wait_ms(),
            cascade: default_cascade(),
            tensorrt_library: None,
            engines: default_engines(),
            precision: Precision::default(),
            calibration: default_calibration(),
            config_file: None,
        }
    }
}
impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            queue_depth: default_queue_depth(),
            preprocess_on: default_preprocess_on(),
            preprocess: PreprocessKind::Auto,
            nvrtc_library: None,
            kernel_cache: default_kernel_cache(),
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
            max_packet_bytes: default_max_packet_bytes(),
            tls: false,
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
            allow_insecure: false,
        }
    }
}

impl CameraConfig {
    /// A looping files camera over `path` at the default rate.
    pub fn files(name: &str, path: &str) -> Self {
        Self {
            name: name.into(),
            fps: default_fps(),
            source: SourceConfig::Files(FilesCamera {
                path: path.into(),
                looping: true,
                repeat: 1,
            }),
            analysis: Analysis::default(),
            collect: false,
        }
    }

    /// A synthetic camera of the given size and format, never ending.
    pub fn synthetic(name: &str, width: u32, height: u32, pixel_format: SyntheticFormat) -> Self {
        Self {
            name: name.into(),
            fps: default_fps(),
            source: SourceConfig::Synthetic(SyntheticCamera {
                width,
                height,
                pixel_format,
                frames: 0,
            }),
            analysis: Analysis::default(),
            collect: false,
        }
    }

    /// The files source's keys (`None` for another source).
    pub fn files_mut(&mut self) -> Option<&mut FilesCamera> {
        match &mut self.source {
            SourceConfig::Files(f) => Some(f),
            _ => None,
        }
    }

    /// A V4L2 camera on `device` with the default keys.
    pub fn v4l2(name: &str, device: &str) -> Self {
        Self {
            name: name.into(),
            fps: default_v4l2_fps(),
            source: SourceConfig::V4l2(V4l2Camera {
                device: device.into(),
                formats: default_camera_formats(),
                width: default_v4l2_width(),
                height: default_v4l2_height(),
                buffers: default_buffers(),
                stall_frames: default_stall_frames(),
                backoff_min_ms: default_backoff_min_ms(),
                backoff_max_ms: default_backoff_max_ms(),
            }),
            analysis: Analysis::default(),
            collect: false,
        }
    }

    /// The synthetic source's keys (`None` for another source).
    pub fn synthetic_mut(&mut self) -> Option<&mut SyntheticCamera> {
        match &mut self.source {
            SourceConfig::Synthetic(s) => Some(s),
            _ => None,
        }
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
    let mut cfg = raw
        .try_deserialize::<Config>()
        .map_err(|e| ConfigError::parse(path, e))?;
    cfg.model.config_file = path.map(Path::to_path_buf);
    Ok(cfg)
}

/// [`load`] then [`Config::validate`].
pub fn load_validated(path: Option<&Path>) -> Result<Validated, ConfigError> {
    load(path)?.validate()
}
