//! Payloads, version 1. Field names and types are a contract with
//! inventory systems: change them only with a new `v` and a schema update.

use crate::styles::Taxonomy;
use crate::telemetry::{CameraSnapshot, PipelineStatus, Quantiles, Snapshot};
use serde::Serialize;
use std::time::SystemTime;

pub const VERSION: u32 = 1;

/// A tag as published.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Tag {
    pub id: String,
    pub en: String,
    pub zh: String,
    /// The smoothed probability behind the tag, in [0, 1].
    pub score: f32,
}

#[derive(Debug, Clone, Serialize)]
pub struct ModelRef {
    pub name: String,
    pub version: String,
}

/// `…/{camera}/styles`: the stable tag set changed.
#[derive(Debug, Clone, Serialize)]
pub struct StylesEvent {
    pub v: u32,
    pub kind: &'static str,
    pub device: String,
    pub camera: String,
    /// The outbox file's id: changes when the file is new (lost, replaced,
    /// another state directory), and `seq` then starts again at 1.
    pub epoch: String,
    /// Per-camera event number within the epoch: grows by one per event,
    /// across restarts. De-duplicate by (device, camera, epoch, seq).
    pub seq: u64,
    /// Sequence number of the frame that completed the change.
    pub frame_seq: u64,
    /// RFC 3339 UTC capture time of that frame.
    pub captured_at: String,
    pub tags: Vec<Tag>,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub model: ModelRef,
    /// `regions` mode: the region whose tags changed (absent in `frame` mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

/// `…/{camera}/people` (QoS 1): one tracked person's change feed.
#[derive(Debug, Clone, Serialize)]
pub struct PersonEvent {
    pub v: u32,
    pub kind: &'static str,
    /// `entered` (its tags are decided), `changed`, `left`.
    pub event: &'static str,
    pub device: String,
    pub camera: String,
    pub epoch: String,
    /// The camera's event number (shared with its other events).
    pub seq: u64,
    /// The track's id: random per run, never linkable across runs.
    pub person: String,
    pub frame_seq: u64,
    pub captured_at: String,
    /// When the track was confirmed.
    pub first_seen: String,
    /// Decided on the mean of the person's classifications so far.
    pub tags: Vec<Tag>,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub classifications: u32,
    /// `left` only: seconds from confirmation to leaving.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dwell_s: Option<f64>,
    pub model: ModelRef,
}

/// A region's or a person's current tags in a `state` message.
#[derive(Debug, Clone, Serialize)]
pub struct SubjectTags {
    /// The region's name, or the person's track id.
    pub id: String,
    pub tags: Vec<Tag>,
}

/// `…/{camera}/state` (retained): the current tags.
#[derive(Debug, Clone, Serialize)]
pub struct StateMessage {
    pub v: u32,
    pub kind: &'static str,
    pub device: String,
    pub camera: String,
    pub epoch: String,
    pub seq: u64,
    pub captured_at: String,
    /// `frame` mode's tags (empty in the other modes).
    pub tags: Vec<Tag>,
    /// `regions` mode: every region's tags.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regions: Option<Vec<SubjectTags>>,
    /// `people` mode: the people in view that have tags.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub people: Option<Vec<SubjectTags>>,
}

/// `…/{camera}/frames` (QoS 0, optional): one frame's decision.
#[derive(Debug, Clone, Serialize)]
pub struct FrameMessage {
    pub v: u32,
    pub kind: &'static str,
    pub device: String,
    pub camera: String,
    pub frame_seq: u64,
    pub captured_at: String,
    /// Raw model probabilities, in class order.
    pub probs: Vec<f32>,
    /// Class ids the decision picked for this frame alone.
    pub labels: Vec<String>,
}

/// `…/status` (retained; `offline` is also the last will).
#[derive(Debug, Clone, Serialize)]
pub struct StatusMessage {
    pub v: u32,
    pub kind: &'static str,
    pub device: String,
    pub state: &'static str,
    pub version: &'static str,
}

/// `…/health` (retained, QoS 0, every `mqtt.health_interval_s`): counters
/// since start, so a dashboard sees drops and backlogs.
#[derive(Debug, Clone, Serialize)]
pub struct HealthMessage {
    pub v: u32,
    pub kind: &'static str,
    pub device: String,
    pub at: String,
    pub uptime_s: u64,
    pub frames: FrameCounts,
    pub events_decided: u64,
    pub outbox: OutboxCounts,
    pub mqtt_connection_errors: u64,
    pub pipeline: PipelineStatus,
    /// Per camera, by name.
    pub cameras: Vec<CameraSnapshot>,
    /// Per-frame latency of each stage since start, in ms.
    pub latency_ms: std::collections::BTreeMap<String, Quantiles>,
    /// People mode (zeros when no camera runs it).
    pub people: crate::telemetry::PeopleSnapshot,
}

#[derive(Debug, Clone, Serialize)]
pub struct FrameCounts {
    pub captured: u64,
    pub inferred: u64,
    pub gated: u64,
    pub escalated: u64,
    pub dropped: u64,
    pub skipped: u64,
    pub failed: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct OutboxCounts {
    pub pending: u64,
    pub acked: u64,
    pub dropped: u64,
    pub write_errors: u64,
    /// Of `dropped`, how many for each reason.
    pub dropped_by_reason: std::collections::BTreeMap<String, u64>,
    /// Messages the broker refused (MQTT 5 PUBACK reason codes), by
    /// reason: they stay in the outbox and go again.
    pub refused: std::collections::BTreeMap<String, u64>,
}

pub fn health(device: &str, uptime_s: u64, m: &Snapshot) -> HealthMessage {
    HealthMessage {
        v: VERSION,
        kind: "health",
        device: device.into(),
        at: timestamp(SystemTime::now()),
        uptime_s,
        frames: FrameCounts {
            captured: m.frames_captured,
            inferred: m.frames_inferred,
            gated: m.frames_gated,
            escalated: m.frames_escalated,
            dropped: m.frames_dropped,
            skipped: m.frames_skipped,
            failed: m.frames_failed,
        },
        events_decided: m.events,
        outbox: OutboxCounts {
            pending: m.outbox_pending,
            acked: m.events_acked,
            dropped: m.events_dropped,
            write_errors: m.outbox_write_errors,
            dropped_by_reason: m.dropped_by_reason.clone(),
            refused: m.mqtt_refused.clone(),
        },
        mqtt_connection_errors: m.mqtt_connection_errors,
        pipeline: m.pipeline.clone(),
        cameras: m.cameras.clone(),
        latency_ms: crate::telemetry::STAGES
            .iter()
            .zip(m.stage_quantiles)
            .map(|(s, q)| (format!("{s:?}").to_lowercase(), q))
            .collect(),
        people: m.people,
    }
}

pub fn timestamp(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

pub fn tags(taxonomy: &Taxonomy, classes: &[usize], scores: &[f32]) -> Vec<Tag> {
    classes
        .iter()
        .map(|&a| {
            let c = &taxonomy.0[a];
            Tag {
                id: c.id.clone(),
                en: c.en.clone(),
                zh: c.zh.clone(),
                score: scores[a].clamp(0.0, 1.0),
            }
        })
        .collect()
}

pub fn ids(taxonomy: &Taxonomy, classes: &[usize]) -> Vec<String> {
    classes.iter().map(|&a| taxonomy.0[a].id.clone()).collect()
}

pub fn status(device: &str, online: bool) -> StatusMessage {
    StatusMessage {
        v: VERSION,
        kind: "status",
        device: device.into(),
        state: if online { "online" } else { "offline" },
        version: env!("CARGO_PKG_VERSION"),
    }
}

pub fn to_json<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("payload types serialise")
}
