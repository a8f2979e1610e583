//! The embedded broker (rumqttd, MQTT 3.1.1), for a box without one
//! (`mqtt.embedded = true`). It listens on the configured host:port and
//! runs on its own thread for the life of the process.

use std::net::{SocketAddr, TcpListener, ToSocketAddrs};

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("config key `mqtt.port`: the embedded broker cannot listen on {addr}: {source}. Fix: another broker probably runs there; set mqtt.embedded = false to use it, or choose another mqtt.port")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("config key `mqtt.host`: {0:?} does not resolve to an address. Fix: use an IP address such as 127.0.0.1")]
    Resolve(String),
}

/// Starts rumqttd on `host:port` and returns once it can accept connections.
/// `max_payload`: the largest packet it takes (`mqtt.max_packet_bytes`).
pub fn start(host: &str, port: u16, max_payload: usize) -> Result<SocketAddr, BrokerError> {
    let addr = (host, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| BrokerError::Resolve(host.into()))?;
    // rumqttd reports bind failures only inside its own thread: probe first.
    drop(TcpListener::bind(addr).map_err(|source| BrokerError::Bind {
        addr: addr.to_string(),
        source,
    })?);
    // rumqttd keeps each topic's recent messages in memory, up to
    // max_segment_size × max_segment_count: 1 MiB × 2 bounds the embedded
    // broker's memory on a box (the soak run showed it growing with the
    // former 10 MiB × 10) while keeping thousands of messages per topic.
    let text = format!(
        r#"
id = 0
[router]
id = 0
max_connections = 1000
max_outgoing_packet_count = 200
max_segment_size = 1048576
max_segment_count = 2

[v4.1]
name = "stylecam-embedded"
listen = "{addr}"
next_connection_delay_ms = 1
[v4.1.connections]
connection_timeout_ms = 60000
max_payload_size = {max_payload}
max_inflight_count = 200
dynamic_filters = true
"#
    );
    let config: rumqttd::Config = toml::from_str(&text).expect("static broker config");
    std::thread::Builder::new()
        .name("mqtt-broker".into())
        .spawn(move || {
            let mut broker = rumqttd::Broker::new(config);
            if let Err(e) = broker.start() {
                log::error!("embedded MQTT broker stopped: {e}");
            }
        })
        .expect("spawn broker thread");
    // Wait until it accepts connections (it binds asynchronously).
    for _ in 0..100 {
        if std::net::TcpStream::connect(addr).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    log::info!("embedded MQTT broker listening on {addr}");
    Ok(addr)
}
