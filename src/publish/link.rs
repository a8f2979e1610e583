//! One MQTT connection, 3.1.1 or 5 (`mqtt.protocol`), behind the few calls
//! the publisher makes: connect, publish, disconnect, and a poll that
//! reports connects, written packets, PUBACKs and failures (explained).
//!
//! An MQTT 5 PUBACK carries a reason code: only `Success` and
//! `NoMatchingSubscribers` are deliveries, any other code is a
//! [`Refusal`] (e.g. not authorised by the broker's ACL). MQTT 3.1.1 has no
//! reason codes: a broker that denies a publish there (mosquitto does)
//! still acknowledges it, and the message is lost without a word.

use super::mqtt::Settings;
use super::payload;
use rumqttc::{Outgoing, TlsConfiguration, Transport};

/// Which MQTT version to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    V311,
    V5,
}

#[derive(Debug)]
pub enum Client {
    V4(rumqttc::AsyncClient),
    V5(rumqttc::v5::AsyncClient),
}

/// Boxed: the two event loops differ a lot in size, and there is one per daemon.
pub enum Loop {
    V4(Box<rumqttc::EventLoop>),
    V5(Box<rumqttc::v5::EventLoop>),
}

/// What one poll of the connection produced.
pub enum Polled {
    /// CONNACK; with MQTT 5, the largest packet the broker accepts, if it says.
    Connected(Option<u32>),
    /// A publish went out with this packet id (0 for QoS 0).
    Written(u16),
    /// The broker took the message with this packet id.
    Acked(u16),
    /// The broker answered this packet id with a failure reason (MQTT 5).
    Refused(u16, Refusal),
    Other,
    /// The connection failed or dropped; the reason, with what to check.
    Failed(String),
}

/// Why an MQTT 5 broker did not take a message: its PUBACK reason code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The reason code, snake case (`not_authorized`, `quota_exceeded`, ...),
    /// as counted in `/metrics` and the health message.
    pub reason: &'static str,
    /// The broker's own words (the PUBACK's reason string), if it sent any.
    pub detail: Option<String>,
}

impl Refusal {
    /// What to do about it, for an operator.
    pub fn fix(&self) -> &'static str {
        match self.reason {
            "not_authorized" => {
                "let this client (mqtt.client_id, mqtt.username) write its topics in the broker's ACL"
            }
            "quota_exceeded" => {
                "raise the broker's quota for this client (e.g. mosquitto's max_queued_messages)"
            }
            "topic_name_invalid" | "payload_format_invalid" => {
                "compare the broker's rules for topics and payloads with mqtt.prefix"
            }
            _ => "read the broker's log",
        }
    }
}

/// A v5 PUBACK: `Ok` for a delivery, else the refusal.
fn puback_v5(ack: rumqttc::v5::mqttbytes::v5::PubAck) -> Polled {
    use rumqttc::v5::mqttbytes::v5::PubAckReason as R;
    let reason = match ack.reason {
        R::Success | R::NoMatchingSubscribers => return Polled::Acked(ack.pkid),
        R::UnspecifiedError => "unspecified_error",
        R::ImplementationSpecificError => "implementation_specific_error",
        R::NotAuthorized => "not_authorized",
        R::TopicNameInvalid => "topic_name_invalid",
        R::PacketIdentifierInUse => "packet_identifier_in_use",
        R::QuotaExceeded => "quota_exceeded",
        R::PayloadFormatInvalid => "payload_format_invalid",
    };
    let detail = ack.properties.and_then(|p| p.reason_string);
    Polled::Refused(ack.pkid, Refusal { reason, detail })
}

fn transport(s: &Settings) -> Option<Transport> {
    let tls = s.tls.as_ref()?;
    // rustls needs a process-wide crypto provider; a second install is a no-op.
    let _ = rustls::crypto::ring::default_provider().install_default();
    Some(Transport::tls_with_config(TlsConfiguration::Simple {
        ca: tls.ca_pem.clone(),
        alpn: None,
        client_auth: tls.client_auth.clone(),
    }))
}

const REFUSED: &str = "check mqtt.username and the password (mqtt.password_file or \
                       STYLECAM_MQTT__PASSWORD) and the broker's ACL";
const TLS: &str = "check mqtt.ca_file (the CA that signed the broker's certificate), mqtt.host \
                   (it must match the certificate) and the client certificate";
const SILENT: &str =
    "no answer to CONNECT in time (a broker that accepts TCP but does not speak MQTT?)";

/// Creates the client and its event loop; nothing connects until polled.
/// Clean sessions: our outbox, not the broker's session, keeps messages.
pub fn connect(s: &Settings) -> (Client, Loop) {
    let will = payload::to_json(&payload::status(&s.topics.device, false));
    match s.protocol {
        Protocol::V311 => {
            use rumqttc::{LastWill, MqttOptions, QoS};
            let mut o = MqttOptions::new(&s.client_id, &s.host, s.port);
            o.set_keep_alive(s.keep_alive);
            o.set_clean_session(true);
            o.set_request_channel_capacity(256);
            o.set_inflight(100);
            // rumqttc's default is 10 KiB both ways; we refuse larger
            // messages before they reach the client (mqtt::packet_size).
            o.set_max_packet_size(s.max_packet_bytes, s.max_packet_bytes);
            if let Some((user, password)) = &s.credentials {
                o.set_credentials(user.clone(), password.0.clone());
            }
            if let Some(t) = transport(s) {
                o.set_transport(t);
            }
            o.set_last_will(LastWill::new(
                s.topics.status(),
                will,
                QoS::AtLeastOnce,
                true,
            ));
            let (c, l) = rumqttc::AsyncClient::new(o, 256);
            (Client::V4(c), Loop::V4(Box::new(l)))
        }
        Protocol::V5 => {
            use rumqttc::v5::mqttbytes::v5::LastWill;
            use rumqttc::v5::mqttbytes::QoS;
            use rumqttc::v5::MqttOptions;
            let mut o = MqttOptions::new(&s.client_id, &s.host, s.port);
            o.set_keep_alive(s.keep_alive);
            o.set_clean_start(true);
            o.set_request_channel_capacity(256);
            o.set_outgoing_inflight_upper_limit(100);
            // What we accept; what we send is bounded by mqtt::packet_size
            // against our limit and the broker's CONNACK.
            o.set_max_packet_size(Some(s.max_packet_bytes as u32));
            if let Some((user, password)) = &s.credentials {
                o.set_credentials(user.clone(), password.0.clone());
            }
            if let Some(t) = transport(s) {
                o.set_transport(t);
            }
            o.set_last_will(LastWill::new(
                s.topics.status(),
                will,
                QoS::AtLeastOnce,
                true,
                None,
            ));
            let (c, l) = rumqttc::v5::AsyncClient::new(o, 256);
            (Client::V5(c), Loop::V5(Box::new(l)))
        }
    }
}

impl Client {
    /// Queues a publish without waiting (QoS 1 when `reliable`).
    pub fn publish(
        &self,
        topic: String,
        reliable: bool,
        retain: bool,
        payload: Vec<u8>,
    ) -> Result<(), String> {
        match self {
            Client::V4(c) => {
                let qos = if reliable {
                    rumqttc::QoS::AtLeastOnce
                } else {
                    rumqttc::QoS::AtMostOnce
                };
                c.try_publish(topic, qos, retain, payload)
                    .map_err(|e| e.to_string())
            }
            Client::V5(c) => {
                use rumqttc::v5::mqttbytes::QoS;
                let qos = if reliable {
                    QoS::AtLeastOnce
                } else {
                    QoS::AtMostOnce
                };
                c.try_publish(topic, qos, retain, payload)
                    .map_err(|e| e.to_string())
            }
        }
    }

    pub fn disconnect(&self) {
        let _ = match self {
            Client::V4(c) => c.try_disconnect().map_err(|e| e.to_string()),
            Client::V5(c) => c.try_disconnect().map_err(|e| e.to_string()),
        };
    }
}

impl Loop {
    pub async fn poll(&mut self) -> Polled {
        match self {
            Loop::V4(l) => {
                use rumqttc::{ConnectionError, Event, Packet};
                match l.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => Polled::Connected(None),
                    Ok(Event::Incoming(Packet::PubAck(ack))) => Polled::Acked(ack.pkid),
                    Ok(Event::Outgoing(Outgoing::Publish(pkid))) => Polled::Written(pkid),
                    Ok(_) => Polled::Other,
                    Err(ConnectionError::ConnectionRefused(code)) => Polled::Failed(format!(
                        "the broker refused the connection ({code:?}): {REFUSED}"
                    )),
                    Err(ConnectionError::Tls(e)) => {
                        Polled::Failed(format!("TLS failed ({e}): {TLS}"))
                    }
                    Err(ConnectionError::NetworkTimeout) => Polled::Failed(SILENT.into()),
                    Err(e) => Polled::Failed(e.to_string()),
                }
            }
            Loop::V5(l) => {
                use rumqttc::v5::mqttbytes::v5::Packet;
                use rumqttc::v5::{ConnectionError, Event};
                match l.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(c))) => {
                        Polled::Connected(c.properties.and_then(|p| p.max_packet_size))
                    }
                    Ok(Event::Incoming(Packet::PubAck(ack))) => puback_v5(ack),
                    Ok(Event::Outgoing(Outgoing::Publish(pkid))) => Polled::Written(pkid),
                    Ok(_) => Polled::Other,
                    Err(ConnectionError::ConnectionRefused(code)) => Polled::Failed(format!(
                        "the broker refused the connection ({code:?}): {REFUSED}"
                    )),
                    Err(ConnectionError::Tls(e)) => {
                        Polled::Failed(format!("TLS failed ({e}): {TLS}"))
                    }
                    Err(ConnectionError::Timeout(_)) => Polled::Failed(SILENT.into()),
                    Err(e) => Polled::Failed(e.to_string()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttc::v5::mqttbytes::v5::{PubAck, PubAckProperties, PubAckReason};

    fn ack(reason: PubAckReason, why: Option<&str>) -> Polled {
        puback_v5(PubAck {
            pkid: 7,
            reason,
            properties: why.map(|w| PubAckProperties {
                reason_string: Some(w.into()),
                user_properties: vec![],
            }),
        })
    }

    #[test]
    fn only_success_and_no_subscribers_are_deliveries() {
        for r in [PubAckReason::Success, PubAckReason::NoMatchingSubscribers] {
            assert!(matches!(ack(r, None), Polled::Acked(7)));
        }
        for (r, name) in [
            (PubAckReason::NotAuthorized, "not_authorized"),
            (PubAckReason::QuotaExceeded, "quota_exceeded"),
            (PubAckReason::PayloadFormatInvalid, "payload_format_invalid"),
            (PubAckReason::TopicNameInvalid, "topic_name_invalid"),
            (PubAckReason::UnspecifiedError, "unspecified_error"),
            (
                PubAckReason::ImplementationSpecificError,
                "implementation_specific_error",
            ),
            (
                PubAckReason::PacketIdentifierInUse,
                "packet_identifier_in_use",
            ),
        ] {
            match ack(r, Some("denied by ACL")) {
                Polled::Refused(7, why) => {
                    assert_eq!(why.reason, name);
                    assert_eq!(why.detail.as_deref(), Some("denied by ACL"));
                    assert!(!why.fix().is_empty());
                }
                _ => panic!("{name} is a refusal"),
            }
        }
    }
}
