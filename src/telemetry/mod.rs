//! Telemetry, a leaf every stage may use: one typed counter or timer per event, updated with
//! relaxed atomics from any thread, read as a [`Snapshot`].

pub mod collect;
mod histogram;
pub mod listener;
pub mod motion;
pub mod prometheus;
pub mod view;

pub use histogram::{Histogram, Quantiles};

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use std::time::Instant;

/// Pipeline stages whose time is measured per frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Capture,
    /// People mode: the person detector and the tracker, per frame.
    Detect,
    Preprocess,
    Infer,
    Decide,
    Publish,
}

pub const STAGES: [Stage; 6] = [
    Stage::Capture,
    Stage::Detect,
    Stage::Preprocess,
    Stage::Infer,
    Stage::Decide,
    Stage::Publish,
];

/// People mode's counters (all cameras).
#[derive(Debug, Default)]
pub struct PeopleCounters {
    pub detections: AtomicU64,
    pub tracks_started: AtomicU64,
    pub tracks_ended: AtomicU64,
    /// Person crops classified.
    pub classifications: AtomicU64,
    /// Due crops not classified: too small or cut by the frame edge.
    pub crops_skipped: AtomicU64,
    /// Due crops left for a later frame (over `max_crops_per_frame`).
    pub crops_deferred: AtomicU64,
    /// Tracks that ended before any classification (no events).
    pub untagged: AtomicU64,
}

/// [`PeopleCounters`] read at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct PeopleSnapshot {
    pub detections: u64,
    pub tracks_started: u64,
    pub tracks_ended: u64,
    pub tracks_active: u64,
    pub classifications: u64,
    pub crops_skipped: u64,
    pub crops_deferred: u64,
    pub untagged: u64,
}

impl PeopleCounters {
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Relaxed);
    }

    fn snapshot(&self) -> PeopleSnapshot {
        let (started, ended) = (
            self.tracks_started.load(Relaxed),
            self.tracks_ended.load(Relaxed),
        );
        PeopleSnapshot {
            detections: self.detections.load(Relaxed),
            tracks_started: started,
            tracks_ended: ended,
            tracks_active: started.saturating_sub(ended),
            classifications: self.classifications.load(Relaxed),
            crops_skipped: self.crops_skipped.load(Relaxed),
            crops_deferred: self.crops_deferred.load(Relaxed),
            untagged: self.untagged.load(Relaxed),
        }
    }
}

#[derive(Debug, Default)]
pub struct Metrics {
    frames_captured: AtomicU64,
    frames_dropped: AtomicU64,
    frames_skipped: AtomicU64,
    frames_inferred: AtomicU64,
    frames_gated: AtomicU64,
    frames_escalated: AtomicU64,
    frames_failed: AtomicU64,
    backend_reopens: AtomicU64,
    events: AtomicU64,
    events_dropped: AtomicU64,
    events_acked: AtomicU64,
    outbox_pending: AtomicU64,
    mqtt_connection_errors: AtomicU64,
    outbox_write_errors: AtomicU64,
    /// Messages the broker refused (MQTT 5 PUBACK reason codes) and QoS 1
    /// messages dropped, by reason; when the broker last refused, a [`stamp`].
    refused: Mutex<BTreeMap<&'static str, u64>>,
    dropped_by: Mutex<BTreeMap<&'static str, u64>>,
    refused_at: AtomicU64,
    stage_ns: [AtomicU64; 6],
    stage_n: [AtomicU64; 6],
    stage_hist: [Histogram; 6],
    people: PeopleCounters,
    /// Crop collection ([collect] in the config).
    collect: collect::CollectCounters,
    pipeline: Mutex<PipelineStatus>,
    cameras: Mutex<BTreeMap<String, Arc<CameraStats>>>,
    /// Each loop's last turn ([`Beat`]), a [`stamp`].
    beats: [AtomicU64; 2],
    mqtt_attempted: std::sync::atomic::AtomicBool,
    mqtt_connected: std::sync::atomic::AtomicBool,
    /// Inference time per batch, and batch sizes, for `/metrics`.
    infer_seconds: std::sync::OnceLock<prometheus_client::metrics::histogram::Histogram>,
    batch_sizes: std::sync::OnceLock<prometheus_client::metrics::histogram::Histogram>,
    /// Reads the running pipeline's queue depths (camera name, frames waiting).
    queue_depths: Mutex<Option<Probe>>,
    /// The last frame captured, frame inferred (or answered by the gate),
    /// PUBACK and connect ([`Progress`]), each a [`stamp`].
    progress: [AtomicU64; 4],
    /// The status page: the last events, and what the pipeline serves.
    recent_events: view::RecentEvents,
    page: Mutex<Arc<view::PageInfo>>,
    /// The HTTP listener's connections and refusals.
    listener: listener::ListenerCounters,
}

/// What [`Metrics::progress`] keeps the time of.
#[derive(Debug, Clone, Copy)]
enum Progress {
    Captured = 0,
    Inferred = 1,
    Acked = 2,
    Connected = 3,
}

/// Logs at most one line per `every` for one kind of repeated problem,
/// saying how many it held back: per-frame problems never flood the journal.
#[derive(Debug)]
pub struct RateLimit {
    every: Duration,
    state: Mutex<(Option<Instant>, u64)>,
}

impl RateLimit {
    pub const fn new(every: Duration) -> Self {
        Self {
            every,
            state: Mutex::new((None, 0)),
        }
    }

    /// `Some(held back since the last line)` when a line may be logged now.
    pub fn allow(&self) -> Option<u64> {
        let mut s = self.state.lock().expect("rate limit");
        match s.0 {
            Some(t) if t.elapsed() < self.every => {
                s.1 += 1;
                None
            }
            _ => {
                let held = s.1;
                *s = (Some(Instant::now()), 0);
                Some(held)
            }
        }
    }
}

struct Probe(QueueProbe);

impl std::fmt::Debug for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("QueueProbe")
    }
}

/// A running pipeline's frames waiting per camera, read at scrape time.
pub type QueueProbe = Arc<dyn Fn() -> Vec<(String, usize)> + Send + Sync>;

/// The loops whose turns the watchdog watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Beat {
    /// The inference thread (it turns at least every 250 ms, idle or not).
    Inference = 0,
    /// The MQTT publisher task (likewise).
    Publisher = 1,
}

/// The log filter: `RUST_LOG` (default `info`) with the MQTT libraries
/// quieted unless `RUST_LOG` names them: the embedded broker (rumqttd)
/// traces about five lines per message at `info`, which would fill the
/// journal of a box that runs with `RUST_LOG=info`. rumqttc's v5 state warns
/// once per refused PUBACK: the publisher counts and logs those itself,
/// rate-limited.
pub fn log_filter(rust_log: Option<&str>) -> String {
    const QUIET: [(&str, &str); 4] = [
        ("rumqttd", "off"),
        ("tracing::span", "off"),
        ("rumqttc", "warn"),
        ("rumqttc::v5::state", "error"),
    ];
    let base = rust_log
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or("info");
    let mut filter = base.to_string();
    for (target, level) in QUIET {
        if !base.contains(target) {
            filter.push_str(&format!(",{target}={level}"));
        }
    }
    filter
}

/// The process's time origin for heartbeats.
static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

fn since_start() -> Duration {
    START.get_or_init(Instant::now).elapsed()
}

/// Records "now" in `at` as milliseconds since [`START`], plus 1 (0 = never).
fn stamp(at: &AtomicU64) {
    at.store(since_start().as_millis() as u64 + 1, Relaxed);
}

/// How long ago the [`stamp`] in `at` was made (`None`: never).
fn age(at: &AtomicU64) -> Option<Duration> {
    match at.load(Relaxed) {
        0 => None,
        ms => Some(since_start().saturating_sub(Duration::from_millis(ms - 1))),
    }
}

/// One camera's counters, updated by its capture thread.
#[derive(Debug, Default)]
pub struct CameraStats {
    captured: AtomicU64,
    dropped: AtomicU64,
    skipped: AtomicU64,
    lost: AtomicU64,
    reconnects: AtomicU64,
    connect_failures: AtomicU64,
    live: Mutex<Live>,
    /// People mode: motion and the detector's runs ([`CameraStats::motion`]).
    motion_stats: motion::MotionStats,
    /// The status page's picture and subjects.
    pub view: view::CameraView,
}

/// What a camera's thread updates under one lock per frame.
#[derive(Debug, Default)]
struct Live {
    /// `streaming`, `reconnecting`, `ended`, `stopped`, `failed` ("" before
    /// the first frame).
    state: &'static str,
    last_frame: Option<Instant>,
    /// Smoothed frame interval, seconds (0 before the second frame).
    interval: f64,
    /// Why the source last went to `reconnecting`.
    last_error: Option<String>,
    /// When `state` last changed.
    since: Option<Instant>,
}

impl Live {
    fn enter(&mut self, state: &'static str) {
        if self.state != state {
            self.state = state;
            self.since = Some(Instant::now());
        }
    }
}

impl CameraStats {
    /// A frame arrived while the source is in `state`.
    pub fn captured(&self, state: &'static str) {
        self.captured.fetch_add(1, Relaxed);
        let mut live = self.live.lock().expect("camera stats");
        let now = Instant::now();
        if let Some(last) = live.last_frame {
            let dt = (now - last).as_secs_f64();
            // Exponential average over ~10 frames.
            live.interval = if live.interval == 0.0 {
                dt
            } else {
                0.9 * live.interval + 0.1 * dt
            };
        }
        live.last_frame = Some(now);
        live.enter(state);
    }
    pub fn dropped(&self) {
        self.dropped.fetch_add(1, Relaxed);
    }
    pub fn skipped(&self) {
        self.skipped.fetch_add(1, Relaxed);
    }
    /// The source's state changed without a frame (`ended`, `stopped`, `failed`).
    pub fn set_state(&self, state: &'static str) {
        self.live.lock().expect("camera stats").enter(state);
    }
    /// The source lost `n` frames before the one it delivered (a gap in the
    /// driver's sequence).
    pub fn lost(&self, n: u32) {
        self.lost.fetch_add(n as u64, Relaxed);
    }
    /// The source lost its streaming device (`lost_stream`) or failed to
    /// (re)open it, and is reconnecting; `why` is kept for the health message.
    pub fn interrupted(&self, why: &str, lost_stream: bool) {
        if lost_stream {
            self.reconnects.fetch_add(1, Relaxed);
        } else {
            self.connect_failures.fetch_add(1, Relaxed);
        }
        let mut live = self.live.lock().expect("camera stats");
        live.enter("reconnecting");
        live.interval = 0.0;
        live.last_frame = None;
        live.last_error = Some(why.to_string());
    }
}

/// A camera's counters as the health message shows them.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct CameraSnapshot {
    pub name: String,
    /// `streaming`, `reconnecting`, `ended`, `stopped`, `failed` (empty
    /// before its first frame).
    pub state: String,
    pub captured: u64,
    pub dropped: u64,
    pub skipped: u64,
    /// Frames the source itself lost (gaps in the driver's sequence).
    pub lost: u64,
    /// Times a streaming device was lost (unplug, I/O error, stall).
    pub reconnects: u64,
    /// Failed attempts to open (or re-open) the device.
    pub connect_failures: u64,
    /// Why it last went to `reconnecting` (kept after it recovers).
    pub last_error: Option<String>,
    /// Frames per second over the last ~10 frames (0 before the second),
    /// to 0.01.
    pub fps: f64,
    /// People mode: what motion found and what the detector did (absent
    /// for a camera in another mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub motion: Option<motion::MotionSnapshot>,
}

/// What the running pipeline serves, and how its reloads (SIGHUP) went
/// (the health message's `pipeline`).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct PipelineStatus {
    /// `name version` of the bundle being served.
    pub model: String,
    /// The backend it runs on (`cpu`, `onnxruntime`, …).
    pub backend: String,
    /// Reloads that swapped in a new pipeline.
    pub reloads: u64,
    /// Reloads that failed (the old pipeline kept serving).
    pub reload_failures: u64,
    /// Why the last reload failed (the old pipeline kept serving); `None`
    /// once a later one succeeds.
    pub last_reload_error: Option<String>,
}

/// A consistent-enough copy of the counters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub frames_captured: u64,
    /// Frames dropped because inference lagged (oldest of their camera first).
    pub frames_dropped: u64,
    /// Inputs that could not be decoded or preprocessed.
    pub frames_skipped: u64,
    pub frames_inferred: u64,
    /// Frames the change gate answered with their keyframe's
    /// probabilities (no backend run).
    pub frames_gated: u64,
    /// Of the inferred frames, those a cascade's edge model was unsure of
    /// and sent on to the ensemble.
    pub frames_escalated: u64,
    /// Frames in batches the backend failed to run.
    pub frames_failed: u64,
    /// Times the backend was re-opened after repeated failures.
    pub backend_reopens: u64,
    /// Tag events decided.
    pub events: u64,
    /// QoS 1 messages dropped because the outbox was full (or too old).
    pub events_dropped: u64,
    /// Messages the broker acknowledged.
    pub events_acked: u64,
    pub outbox_pending: u64,
    pub mqtt_connection_errors: u64,
    /// Failed writes to the on-disk outbox (full or read-only disk).
    pub outbox_write_errors: u64,
    /// Messages the broker refused (MQTT 5 PUBACK reason codes), by reason.
    pub mqtt_refused: BTreeMap<String, u64>,
    /// QoS 1 messages dropped, by reason (they sum to `events_dropped`).
    pub dropped_by_reason: BTreeMap<String, u64>,
    /// Mean time per frame of each stage, in [`STAGES`] order.
    pub stage_mean: [Duration; 6],
    /// Latency quantiles per frame of each stage, in [`STAGES`] order.
    pub stage_quantiles: [Quantiles; 6],
    /// People mode, all cameras together.
    pub people: PeopleSnapshot,
    pub pipeline: PipelineStatus,
    /// Per camera, by name.
    pub cameras: Vec<CameraSnapshot>,
}

fn idx(s: Stage) -> usize {
    STAGES
        .iter()
        .position(|&x| x == s)
        .expect("every stage is listed")
}

impl Metrics {
    pub fn frame_captured(&self) {
        self.frames_captured.fetch_add(1, Relaxed);
        self.mark(Progress::Captured);
    }

    fn mark(&self, what: Progress) {
        stamp(&self.progress[what as usize]);
    }

    /// How long ago `what` last happened (`None`: never).
    fn since(&self, what: Progress) -> Option<Duration> {
        age(&self.progress[what as usize])
    }

    /// Why the daemon turns but makes no progress, if it does not: frames
    /// keep arriving but none has been inferred for `after`, or QoS 1
    /// messages wait on a live connection and none has been acknowledged
    /// for `after`. `after` = 0 turns the check off (`metrics.stall_after_s`).
    pub fn no_progress(&self, after: Duration) -> Option<String> {
        if after.is_zero() {
            return None;
        }
        let key = after.as_secs();
        let captured_lately = self.since(Progress::Captured).is_some_and(|d| d < after);
        let inferred = self.since(Progress::Inferred).unwrap_or(since_start());
        if captured_lately && inferred > after {
            return Some(format!(
                "frames arrive but none has been inferred for {} s (metrics.stall_after_s = {key})",
                inferred.as_secs()
            ));
        }
        let waiting = self.outbox_pending.load(Relaxed);
        if waiting > 0 && self.mqtt_connected() {
            let acked = self.since(Progress::Acked).unwrap_or(since_start());
            let connected = self.since(Progress::Connected).unwrap_or(since_start());
            // A refusal is an answer: the broker is there and says why.
            let refused = age(&self.refused_at).unwrap_or(since_start());
            let quiet = acked.min(connected).min(refused);
            if quiet > after {
                return Some(format!(
                    "{waiting} messages wait on a live MQTT connection but the broker acknowledged none for {} s (metrics.stall_after_s = {key})",
                    quiet.as_secs()
                ));
            }
        }
        None
    }
    pub fn frame_dropped(&self) {
        self.frames_dropped.fetch_add(1, Relaxed);
    }
    pub fn frame_skipped(&self) {
        self.frames_skipped.fetch_add(1, Relaxed);
    }
    pub fn frames_inferred(&self, n: u64) {
        self.frames_inferred.fetch_add(n, Relaxed);
        self.mark(Progress::Inferred);
    }
    /// A people-mode frame was analysed (detected and tracked) with no
    /// crop due: the pipeline made progress without the backend.
    pub fn frame_analysed(&self) {
        self.mark(Progress::Inferred);
    }
    /// People mode's counters.
    pub fn people(&self) -> &PeopleCounters {
        &self.people
    }
    /// Crop collection's numbers.
    pub fn collect(&self) -> &collect::CollectCounters {
        &self.collect
    }
    pub fn frames_gated(&self, n: u64) {
        self.frames_gated.fetch_add(n, Relaxed);
        self.mark(Progress::Inferred);
    }
    pub fn frames_escalated(&self, n: u64) {
        self.frames_escalated.fetch_add(n, Relaxed);
    }
    pub fn frames_failed(&self, n: u64) {
        self.frames_failed.fetch_add(n, Relaxed);
    }
    pub fn backend_reopened(&self) {
        self.backend_reopens.fetch_add(1, Relaxed);
    }
    /// `loop` made a turn: it is alive.
    pub fn beat(&self, which: Beat) {
        stamp(&self.beats[which as usize]);
    }

    /// How long ago `loop` last turned (`None`: never).
    pub fn since_beat(&self, which: Beat) -> Option<Duration> {
        age(&self.beats[which as usize])
    }

    /// The publisher has made its first connection attempt (either way).
    pub fn mqtt_attempted(&self) {
        self.mqtt_attempted.store(true, Relaxed);
    }

    pub fn has_attempted_mqtt(&self) -> bool {
        self.mqtt_attempted.load(Relaxed)
    }

    /// The running pipeline's queue depths, for `/metrics` (replaced on reload).
    pub fn set_queue_probe(&self, probe: QueueProbe) {
        *self.queue_depths.lock().expect("queue probe") = Some(Probe(probe));
    }

    /// Frames waiting per camera in the running pipeline.
    pub fn queue_depths(&self) -> Vec<(String, usize)> {
        let probe = self
            .queue_depths
            .lock()
            .expect("queue probe")
            .as_ref()
            .map(|p| p.0.clone());
        probe.map(|p| p()).unwrap_or_default()
    }

    /// The MQTT session is up (`true` after CONNACK, `false` when it drops).
    pub fn set_mqtt_connected(&self, up: bool) {
        self.mqtt_connected.store(up, Relaxed);
        if up {
            self.mark(Progress::Connected);
        }
    }

    pub fn mqtt_connected(&self) -> bool {
        self.mqtt_connected.load(Relaxed)
    }

    /// Inference time per batch (seconds, 100 µs to ~3 s).
    pub fn infer_seconds(&self) -> &prometheus_client::metrics::histogram::Histogram {
        self.infer_seconds.get_or_init(|| {
            prometheus_client::metrics::histogram::Histogram::new(
                prometheus_client::metrics::histogram::exponential_buckets(1e-4, 2.0, 16),
            )
        })
    }

    /// Frames per inference batch.
    pub fn batch_sizes(&self) -> &prometheus_client::metrics::histogram::Histogram {
        self.batch_sizes.get_or_init(|| {
            prometheus_client::metrics::histogram::Histogram::new([1.0, 2.0, 4.0, 8.0, 16.0, 32.0])
        })
    }

    /// An event as published (kept for the status page).
    pub fn recent_event(&self, topic: &str, payload: &[u8]) {
        self.recent_events.push(topic, payload);
    }
    pub fn recent_events(&self) -> Vec<(String, String)> {
        self.recent_events.list()
    }
    /// A connection or request the HTTP listener turned away (`reason`:
    /// "total", "per-address", "evicted idle", "host", "token", …).
    pub fn http_refused(&self, reason: &'static str) {
        self.listener.refused(reason);
    }

    pub fn set_http_open(&self, n: usize) {
        self.listener.set_open(n);
    }

    pub fn listener(&self) -> &listener::ListenerCounters {
        &self.listener
    }

    /// What the status page shows of the pipeline now serving.
    pub fn set_page_info(&self, info: view::PageInfo) {
        *self.page.lock().expect("page info") = Arc::new(info);
    }
    pub fn page_info(&self) -> Arc<view::PageInfo> {
        self.page.lock().expect("page info").clone()
    }
    /// How long ago the broker last refused a message (MQTT 5).
    pub fn last_refusal_age(&self) -> Option<Duration> {
        age(&self.refused_at)
    }
    /// How long ago the broker last acknowledged a message.
    pub fn last_ack_age(&self) -> Option<Duration> {
        self.since(Progress::Acked)
    }

    /// Each camera's state and how long it has been in it.
    pub fn camera_states(&self) -> Vec<(String, &'static str, Duration)> {
        self.cameras
            .lock()
            .expect("camera stats")
            .iter()
            .map(|(name, c)| {
                let live = c.live.lock().expect("camera stats");
                let age = live.since.map(|t| t.elapsed()).unwrap_or(since_start());
                (name.clone(), live.state, age)
            })
            .collect()
    }

    /// `/healthz`: `Ok` when every stage is live, else the reasons: a camera
    /// reconnecting (or failed) for longer than `camera_grace`, the inference
    /// or publisher loop not turning for 10 s, the outbox at `outbox_limit`,
    /// no progress for `stall_after` ([`Self::no_progress`]).
    pub fn health(
        &self,
        camera_grace: Duration,
        outbox_limit: u64,
        stall_after: Duration,
    ) -> Result<(), Vec<String>> {
        let mut why: Vec<String> = self.no_progress(stall_after).into_iter().collect();
        for (name, state, age) in self.camera_states() {
            if matches!(state, "reconnecting" | "failed") && age > camera_grace {
                why.push(format!(
                    "camera {name} has been {state} for {} s (metrics.camera_grace_s = {})",
                    age.as_secs(),
                    camera_grace.as_secs()
                ));
            }
        }
        for (beat, what) in [
            (Beat::Inference, "inference loop"),
            (Beat::Publisher, "MQTT publisher loop"),
        ] {
            match self.since_beat(beat) {
                Some(d) if d > Duration::from_secs(10) => {
                    why.push(format!("the {what} has not turned for {} s", d.as_secs()))
                }
                None if since_start() > Duration::from_secs(60) => {
                    why.push(format!("the {what} never started"))
                }
                _ => {}
            }
        }
        why.extend(self.refusing());
        let pending = self.outbox_pending.load(Relaxed);
        if outbox_limit > 0 && pending >= outbox_limit {
            why.push(format!(
                "the outbox is full ({pending} messages waiting, outbox.max_events = {outbox_limit}): the broker has been away"
            ));
        }
        if why.is_empty() {
            Ok(())
        } else {
            Err(why)
        }
    }

    /// A pipeline started serving `model` on `backend`; `reload` when it
    /// replaced a running one.
    pub fn pipeline_started(&self, model: String, backend: &str, reload: bool) {
        let mut p = self.pipeline.lock().expect("pipeline status");
        p.model = model;
        p.backend = backend.into();
        if reload {
            p.reloads += 1;
            p.last_reload_error = None;
        }
    }
    /// A reload failed; the running pipeline goes on.
    pub fn reload_failed(&self, reason: String) {
        let mut p = self.pipeline.lock().expect("pipeline status");
        p.reload_failures += 1;
        p.last_reload_error = Some(reason);
    }
    pub fn event(&self) {
        self.events.fetch_add(1, Relaxed);
    }
    /// A QoS 1 message was dropped, for `reason` (`full`, `expired`, ...).
    pub fn event_dropped(&self, reason: &'static str) {
        self.events_dropped.fetch_add(1, Relaxed);
        *self
            .dropped_by
            .lock()
            .expect("drops")
            .entry(reason)
            .or_default() += 1;
    }
    /// The broker refused a message (an MQTT 5 PUBACK reason code).
    pub fn mqtt_refused(&self, reason: &'static str) {
        *self
            .refused
            .lock()
            .expect("refusals")
            .entry(reason)
            .or_default() += 1;
        stamp(&self.refused_at);
    }
    /// Why the broker counts as refusing, if it does: it refused a message
    /// in the last 2 minutes and took none since.
    fn refusing(&self) -> Option<String> {
        let refused = age(&self.refused_at)?;
        let delivered_since = self.since(Progress::Acked).is_some_and(|a| a < refused);
        if refused > Duration::from_secs(120) || delivered_since {
            return None;
        }
        let counts: Vec<String> = (self.refused.lock().expect("refusals").iter())
            .map(|(reason, n)| format!("{reason}: {n}"))
            .collect();
        Some(format!(
            "the broker refuses messages ({}); they wait in the outbox: check the broker's ACL and quotas for this client",
            counts.join(", ")
        ))
    }
    pub fn mqtt_connection_error(&self) {
        self.mqtt_connection_errors.fetch_add(1, Relaxed);
    }
    pub fn outbox_write_error(&self) {
        self.outbox_write_errors.fetch_add(1, Relaxed);
    }
    pub fn set_outbox(&self, pending: u64, acked: u64) {
        self.outbox_pending.store(pending, Relaxed);
        if self.events_acked.swap(acked, Relaxed) != acked {
            self.mark(Progress::Acked);
        }
    }
    /// Adds `total` spent in `stage` over `frames` frames.
    pub fn time(&self, stage: Stage, total: Duration, frames: u64) {
        self.stage_ns[idx(stage)].fetch_add(total.as_nanos() as u64, Relaxed);
        self.stage_n[idx(stage)].fetch_add(frames, Relaxed);
        if frames > 0 {
            self.stage_hist[idx(stage)].record(total / frames as u32, frames);
        }
        if stage == Stage::Infer && frames > 0 {
            self.infer_seconds().observe(total.as_secs_f64());
            self.batch_sizes().observe(frames as f64);
        }
    }

    /// The counters of camera `name` (created on first use; a camera keeps
    /// its counters across reloads).
    pub fn camera(&self, name: &str) -> Arc<CameraStats> {
        self.cameras
            .lock()
            .expect("camera stats")
            .entry(name.to_string())
            .or_default()
            .clone()
    }

    pub fn snapshot(&self) -> Snapshot {
        let mut stage_mean = [Duration::ZERO; 6];
        for (i, m) in stage_mean.iter_mut().enumerate() {
            if let Some(ns) = self.stage_ns[i]
                .load(Relaxed)
                .checked_div(self.stage_n[i].load(Relaxed))
            {
                *m = Duration::from_nanos(ns);
            }
        }
        Snapshot {
            frames_captured: self.frames_captured.load(Relaxed),
            frames_dropped: self.frames_dropped.load(Relaxed),
            frames_skipped: self.frames_skipped.load(Relaxed),
            frames_inferred: self.frames_inferred.load(Relaxed),
            frames_gated: self.frames_gated.load(Relaxed),
            frames_escalated: self.frames_escalated.load(Relaxed),
            frames_failed: self.frames_failed.load(Relaxed),
            backend_reopens: self.backend_reopens.load(Relaxed),
            events: self.events.load(Relaxed),
            events_dropped: self.events_dropped.load(Relaxed),
            events_acked: self.events_acked.load(Relaxed),
            outbox_pending: self.outbox_pending.load(Relaxed),
            mqtt_connection_errors: self.mqtt_connection_errors.load(Relaxed),
            outbox_write_errors: self.outbox_write_errors.load(Relaxed),
            mqtt_refused: by_reason(&self.refused),
            dropped_by_reason: by_reason(&self.dropped_by),
            stage_mean,
            stage_quantiles: std::array::from_fn(|i| self.stage_hist[i].quantiles()),
            people: self.people.snapshot(),
            pipeline: self.pipeline.lock().expect("pipeline status").clone(),
            cameras: self
                .cameras
                .lock()
                .expect("camera stats")
                .iter()
                .map(|(name, c)| {
                    let live = c.live.lock().expect("camera stats");
                    CameraSnapshot {
                        name: name.clone(),
                        state: live.state.to_string(),
                        captured: c.captured.load(Relaxed),
                        dropped: c.dropped.load(Relaxed),
                        skipped: c.skipped.load(Relaxed),
                        lost: c.lost.load(Relaxed),
                        reconnects: c.reconnects.load(Relaxed),
                        connect_failures: c.connect_failures.load(Relaxed),
                        last_error: live.last_error.clone(),
                        fps: if live.interval > 0.0 {
                            (100.0 / live.interval).round() / 100.0
                        } else {
                            0.0
                        },
                        motion: c.motion_stats.snapshot(),
                    }
                })
                .collect(),
        }
    }
}

fn by_reason(m: &Mutex<BTreeMap<&'static str, u64>>) -> BTreeMap<String, u64> {
    (m.lock().expect("counts by reason").iter())
        .map(|(k, v)| (k.to_string(), *v))
        .collect()
}

impl std::fmt::Display for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "frames: {} captured, {} inferred, {} dropped (lag), {} skipped (bad input), {} failed (backend), {} gated (reused a keyframe's result), {} escalated (cascade); events: {} decided; QoS 1 messages (events + state): {} acked by the broker, {} waiting, {} dropped",
            self.frames_captured,
            self.frames_inferred,
            self.frames_dropped,
            self.frames_skipped,
            self.frames_failed,
            self.frames_gated,
            self.frames_escalated,
            self.events,
            self.events_acked,
            self.outbox_pending,
            self.events_dropped
        )?;
        let refused: u64 = self.mqtt_refused.values().sum();
        if refused > 0 {
            write!(
                f,
                ", {refused} refused by the broker ({:?})",
                self.mqtt_refused
            )?;
        }
        Ok(())
    }
}
