//! The MQTT I/O loop around the [`Outbox`] and its [`Store`]: rumqttc's
//! event loop runs in its own task and reports connection events; the
//! publisher task moves messages from the daemon into the outbox (and to
//! disk) and from the outbox to the client while connected. On every (re)connect it publishes the retained
//! `online` status; the last will says `offline`. Reconnects back off
//! exponentially with jitter (0.5 s doubling to 30 s).
//!
//! Each connection gets its own client and event loop: a request queued
//! for a connection that dropped dies with it instead of being written on
//! the next one. rumqttc 0.25 neither takes a packet id from its caller
//! nor says which request a packet id went to, so a PUBACK is matched to
//! its message by packet id through the written-packet events, which come
//! in the order this connection's client was handed its requests.
//!
//! Messages larger than `mqtt.max_packet_bytes` (or what an MQTT 5 broker
//! announces) are refused when they are queued or handed over, logged
//! with their size and the limit: one can never block the queue.
//!
//! A PUBACK that refuses a message (MQTT 5 reason code, e.g. not
//! authorised) is no delivery: the message stays in the outbox and on disk
//! and goes again after the outbox's backoff; each refusal is counted by
//! reason and logged (at most once a minute), and the retained status,
//! when refused, is published again with the next retry.

use super::link::{self, Client, Polled, Protocol, Refusal};
use super::outbox::{Limits, Outbox, Pushed};
use super::store::{Store, Stored};
use super::{payload, Message, Topics};
use crate::telemetry::{Beat, Metrics, RateLimit};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Settings the publisher needs (from the validated config).
#[derive(Debug, Clone)]
pub struct Settings {
    pub host: String,
    pub port: u16,
    pub protocol: Protocol,
    pub client_id: String,
    pub keep_alive: Duration,
    pub topics: Topics,
    /// Username and password, when the broker requires a login.
    pub credentials: Option<(String, crate::config::Secret)>,
    /// TLS, when configured.
    pub tls: Option<Tls>,
    pub limits: Limits,
    /// How long a clean shutdown waits for outstanding PUBACKs.
    pub flush_timeout: Duration,
    /// Period of the retained `…/health` message.
    pub health_interval: Duration,
    /// Largest MQTT packet sent or accepted (`mqtt.max_packet_bytes`).
    pub max_packet_bytes: usize,
}

/// TLS material, already read from its files.
#[derive(Clone)]
pub struct Tls {
    /// PEM: the CA(s) to trust (the config's file, or the system bundle).
    pub ca_pem: Vec<u8>,
    /// PEM client certificate and key.
    pub client_auth: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Tls {{ ca: {} bytes, client certificate: {} }}",
            self.ca_pem.len(),
            self.client_auth.is_some()
        )
    }
}

/// Messages for the publisher task.
#[derive(Debug)]
enum Link {
    /// A new connection, its client and the broker's packet limit (MQTT 5).
    Connected(Client, Option<u32>),
    Disconnected(String),
    Written(u16),
    Acked(u16),
    Refused(u16, Refusal),
}

/// Handle to the publisher task: send messages; close to flush and stop.
pub struct Publisher {
    tx: mpsc::UnboundedSender<Message>,
    task: tokio::task::JoinHandle<()>,
    metrics: Arc<Metrics>,
}

impl Publisher {
    /// Starts the client over an opened store and what it held; it
    /// connects in the background and retries forever.
    pub fn start(
        settings: Settings,
        store: Store,
        restored: Vec<Stored>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(settings, (store, restored), rx, metrics.clone()));
        Self { tx, task, metrics }
    }

    /// Queues a message (never blocks; the outbox bounds memory).
    pub fn send(&self, msg: Message) {
        if msg.event.is_some() {
            self.metrics.recent_event(&msg.topic, &msg.payload);
        }
        // The task only ends after `close`, so a send cannot fail before it.
        let _ = self.tx.send(msg);
    }

    /// Flushes outstanding messages (up to the flush timeout), publishes
    /// `offline` and disconnects.
    pub async fn close(self) {
        drop(self.tx);
        let _ = self.task.await;
    }
}

fn backoff(attempt: u32) -> Duration {
    let base = 0.5f64 * 2f64.powi(attempt.min(6) as i32);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    let jitter = 0.75 + 0.5 * (nanos as f64 / 1e9);
    Duration::from_secs_f64((base * jitter).min(30.0))
}

async fn drive(s: Settings, link: mpsc::UnboundedSender<Link>, metrics: Arc<Metrics>) {
    let mut attempt = 0u32;
    loop {
        // A fresh client and event loop per connection (see the module doc).
        let (client, mut eventloop) = link::connect(&s);
        let mut client = Some(client);
        loop {
            let sent = match eventloop.poll().await {
                Polled::Connected(max) => {
                    attempt = 0;
                    match client.take() {
                        Some(c) => link.send(Link::Connected(c, max)),
                        None => Ok(()),
                    }
                }
                Polled::Acked(pkid) => link.send(Link::Acked(pkid)),
                Polled::Refused(pkid, why) => link.send(Link::Refused(pkid, why)),
                Polled::Written(pkid) => link.send(Link::Written(pkid)),
                Polled::Other => Ok(()),
                Polled::Failed(why) => {
                    metrics.mqtt_connection_error();
                    let wait = backoff(attempt);
                    attempt += 1;
                    let sent = link.send(Link::Disconnected(format!(
                        "{why} (retrying in {:.1} s)",
                        wait.as_secs_f64()
                    )));
                    drop(eventloop);
                    tokio::time::sleep(wait).await;
                    if sent.is_err() {
                        return;
                    }
                    break;
                }
            };
            if sent.is_err() {
                return; // the publisher is gone
            }
        }
    }
}

/// The MQTT packet a message makes, at most: fixed header (5), topic length
/// (2), packet id (2), MQTT 5 properties (1), topic and payload.
pub fn packet_size(m: &Message) -> usize {
    10 + m.topic.len() + m.payload.len()
}

/// Publishes a retained message outside the outbox (status, health) on
/// `client`, unless it is over `d`'s packet limit; the outbox notes it so
/// that the written packets still line up.
fn publish_untracked(
    client: &Client,
    d: &mut Durable,
    topic: String,
    reliable: bool,
    payload: Vec<u8>,
) {
    let m = Message {
        topic,
        payload,
        reliable,
        retain: true,
        event: None,
    };
    if too_large(&m, d.max_packet) {
        return;
    }
    if client
        .publish(m.topic, m.reliable, m.retain, m.payload)
        .is_ok()
    {
        d.outbox.note_untracked();
    }
}

/// Whether `m` is over `limit`; logs it at most once a minute (with how
/// many more were refused meanwhile).
fn too_large(m: &Message, limit: usize) -> bool {
    let size = packet_size(m);
    if size <= limit {
        return false;
    }
    static REFUSED: RateLimit = RateLimit::new(Duration::from_secs(60));
    if let Some(held) = REFUSED.allow() {
        log::error!(
            "mqtt: a {size}-byte message on {} is over the {limit}-byte packet limit (mqtt.max_packet_bytes, \
             or the broker's own limit): not sent ({held} more refused since the last such line). Fix: raise \
             mqtt.max_packet_bytes (and the broker's limit, e.g. mosquitto's message_size_limit)",
            m.topic
        );
    }
    true
}

fn hand_over(client: &Client, d: &mut Durable, metrics: &Metrics) {
    let now = now_ms();
    if d.status_refused && now >= d.outbox.retry_at() {
        d.status_refused = false;
        let topics = d.topics.clone();
        publish_status(client, d, &topics, true);
    }
    while let Some(m) = d.outbox.next_to_send(now) {
        if too_large(&m, d.max_packet) {
            if let Some(id) = d.outbox.unhand(true) {
                metrics.event_dropped(PACKET_TOO_LARGE);
                d.remove.push(id);
            }
            continue;
        }
        if let Err(e) = client.publish(m.topic, m.reliable, m.retain, m.payload) {
            // Its request queue is full, or its connection is gone: the
            // message goes again later.
            log::debug!("mqtt: request not taken: {e}");
            d.outbox.unhand(false);
            break;
        }
    }
}

/// Why a QoS 1 message was dropped, as counted (`/metrics`, health).
const PACKET_TOO_LARGE: &str = "packet_too_large";
const LARGER_THAN_OUTBOX: &str = "larger_than_outbox";
const FULL: &str = "full";
const EXPIRED: &str = "expired";

fn publish_status(client: &Client, d: &mut Durable, topics: &Topics, online: bool) {
    let p = payload::to_json(&payload::status(&topics.device, online));
    publish_untracked(client, d, topics.status(), true, p);
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

/// The outbox and its on-disk mirror. Changes are collected and committed
/// in one transaction per turn of the loop, before anything new is handed
/// to the client.
struct Durable {
    outbox: Outbox,
    store: Store,
    add: Vec<Stored>,
    remove: Vec<u64>,
    /// Each camera's last event number, not yet on disk.
    seqs: std::collections::HashMap<String, u64>,
    /// A write failed: the file no longer mirrors the outbox.
    failing: bool,
    /// The largest packet sent: `mqtt.max_packet_bytes`, or less where the
    /// last connection's broker said so.
    max_packet: usize,
    /// `outbox.max_bytes`, for the log.
    limit_bytes: usize,
    topics: Topics,
    /// The broker refused the retained `online` status: publish it again
    /// when sending resumes.
    status_refused: bool,
    /// Refusals since the broker last took a message.
    refusals: u64,
}

impl Durable {
    fn queue(&mut self, m: Message, metrics: &Metrics) {
        if let Some((camera, n)) = &m.event {
            // The number is taken whatever becomes of the message.
            let last = self.seqs.entry(camera.clone()).or_default();
            *last = (*last).max(*n);
        }
        if too_large(&m, self.max_packet) {
            if m.reliable {
                metrics.event_dropped(PACKET_TOO_LARGE);
            }
            return;
        }
        let now = now_ms();
        let copy = m.reliable.then(|| m.clone());
        match self.outbox.push(m, now) {
            Pushed::Queued {
                id,
                dropped,
                removed,
            } => {
                if let Some(msg) = copy {
                    self.add.push(Stored {
                        id,
                        created_ms: now,
                        msg,
                    });
                }
                for d in dropped {
                    metrics.event_dropped(FULL);
                    self.remove.push(d);
                }
                self.remove.extend(removed);
            }
            Pushed::Refused => metrics.event_dropped(FULL),
            Pushed::TooLarge => {
                metrics.event_dropped(LARGER_THAN_OUTBOX);
                static LOG: RateLimit = RateLimit::new(Duration::from_secs(60));
                if let Some(held) = LOG.allow() {
                    log::error!(
                        "outbox: a message on {} is larger than the whole outbox (outbox.max_bytes = {}): dropped \
                         ({held} more since the last such line). Fix: raise outbox.max_bytes",
                        copy.map_or_else(String::new, |m| m.topic),
                        self.limit_bytes
                    );
                }
            }
            Pushed::Discarded => {}
        }
    }

    fn acked(&mut self, pkid: u16) {
        if self.refusals > 0 {
            log::info!(
                "mqtt: the broker takes messages again (after {} refusals)",
                self.refusals
            );
            self.refusals = 0;
        }
        if let Some(id) = self.outbox.on_acked(pkid) {
            self.remove.push(id);
        }
    }

    /// The broker refused `pkid`: counted, logged (at most once a minute),
    /// kept for the outbox's retry.
    fn refused(&mut self, pkid: u16, why: Refusal, metrics: &Metrics) {
        metrics.mqtt_refused(why.reason);
        self.refusals += 1;
        let now = now_ms();
        let (topic, kept) = match self.outbox.on_refused(pkid, now) {
            Some(m) => (m.topic.clone(), "it stays in the outbox"),
            None => {
                self.status_refused = true;
                (self.topics.status(), "it is published again")
            }
        };
        static LOG: RateLimit = RateLimit::new(Duration::from_secs(60));
        if let Some(held) = LOG.allow() {
            log::error!(
                "mqtt: the broker refused a message on {topic}: {}{}; {kept} and sending resumes in {:.0} s \
                 ({} messages wait; {held} more refusals since the last such line). Fix: {}",
                why.reason,
                why.detail.as_ref().map_or_else(String::new, |d| format!(" ({d})")),
                self.outbox.retry_at().saturating_sub(now) as f64 / 1000.0,
                self.outbox.len(),
                why.fix()
            );
        }
    }

    /// Expires old messages and commits pending changes. A failing disk
    /// (full, read-only) never stops delivery: messages stay in memory,
    /// the failure is logged once per episode and counted; once writes
    /// work again the file is made to hold the outbox as it is then.
    fn commit(&mut self, metrics: &Metrics) {
        for id in self.outbox.expire(now_ms()) {
            metrics.event_dropped(EXPIRED);
            self.remove.push(id);
        }
        let result = if self.failing {
            self.store.replace_all(&self.outbox.held(), &self.seqs)
        } else {
            self.store.commit(&self.add, &self.remove, &self.seqs)
        };
        match result {
            Ok(()) => {
                if self.failing {
                    self.store.synced();
                    log::info!(
                        "outbox: writing to disk works again; the file holds the outbox again"
                    );
                }
                self.failing = false;
                self.seqs.clear();
            }
            Err(e) => {
                metrics.outbox_write_error();
                if !self.failing {
                    let marked = self.store.mark_unsynced();
                    log::error!(
                        "{e}; messages are kept in memory until it works again{}",
                        if marked {
                            ""
                        } else {
                            " (the unsynced marker could not be made either: a restart before the disk \
                             works again may repeat event numbers)"
                        }
                    );
                }
                self.failing = true;
            }
        }
        self.add.clear();
        self.remove.clear();
    }
}

impl Durable {
    /// What becomes of the undelivered messages at exit, if there are any:
    /// QoS 1 messages are in the file for the next start unless writing it
    /// failed (then those queued since are lost); QoS 0 ones are dropped.
    fn shutdown_note(&self) -> Option<String> {
        let reliable = self.outbox.held().len();
        let best_effort = self.outbox.len() - reliable;
        let mut parts = vec![];
        if reliable > 0 && self.failing {
            parts.push(format!(
                "{reliable} undelivered QoS 1 messages are held in memory only (writing the outbox file fails): \
                 those queued since its last successful write are lost, the file keeps what it held then"
            ));
        } else if reliable > 0 {
            parts.push(format!(
                "{reliable} undelivered QoS 1 messages stay in the outbox file for the next start"
            ));
        }
        if best_effort > 0 {
            parts.push(format!(
                "{best_effort} QoS 0 messages (best effort) are dropped"
            ));
        }
        (!parts.is_empty()).then(|| format!("mqtt: shutting down: {}", parts.join("; ")))
    }
}

/// How many queued messages or link events one turn takes at most.
const TURN: usize = 512;

async fn run(
    s: Settings,
    durable: (Store, Vec<Stored>),
    mut rx: mpsc::UnboundedReceiver<Message>,
    metrics: Arc<Metrics>,
) {
    let (link_tx, mut link) = mpsc::unbounded_channel();
    let driver = tokio::spawn(drive(s.clone(), link_tx, metrics.clone()));
    let (store, restored) = durable;
    let mut outbox = Outbox::new(s.limits.clone(), 64);
    if !restored.is_empty() {
        log::info!(
            "outbox: {} undelivered messages from before the restart go first",
            restored.len()
        );
    }
    outbox.restore(restored);
    let mut d = Durable {
        outbox,
        store,
        add: vec![],
        remove: vec![],
        seqs: Default::default(),
        failing: false,
        max_packet: s.max_packet_bytes,
        limit_bytes: s.limits.max_bytes,
        topics: s.topics.clone(),
        status_refused: false,
        refusals: 0,
    };
    // The live connection's client (each connection has its own).
    let mut conn: Option<Client> = None;
    let mut closing: Option<tokio::time::Instant> = None;
    let mut was_down_logged = false;
    let started = tokio::time::Instant::now();
    let mut next_health = started + s.health_interval;
    loop {
        metrics.beat(Beat::Publisher);
        d.commit(&metrics);
        if tokio::time::Instant::now() >= next_health {
            if let Some(c) = &conn {
                let up = started.elapsed().as_secs();
                let h = payload::health(&s.topics.device, up, &metrics.snapshot());
                publish_untracked(c, &mut d, s.topics.health(), false, payload::to_json(&h));
            }
            next_health = tokio::time::Instant::now() + s.health_interval;
        }
        if let Some(c) = &conn {
            hand_over(c, &mut d, &metrics);
        }
        metrics.set_outbox(d.outbox.len() as u64, d.outbox.acked());
        if let Some(deadline) = closing {
            if d.outbox.is_empty() || tokio::time::Instant::now() >= deadline {
                break;
            }
        }
        // Wake at least every 250 ms: the watchdog watches this loop turn.
        let deadline = closing
            .unwrap_or(next_health)
            .min(tokio::time::Instant::now() + Duration::from_millis(250));
        tokio::select! {
            msg = rx.recv(), if closing.is_none() => match msg {
                Some(m) => {
                    d.queue(m, &metrics);
                    for _ in 1..TURN {
                        match rx.try_recv() {
                            Ok(m) => d.queue(m, &metrics),
                            Err(_) => break,
                        }
                    }
                }
                None => closing = Some(tokio::time::Instant::now() + s.flush_timeout),
            },
            ev = link.recv() => {
                let mut ev = ev;
                for _ in 0..TURN {
                    match ev {
                        Some(Link::Connected(client, broker_max)) => {
                            metrics.mqtt_attempted();
                            log::info!("mqtt: connected to {}:{}", s.host, s.port);
                            d.max_packet = broker_max
                                .map_or(s.max_packet_bytes, |b| s.max_packet_bytes.min(b as usize));
                            // A new connection: nothing is outstanding on it.
                            d.outbox.on_disconnect();
                            metrics.set_mqtt_connected(true);
                            was_down_logged = false;
                            publish_status(&client, &mut d, &s.topics, true);
                            conn = Some(client);
                        }
                        Some(Link::Disconnected(why)) => {
                            metrics.mqtt_attempted();
                            if conn.is_some() || !was_down_logged {
                                log::warn!("mqtt: cannot connect to {}:{}: {why}; {} messages wait", s.host, s.port, d.outbox.len());
                                was_down_logged = true;
                            }
                            conn = None;
                            metrics.set_mqtt_connected(false);
                            d.outbox.on_disconnect();
                        }
                        Some(Link::Written(pkid)) => d.outbox.on_written(pkid),
                        Some(Link::Acked(pkid)) => d.acked(pkid),
                        Some(Link::Refused(pkid, why)) => d.refused(pkid, why, &metrics),
                        None => break,
                    }
                    ev = match link.try_recv() {
                        Ok(e) => Some(e),
                        Err(_) => break,
                    };
                }
            },
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
    d.commit(&metrics);
    if let Some(note) = d.shutdown_note() {
        log::warn!("{note}");
    }
    if let Some(c) = &conn {
        // The exit summary, typed: a last retained health message, then
        // `offline`.
        let h = payload::health(
            &s.topics.device,
            started.elapsed().as_secs(),
            &metrics.snapshot(),
        );
        publish_untracked(c, &mut d, s.topics.health(), false, payload::to_json(&h));
        publish_status(c, &mut d, &s.topics, false);
        // Give the offline status a moment to go out before disconnecting.
        let wait = tokio::time::sleep(Duration::from_millis(300));
        tokio::pin!(wait);
        loop {
            tokio::select! {
                _ = &mut wait => break,
                ev = link.recv() => if let Some(Link::Acked(_) | Link::Refused(..)) | None = ev { break },
            }
        }
        c.disconnect();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    driver.abort();
    metrics.set_outbox(d.outbox.len() as u64, d.outbox.acked());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn durable(dir: &std::path::Path, limits: Limits) -> Durable {
        let (store, _) = Store::open(&dir.join("outbox.redb")).unwrap();
        Durable {
            limit_bytes: limits.max_bytes,
            outbox: Outbox::new(limits, 8),
            store,
            add: vec![],
            remove: vec![],
            seqs: Default::default(),
            failing: false,
            max_packet: 1 << 20,
            topics: Topics {
                prefix: "stylecam".into(),
                device: "d".into(),
            },
            status_refused: false,
            refusals: 0,
        }
    }

    fn event(seq: u64) -> Message {
        Message {
            topic: "d/cam/styles".into(),
            payload: format!("{{\"seq\":{seq:>2}}}").into_bytes(),
            reliable: true,
            retain: false,
            event: Some(("cam".into(), seq)),
        }
    }

    fn state(payload: &str) -> Message {
        Message {
            topic: "d/cam/state".into(),
            payload: payload.into(),
            reliable: true,
            retain: true,
            event: None,
        }
    }

    fn frame() -> Message {
        Message {
            topic: "d/cam/frames".into(),
            payload: b"{}".to_vec(),
            reliable: false,
            retain: false,
            event: None,
        }
    }

    /// The ids of the messages the file holds (the store is closed first).
    fn on_disk(d: Durable, dir: &std::path::Path) -> Vec<u64> {
        drop(d.store);
        let (_store, r) = Store::open(&dir.join("outbox.redb")).unwrap();
        r.pending.iter().map(|s| s.id).collect()
    }

    /// `refuse_new`, full by bytes: a state that no longer fits is refused,
    /// and the file still holds exactly what the outbox holds (no record
    /// of a superseded state left behind, to be sent after a restart).
    #[test]
    fn a_refused_message_leaves_no_orphan_record_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        // The event is 22 bytes (topic and payload), the first state 18.
        let limits = Limits {
            max_bytes: 40,
            refuse_new: true,
            ..Limits::count(100)
        };
        let mut d = durable(dir.path(), limits);
        let metrics = Metrics::default();
        d.queue(event(1), &metrics);
        d.queue(state("{\"a\":1}"), &metrics);
        d.commit(&metrics);
        d.queue(state("{\"a\":1,\"b\":2}"), &metrics);
        d.commit(&metrics);
        let held: Vec<u64> = d.outbox.held().iter().map(|s| s.id).collect();
        assert_eq!(on_disk(d, dir.path()), held, "the file holds the outbox");
    }

    #[test]
    fn the_shutdown_note_says_what_becomes_of_each_message() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = durable(dir.path(), Limits::count(10));
        let metrics = Metrics::default();
        assert_eq!(d.shutdown_note(), None);
        d.queue(event(1), &metrics);
        d.queue(frame(), &metrics);
        d.commit(&metrics);
        let note = d.shutdown_note().unwrap();
        assert!(
            note.contains("1 undelivered QoS 1 message")
                && note.contains("stay in the outbox file")
                && note.contains("1 QoS 0 message"),
            "{note}"
        );
        // Writing the file fails: what is only in memory is lost at exit.
        d.failing = true;
        let note = d.shutdown_note().unwrap();
        assert!(
            note.contains("lost") && !note.contains("stay in the outbox file"),
            "{note}"
        );
    }

    /// A refusal is no delivery: the message stays in memory and on disk,
    /// nothing counts as acknowledged, the refusal counts by reason.
    #[test]
    fn a_refused_message_stays_on_disk_and_is_counted() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = durable(dir.path(), Limits::count(10));
        let metrics = Metrics::default();
        d.queue(event(1), &metrics);
        d.commit(&metrics);
        assert!(d.outbox.next_to_send(now_ms()).is_some());
        d.outbox.on_written(1);
        let why = |reason| Refusal {
            reason,
            detail: None,
        };
        d.refused(1, why("not_authorized"), &metrics);
        // Not the outbox's: the retained status, published again later.
        d.refused(2, why("not_authorized"), &metrics);
        assert!(d.status_refused);
        d.commit(&metrics);
        let snap = metrics.snapshot();
        assert_eq!(snap.mqtt_refused.get("not_authorized"), Some(&2));
        assert_eq!((d.outbox.len(), d.outbox.acked()), (1, 0));
        assert_eq!(on_disk(d, dir.path()), vec![1]);
    }

    /// A broker that refuses answers: `/healthz` says it refuses, and the
    /// watchdog's stall check does not restart a daemon for it.
    #[test]
    fn a_refusing_broker_fails_health_but_is_no_stall() {
        let m = Metrics::default();
        m.set_mqtt_connected(true);
        m.set_outbox(3, 0);
        std::thread::sleep(Duration::from_millis(50));
        let after = Duration::from_millis(10);
        assert!(m.no_progress(after).is_some(), "a silent broker is a stall");
        m.mqtt_refused("not_authorized");
        assert_eq!(m.no_progress(after), None, "a refusal is an answer");
        let why = m
            .health(Duration::from_secs(30), 0, Duration::ZERO)
            .unwrap_err();
        assert!(
            why.iter()
                .any(|w| w.contains("refuses messages (not_authorized: 1)")),
            "{why:?}"
        );
    }
}
