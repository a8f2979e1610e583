//! Publishing tag events over MQTT (DESIGN.md "MQTT").
//!
//! Topics under `{prefix}/{device}/`: `status` (retained `online` /
//! `offline`, the latter as last will), `{camera}/styles` (tag events,
//! QoS 1), `{camera}/state` (retained current tags, QoS 1) and, optionally,
//! `{camera}/frames` (every frame's decision, QoS 0) and `health`
//! (retained counters, QoS 0, periodic). Payloads are
//! versioned JSON ([`payload`]) described by `mqtt.schema.json`.
//!
//! Every QoS 1 message is written to the on-disk [`store::Store`] before
//! it is handed to the MQTT client and stays there, and in the
//! [`outbox::Outbox`], until the broker's PUBACK: a broker outage or a
//! daemon restart (even SIGKILL) only delays it. The outbox is bounded by
//! count, bytes and age, dropping the oldest or refusing new (config), and
//! counts what it drops. [`mqtt::Publisher`] is the I/O loop around both;
//! an embedded broker (`broker`, feature `embedded-broker`) serves a box
//! without one.

#[cfg(feature = "embedded-broker")]
pub mod broker;
pub mod link;
pub mod mqtt;
pub mod outbox;
pub mod payload;
pub mod store;

/// The JSON Schema of every payload stylecam publishes.
pub const SCHEMA: &str = include_str!("mqtt.schema.json");

/// Topic names for one device.
#[derive(Debug, Clone)]
pub struct Topics {
    pub prefix: String,
    pub device: String,
}

impl Topics {
    pub fn status(&self) -> String {
        format!("{}/{}/status", self.prefix, self.device)
    }
    pub fn health(&self) -> String {
        format!("{}/{}/health", self.prefix, self.device)
    }
    pub fn styles(&self, camera: &str) -> String {
        format!("{}/{}/{camera}/styles", self.prefix, self.device)
    }
    pub fn state(&self, camera: &str) -> String {
        format!("{}/{}/{camera}/state", self.prefix, self.device)
    }
    pub fn people(&self, camera: &str) -> String {
        format!("{}/{}/{camera}/people", self.prefix, self.device)
    }
    pub fn frames(&self, camera: &str) -> String {
        format!("{}/{}/{camera}/frames", self.prefix, self.device)
    }
    /// Filter matching everything this device publishes.
    pub fn all(&self) -> String {
        format!("{}/{}/#", self.prefix, self.device)
    }
}

/// One message to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub topic: String,
    pub payload: Vec<u8>,
    /// QoS 1 when true (kept until PUBACK), else QoS 0 (best effort).
    pub reliable: bool,
    pub retain: bool,
    /// For a tag event: (camera, seq), so the store can continue `seq`
    /// after a restart.
    pub event: Option<(String, u64)>,
}

/// Where the pipeline hands its messages: the MQTT publisher (or, in
/// tests, a collector).
pub trait Sink: Send + Sync {
    fn send(&self, msg: Message);
}

impl Sink for mqtt::Publisher {
    fn send(&self, msg: Message) {
        mqtt::Publisher::send(self, msg)
    }
}
