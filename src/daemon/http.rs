//! `/metrics` and `/healthz` over HTTP/1.1 (GET only, one request per
//! connection): small enough to serve by hand on the daemon's runtime
//! instead of pulling in an HTTP stack.

use crate::telemetry::Metrics;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What `/healthz` checks against.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    pub camera_grace: Duration,
    pub outbox_limit: u64,
    /// No progress for this long fails `/healthz` (0 = off).
    pub stall_after: Duration,
}

/// Binds `listen` and serves until the runtime ends. A failed bind is
/// logged (naming the key) and the daemon goes on without the endpoints.
pub async fn serve(listen: String, metrics: Arc<Metrics>, rules: Rules) {
    let listener = match TcpListener::bind(&listen).await {
        Ok(l) => l,
        Err(e) => {
            log::warn!(
                "metrics.listen = {listen:?}: cannot listen ({e}); /metrics and /healthz are off. Fix: pick a free port, or set metrics.listen = \"\" to turn them off"
            );
            return;
        }
    };
    log::info!("serving /metrics and /healthz on http://{listen}");
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(10), answer(stream, &metrics, rules))
                .await;
        });
    }
}

async fn answer(mut stream: TcpStream, metrics: &Metrics, rules: Rules) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 8192 {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf);
    let mut first = head.lines().next().unwrap_or("").split_whitespace();
    let (method, path) = (first.next().unwrap_or(""), first.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    let (status, kind, body) = match (method, path) {
        ("GET", "/metrics") => (
            "200 OK",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            crate::telemetry::prometheus::render(metrics),
        ),
        ("GET", "/healthz") => {
            match metrics.health(rules.camera_grace, rules.outbox_limit, rules.stall_after) {
                Ok(()) => (
                    "200 OK",
                    "application/json",
                    "{\"status\":\"ok\"}\n".to_string(),
                ),
                Err(reasons) => (
                    "503 Service Unavailable",
                    "application/json",
                    serde_json::json!({"status": "unhealthy", "reasons": reasons}).to_string()
                        + "\n",
                ),
            }
        }
        ("GET", _) => (
            "404 Not Found",
            "text/plain",
            "try /metrics or /healthz\n".into(),
        ),
        _ => ("405 Method Not Allowed", "text/plain", "GET only\n".into()),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}
