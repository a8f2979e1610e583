//! `/metrics`: the telemetry as OpenMetrics text (which Prometheus
//! scrapes), through `prometheus-client`. Counters and gauges are read from
//! a [`Snapshot`](super::Snapshot) at scrape time; the inference latency
//! and batch-size histograms are live in [`Metrics`].

use super::Metrics;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

mod motion;

type Labels = Vec<(String, String)>;

/// Every camera state a source reports (one series each, 1 for the current).
const CAMERA_STATES: [&str; 5] = ["streaming", "reconnecting", "ended", "stopped", "failed"];

fn counter(v: u64) -> Counter {
    let c = Counter::default();
    c.inc_by(v);
    c
}

fn gauge(v: i64) -> Gauge {
    let g = Gauge::default();
    g.set(v);
    g
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The OpenMetrics text of `metrics` (ends with `# EOF`).
pub fn render(metrics: &Metrics) -> String {
    let s = metrics.snapshot();
    let mut r = Registry::with_prefix("stylecam");
    r.register(
        "build",
        "The running stylecam's version",
        Info::new(labels(&[("version", env!("CARGO_PKG_VERSION"))])),
    );
    r.register(
        "model",
        "The model bundle being served and the backend it runs on",
        Info::new(labels(&[
            ("model", &s.pipeline.model),
            ("backend", &s.pipeline.backend),
        ])),
    );

    let frames = Family::<Labels, Counter>::default();
    let fps = Family::<Labels, Gauge<f64, AtomicU64>>::default();
    let state = Family::<Labels, Gauge>::default();
    let reconnects = Family::<Labels, Counter>::default();
    let connect_failures = Family::<Labels, Counter>::default();
    for c in &s.cameras {
        for (outcome, n) in [
            ("captured", c.captured),
            ("dropped_stale", c.dropped),
            ("lost_at_source", c.lost),
            ("skipped", c.skipped),
        ] {
            frames
                .get_or_create(&labels(&[("camera", &c.name), ("outcome", outcome)]))
                .inc_by(n);
        }
        fps.get_or_create(&labels(&[("camera", &c.name)]))
            .set(c.fps);
        for st in CAMERA_STATES {
            state
                .get_or_create(&labels(&[("camera", &c.name), ("state", st)]))
                .set(i64::from(c.state == st));
        }
        reconnects
            .get_or_create(&labels(&[("camera", &c.name)]))
            .inc_by(c.reconnects);
        connect_failures
            .get_or_create(&labels(&[("camera", &c.name)]))
            .inc_by(c.connect_failures);
    }
    r.register(
        "camera_frames",
        "Frames per camera by outcome: captured, dropped as stale (inference lagged), lost at the source (gaps in the driver's sequence), skipped (undecodable or corrupt)",
        frames,
    );
    r.register(
        "camera_fps",
        "Frames per second over the last ~10 frames",
        fps,
    );
    r.register(
        "camera_state",
        "1 for the camera's current source state",
        state,
    );
    r.register(
        "camera_reconnects",
        "Times a streaming device was lost (unplug, I/O error, stall)",
        reconnects,
    );
    r.register(
        "camera_connect_failures",
        "Failed attempts to open or re-open the device",
        connect_failures,
    );

    motion::series(&mut r, &s.cameras);

    let queued = Family::<Labels, Gauge>::default();
    for (camera, n) in metrics.queue_depths() {
        queued
            .get_or_create(&labels(&[("camera", &camera)]))
            .set(n as i64);
    }
    r.register(
        "queue_depth",
        "Frames waiting for inference, per camera (pipeline.queue_depth at most)",
        queued,
    );
    r.register(
        "frames_inferred",
        "Frames the backend ran",
        counter(s.frames_inferred),
    );
    r.register(
        "frames_gated",
        "Frames the change gate answered with the last inferred frame's probabilities (no backend run)",
        counter(s.frames_gated),
    );
    r.register(
        "frames_escalated",
        "Inferred frames a cascade's edge model sent on to the ensemble",
        counter(s.frames_escalated),
    );
    r.register(
        "frames_failed",
        "Frames in batches the backend failed to run",
        counter(s.frames_failed),
    );
    r.register(
        "backend_reopens",
        "Times the backend was re-opened after repeated failures",
        counter(s.backend_reopens),
    );
    r.register(
        "inference_seconds",
        "Time per inference batch",
        metrics.infer_seconds().clone(),
    );
    r.register(
        "inference_batch_size",
        "Frames per inference batch",
        metrics.batch_sizes().clone(),
    );
    r.register("events", "Tag events decided", counter(s.events));
    let p = s.people;
    r.register(
        "people_detections",
        "People mode: person detections (all cameras)",
        counter(p.detections),
    );
    r.register(
        "people_tracks_started",
        "People mode: tracks confirmed (a person came into view)",
        counter(p.tracks_started),
    );
    r.register(
        "people_tracks_ended",
        "People mode: confirmed tracks that ended (a person left)",
        counter(p.tracks_ended),
    );
    r.register(
        "people_tracks_active",
        "People mode: confirmed tracks in view now",
        gauge(p.tracks_active as i64),
    );
    r.register(
        "people_classifications",
        "People mode: person crops classified",
        counter(p.classifications),
    );
    r.register(
        "people_crops_skipped",
        "People mode: due crops not classified (too small, cut by the frame edge)",
        counter(p.crops_skipped),
    );
    r.register(
        "people_crops_deferred",
        "People mode: due crops left for a later frame (over max_crops_per_frame)",
        counter(p.crops_deferred),
    );
    r.register(
        "people_untagged",
        "People mode: tracks that ended before any classification (no events)",
        counter(p.untagged),
    );
    r.register(
        "mqtt_acked",
        "QoS 1 messages the broker acknowledged",
        counter(s.events_acked),
    );
    r.register(
        "outbox_pending",
        "QoS 1 messages waiting in the outbox for the broker",
        gauge(s.outbox_pending as i64),
    );
    r.register(
        "outbox_dropped",
        "QoS 1 messages dropped because the outbox was full or too old",
        counter(s.events_dropped),
    );
    let by_reason = |counts: &std::collections::BTreeMap<String, u64>| {
        let family = Family::<Labels, Counter>::default();
        for (reason, n) in counts {
            family
                .get_or_create(&labels(&[("reason", reason)]))
                .inc_by(*n);
        }
        family
    };
    r.register(
        "outbox_drops",
        "QoS 1 messages dropped by reason: full, expired, larger_than_outbox (outbox.max_bytes), packet_too_large (mqtt.max_packet_bytes or the broker's limit)",
        by_reason(&s.dropped_by_reason),
    );
    r.register(
        "mqtt_refused",
        "Messages the broker refused (MQTT 5 PUBACK reason codes, e.g. not_authorized); they stay in the outbox",
        by_reason(&s.mqtt_refused),
    );
    r.register(
        "outbox_write_errors",
        "Failed writes to the outbox (full or read-only disk)",
        counter(s.outbox_write_errors),
    );
    r.register(
        "mqtt_connected",
        "1 while the MQTT session is up",
        gauge(i64::from(metrics.mqtt_connected())),
    );
    r.register(
        "mqtt_connection_errors",
        "Failed or lost MQTT connections",
        counter(s.mqtt_connection_errors),
    );
    r.register(
        "reloads",
        "Reloads (SIGHUP) that swapped in a new pipeline",
        counter(s.pipeline.reloads),
    );
    r.register(
        "reload_failures",
        "Reloads that failed (the old pipeline kept serving)",
        counter(s.pipeline.reload_failures),
    );
    collect_series(&mut r, &metrics.collect().snapshot());
    let refused = Family::<Labels, Counter>::default();
    for (reason, n) in metrics.listener().refusals() {
        refused
            .get_or_create(&labels(&[("reason", reason)]))
            .inc_by(n);
    }
    r.register(
        "http_refused",
        "Connections and requests the HTTP listener turned away, by reason (total / per-address: full; evicted idle: an idle connection closed to make room; host: a foreign Host header; token: no or a wrong token; bad or late request; accept failed)",
        refused,
    );
    r.register(
        "http_connections",
        "Connections the HTTP listener holds now",
        gauge(metrics.listener().open() as i64),
    );
    let mut out = String::new();
    encode(&mut out, &r).expect("writing to a String");
    out
}

/// Crop collection (`[collect]`): the folder, writes, deletions by
/// reason, and the full-disk pause.
fn collect_series(r: &mut Registry, c: &super::collect::CollectSnapshot) {
    r.register(
        "collect_crops",
        "Collected person crops kept in collect.dir",
        gauge(c.crops as i64),
    );
    r.register(
        "collect_bytes",
        "Bytes of the collected crops and their sidecars",
        gauge(c.bytes as i64),
    );
    let oldest = Gauge::<f64, AtomicU64>::default();
    oldest.set(c.oldest_seconds(std::time::SystemTime::now()));
    r.register(
        "collect_oldest_seconds",
        "Age of the oldest collected crop (0 without crops)",
        oldest,
    );
    r.register(
        "collect_written",
        "Collected crops written (PNG and sidecar)",
        counter(c.written),
    );
    let deleted = Family::<Labels, Counter>::default();
    for why in super::collect::Deleted::ALL {
        deleted
            .get_or_create(&labels(&[("reason", why.as_str())]))
            .inc_by(c.deleted(why));
    }
    r.register(
        "collect_deleted",
        "Collected crops deleted, by reason: retention (older than collect.retention_days), size (over collect.max_mib, oldest first), corrupt (incomplete or unreadable files)",
        deleted,
    );
    r.register(
        "collect_paused",
        "1 while writing crops fails (a full disk): collection waits, tagging goes on",
        gauge(i64::from(c.paused)),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::Stage;
    use std::time::Duration;

    #[test]
    fn every_series_is_there_with_labels_per_camera() {
        let m = Metrics::default();
        m.camera("door").captured("streaming");
        m.camera("till").interrupted("unplugged", true);
        m.time(Stage::Infer, Duration::from_millis(8), 4);
        m.set_mqtt_connected(true);
        m.mqtt_refused("not_authorized");
        m.event_dropped("expired");
        let c = m.collect();
        let six_s_ago = std::time::SystemTime::now() - Duration::from_millis(6400);
        c.set_folder(2, 4096, Some(six_s_ago));
        c.written();
        c.deleted(crate::telemetry::collect::Deleted::Size, 3);
        c.set_paused(true);
        let text = render(&m);
        for want in [
            "stylecam_build_info{version=\"",
            "stylecam_camera_frames_total{camera=\"door\",outcome=\"captured\"} 1",
            "stylecam_camera_state{camera=\"till\",state=\"reconnecting\"} 1",
            "stylecam_camera_state{camera=\"door\",state=\"streaming\"} 1",
            "stylecam_camera_reconnects_total{camera=\"till\"} 1",
            "stylecam_inference_seconds_count 1",
            "stylecam_inference_batch_size_bucket{le=\"4.0\"} 1",
            "stylecam_mqtt_connected 1",
            "stylecam_mqtt_refused_total{reason=\"not_authorized\"} 1",
            "stylecam_outbox_drops_total{reason=\"expired\"} 1",
            "stylecam_outbox_dropped_total 1",
            "stylecam_collect_crops 2",
            "stylecam_collect_bytes 4096",
            "stylecam_collect_written_total 1",
            "stylecam_collect_deleted_total{reason=\"size\"} 3",
            "stylecam_collect_deleted_total{reason=\"retention\"} 0",
            "stylecam_collect_paused 1",
            "stylecam_collect_oldest_seconds 6",
            "# EOF",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
    }
}
