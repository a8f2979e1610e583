//! The MQTT I/O loop around the [`Outbox`]: rumqttc's event loop runs in
//! its own task and reports connection events; the publisher task moves
//! messages from the daemon into the outbox and from the outbox to the
//! client while connected. On every (re)connect it publishes the retained
//! `online` status; the last will says `offline`. Reconnects back off
//! exponentially with jitter (0.5 s doubling to 30 s).

use super::outbox::Outbox;
use super::{payload, Message, Topics};
use crate::daemon::metrics::Metrics;
use rumqttc::{AsyncClient, Event, EventLoop, LastWill, MqttOptions, Outgoing, Packet, QoS};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Settings the publisher needs (from the validated config).
#[derive(Debug, Clone)]
pub struct Settings {
    pub host: String,
    pub port: u16,
    pub client_id: String,
    pub keep_alive: Duration,
    pub topics: Topics,
    pub max_pending: usize,
    /// How long a clean shutdown waits for outstanding PUBACKs.
    pub flush_timeout: Duration,
}

/// Messages for the publisher task.
#[derive(Debug)]
enum Link {
    Connected,
    Disconnected(String),
    Written(u16),
    Acked(u16),
}

/// Handle to the publisher task: send messages; close to flush and stop.
pub struct Publisher {
    tx: mpsc::UnboundedSender<Message>,
    task: tokio::task::JoinHandle<()>,
}

impl Publisher {
    /// Starts the client; it connects in the background and retries forever.
    pub fn start(settings: Settings, metrics: Arc<Metrics>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(settings, rx, metrics));
        Self { tx, task }
    }

    /// Queues a message (never blocks; the outbox bounds memory).
    pub fn send(&self, msg: Message) {
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

fn options(s: &Settings) -> MqttOptions {
    let mut o = MqttOptions::new(&s.client_id, &s.host, s.port);
    o.set_keep_alive(s.keep_alive);
    // Our outbox, not the broker's session, is what keeps messages.
    o.set_clean_session(true);
    o.set_request_channel_capacity(256);
    o.set_inflight(100);
    let will = payload::to_json(&payload::status(&s.topics.device, false));
    o.set_last_will(LastWill::new(
        s.topics.status(),
        will,
        QoS::AtLeastOnce,
        true,
    ));
    o
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

async fn drive(mut eventloop: EventLoop, link: mpsc::UnboundedSender<Link>, metrics: Arc<Metrics>) {
    let mut attempt = 0u32;
    loop {
        let sent = match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                attempt = 0;
                link.send(Link::Connected)
            }
            Ok(Event::Incoming(Packet::PubAck(ack))) => link.send(Link::Acked(ack.pkid)),
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => link.send(Link::Written(pkid)),
            Ok(_) => Ok(()),
            Err(e) => {
                metrics.mqtt_connection_error();
                let wait = backoff(attempt);
                attempt += 1;
                let sent = link.send(Link::Disconnected(format!(
                    "{e} (retrying in {:.1} s)",
                    wait.as_secs_f64()
                )));
                tokio::time::sleep(wait).await;
                sent
            }
        };
        if sent.is_err() {
            return; // the publisher is gone
        }
    }
}

fn hand_over(client: &AsyncClient, outbox: &mut Outbox) {
    while let Some(m) = outbox.next_to_send() {
        let qos = if m.reliable {
            QoS::AtLeastOnce
        } else {
            QoS::AtMostOnce
        };
        if let Err(e) = client.try_publish(m.topic, qos, m.retain, m.payload) {
            // Cannot happen with the window below the channel capacity; the
            // message will be sent again after the next disconnect.
            log::warn!("mqtt: request queue full: {e}");
            break;
        }
    }
}

fn publish_status(client: &AsyncClient, outbox: &mut Outbox, topics: &Topics, online: bool) {
    let p = payload::to_json(&payload::status(&topics.device, online));
    if client
        .try_publish(topics.status(), QoS::AtLeastOnce, true, p)
        .is_ok()
    {
        outbox.note_untracked();
    }
}

async fn run(s: Settings, mut rx: mpsc::UnboundedReceiver<Message>, metrics: Arc<Metrics>) {
    let (client, eventloop) = AsyncClient::new(options(&s), 256);
    let (link_tx, mut link) = mpsc::unbounded_channel();
    let driver = tokio::spawn(drive(eventloop, link_tx, metrics.clone()));
    let mut outbox = Outbox::new(s.max_pending, 64);
    let mut connected = false;
    let mut closing: Option<tokio::time::Instant> = None;
    let mut was_down_logged = false;
    loop {
        if connected {
            hand_over(&client, &mut outbox);
        }
        metrics.set_outbox(outbox.len() as u64, outbox.acked());
        if let Some(deadline) = closing {
            if outbox.is_empty() || tokio::time::Instant::now() >= deadline {
                break;
            }
        }
        let deadline =
            closing.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            msg = rx.recv(), if closing.is_none() => match msg {
                Some(m) => {
                    if outbox.push(m) {
                        metrics.event_dropped();
                    }
                }
                None => closing = Some(tokio::time::Instant::now() + s.flush_timeout),
            },
            ev = link.recv() => match ev {
                Some(Link::Connected) => {
                    log::info!("mqtt: connected to {}:{}", s.host, s.port);
                    connected = true;
                    was_down_logged = false;
                    publish_status(&client, &mut outbox, &s.topics, true);
                }
                Some(Link::Disconnected(why)) => {
                    if connected || !was_down_logged {
                        log::warn!("mqtt: broker {}:{} unreachable: {why}; {} messages wait", s.host, s.port, outbox.len());
                        was_down_logged = true;
                    }
                    connected = false;
                    outbox.on_disconnect();
                }
                Some(Link::Written(pkid)) => outbox.on_written(pkid),
                Some(Link::Acked(pkid)) => outbox.on_acked(pkid),
                None => break,
            },
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
    if !outbox.is_empty() {
        log::warn!(
            "mqtt: shutting down with {} undelivered messages",
            outbox.len()
        );
    }
    if connected {
        publish_status(&client, &mut outbox, &s.topics, false);
        // Give the offline status a moment to go out before disconnecting.
        let wait = tokio::time::sleep(Duration::from_millis(300));
        tokio::pin!(wait);
        loop {
            tokio::select! {
                _ = &mut wait => break,
                ev = link.recv() => if let Some(Link::Acked(_)) | None = ev { break },
            }
        }
        let _ = client.try_disconnect();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    driver.abort();
    metrics.set_outbox(outbox.len() as u64, outbox.acked());
}
