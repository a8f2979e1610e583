//! From the validated config to the publisher's settings: topics, limits,
//! the broker login and TLS material (the only part that reads files).

use super::DaemonError;
use crate::config::{MqttProtocol, Secret, Validated, WhenFull};
use crate::publish::link::Protocol;
use crate::publish::mqtt::{Settings, Tls};
use crate::publish::outbox::Limits;
use crate::publish::Topics;
use std::time::Duration;

pub fn mqtt_settings(cfg: &Validated) -> Settings {
    let q = &cfg.mqtt;
    Settings {
        protocol: match q.protocol {
            MqttProtocol::V5 => Protocol::V5,
            MqttProtocol::V311 => Protocol::V311,
        },
        host: q.host.clone(),
        port: q.port,
        client_id: q
            .client_id
            .clone()
            .unwrap_or_else(|| format!("stylecam-{}", cfg.device)),
        keep_alive: Duration::from_secs(q.keep_alive_s),
        credentials: None,
        tls: None,
        topics: Topics {
            prefix: q.prefix.clone(),
            device: cfg.device.clone(),
        },
        limits: Limits {
            max_events: cfg.outbox.max_events,
            max_bytes: usize::try_from(cfg.outbox.max_bytes).unwrap_or(usize::MAX),
            max_age_ms: cfg.outbox.max_age_s.saturating_mul(1000),
            refuse_new: cfg.outbox.when_full == WhenFull::RefuseNew,
        },
        flush_timeout: Duration::from_secs(5),
        health_interval: Duration::from_secs(q.health_interval_s),
        max_packet_bytes: q.max_packet_bytes,
    }
}

/// The broker login: username with the password from the config (usually
/// the environment) or from `mqtt.password_file`.
pub fn credentials(cfg: &Validated) -> Result<Option<(String, Secret)>, DaemonError> {
    let q = &cfg.mqtt;
    let Some(user) = q.username.clone() else {
        return Ok(None);
    };
    let password = match (&q.password, &q.password_file) {
        (Some(p), _) => p.clone(),
        (None, Some(path)) => Secret(first_line(
            "mqtt.password_file",
            path,
            "make the file readable by stylecam, or set STYLECAM_MQTT__PASSWORD",
        )?),
        (None, None) => Secret(String::new()),
    };
    Ok(Some((user, password)))
}

/// The first line of a secret's file (`key` names it in errors; a file
/// others can read is warned about).
fn first_line(
    key: &'static str,
    path: &std::path::Path,
    fix: &'static str,
) -> Result<String, DaemonError> {
    warn_if_readable(key, path);
    let text = std::fs::read_to_string(path).map_err(|e| DaemonError::File {
        key,
        path: path.display().to_string(),
        problem: e.to_string(),
        fix,
    })?;
    Ok(text.lines().next().unwrap_or("").to_string())
}

/// The status page's token: `http.token`, or the first line of
/// `http.token_file`.
pub fn http_token(cfg: &Validated) -> Result<Option<Secret>, DaemonError> {
    let h = &cfg.http;
    match (&h.token, &h.token_file) {
        (Some(t), _) => Ok(Some(t.clone())),
        (None, Some(path)) => {
            let token = first_line(
                "http.token_file",
                path,
                "make the file readable by stylecam, or set STYLECAM_HTTP__TOKEN",
            )?;
            if token.trim() != token {
                // Never quoted: the line is the secret.
                return Err(DaemonError::File {
                    key: "http.token_file",
                    path: path.display().to_string(),
                    problem: "its first line starts or ends with white space, which a browser's form or a scraper's header would not send back".into(),
                    fix: "write the token alone on the first line (e.g. `openssl rand -hex 16 > FILE`)",
                });
            }
            if token.is_empty() {
                return Err(DaemonError::File {
                    key: "http.token_file",
                    path: path.display().to_string(),
                    problem: "its first line is empty".into(),
                    fix: "write a long random token on its first line (e.g. `openssl rand -hex 16 > FILE`)",
                });
            }
            Ok(Some(Secret(token)))
        }
        (None, None) => Ok(None),
    }
}

/// Whether a secret's file can be read by users other than its owner and
/// group (logged as a warning: the daemon still starts).
pub fn readable_by_others(path: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o004 != 0)
}

fn warn_if_readable(key: &str, path: &std::path::Path) {
    if readable_by_others(path) {
        log::warn!(
            "config key `{key}` = {}: the file is readable by every user; make it private (chmod 0600, or 0640 with the service's group)",
            path.display()
        );
    }
}

/// Where Linux distributions keep the system's CA bundle.
const SYSTEM_CA_BUNDLES: [&str; 3] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// TLS material from `mqtt.ca_file` (or the system bundle) and the client
/// certificate files.
pub fn tls(cfg: &Validated) -> Result<Option<Tls>, DaemonError> {
    let q = &cfg.mqtt;
    if !q.tls {
        return Ok(None);
    }
    let read = |key: &'static str, path: &std::path::Path, fix: &'static str| {
        std::fs::read(path).map_err(|e| DaemonError::File {
            key,
            path: path.display().to_string(),
            problem: e.to_string(),
            fix,
        })
    };
    let ca_pem = match &q.ca_file {
        Some(p) => read(
            "mqtt.ca_file",
            p,
            "point mqtt.ca_file at the PEM file of the CA that signed the broker's certificate",
        )?,
        None => {
            let found = SYSTEM_CA_BUNDLES
                .iter()
                .find(|p| std::path::Path::new(p).is_file());
            let Some(bundle) = found else {
                return Err(DaemonError::File {
                    key: "mqtt.ca_file",
                    path: "(unset)".into(),
                    problem: "no system CA bundle found".into(),
                    fix: "install ca-certificates, or set mqtt.ca_file",
                });
            };
            read(
                "mqtt.ca_file",
                std::path::Path::new(bundle),
                "install ca-certificates, or set mqtt.ca_file",
            )?
        }
    };
    let client_auth = match (&q.client_cert_file, &q.client_key_file) {
        (Some(c), Some(k)) => {
            warn_if_readable("mqtt.client_key_file", k);
            Some((
                read(
                    "mqtt.client_cert_file",
                    c,
                    "point it at the PEM client certificate",
                )?,
                read(
                    "mqtt.client_key_file",
                    k,
                    "point it at the PEM private key of the client certificate",
                )?,
            ))
        }
        _ => None,
    };
    Ok(Some(Tls {
        ca_pem,
        client_auth,
    }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_world_readable_secret_is_noticed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("password");
        std::fs::write(&p, "x").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(!super::readable_by_others(&p));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(super::readable_by_others(&p));
    }
}
