//! The pure validation step: [`Config::validate`] checks every key and
//! returns a [`Validated`] config, or the first problem as a [`ConfigError`]
//! that names the key, the bad value and the fix.

use super::{CameraConfig, Config, SourceConfig, SyntheticFormat};
use std::collections::HashSet;
use std::path::Path;

/// MQTT's largest packet (remaining length 268,435,455).
pub const MAX_MQTT_PACKET: usize = 268_435_455;

/// A config problem: which key, what value, what is wrong, how to fix it.
/// `key` is empty for a problem with the file as a whole; `value` is
/// `(in FILE)` for a syntax or type error found while reading the file.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub key: String,
    pub value: String,
    pub problem: String,
    pub fix: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (key, value, problem, fix) = (&self.key, &self.value, &self.problem, &self.fix);
        if key.is_empty() {
            write!(f, "config file {value}: {problem}. Fix: {fix}")
        } else if value.starts_with("(in ") {
            write!(f, "config key `{key}` {value}: {problem}. Fix: {fix}")
        } else {
            write!(f, "config key `{key}` = {value}: {problem}. Fix: {fix}")
        }
    }
}

impl ConfigError {
    pub fn new(
        key: impl Into<String>,
        value: impl Into<String>,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            key: key.into(),
            value: value.into(),
            problem: problem.into(),
            fix: fix.into(),
        }
    }

    /// An unknown top-level key that comes from the environment (every
    /// `STYLECAM_<KEY>` variable is read as a config override), named as
    /// such; `is_set` says whether a variable exists.
    fn stray_env(text: &str, is_set: impl Fn(&str) -> bool) -> Option<Self> {
        let field = text.split("unknown field `").nth(1)?.split('`').next()?;
        let var = format!("{}_{}", super::ENV_PREFIX, field.to_uppercase());
        is_set(&var).then(|| {
            Self::new(
                field,
                format!("(environment variable {var})"),
                format!("{var} is read as the config key `{field}`, which does not exist"),
                "unset it; STYLECAM_<SECTION>__<KEY> variables override config keys (e.g. STYLECAM_MQTT__PORT)",
            )
        })
    }

    pub(super) fn parse(path: Option<&Path>, e: config::ConfigError) -> Self {
        let file = path
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "(built-in default)".into());
        // The reader quotes the line it stopped at: no secret may leave.
        let text = super::redact::scrub(&e.to_string(), path);
        let text = text.split(" in ").next().unwrap_or(&text).to_string();
        // config's messages carry the key as `... for key `mqtt.port``.
        let key = text
            .split("key `")
            .nth(1)
            .and_then(|s| s.split('`').next())
            .unwrap_or_default()
            // `cameras[0]source` → `cameras[0].source`
            .replace("]", "].")
            .replace("].[", "][")
            .trim_end_matches('.')
            .to_string();
        let text = text.replace(
            &format!("for key `{}`", key.replace("].", "]")),
            &format!("for key `{key}`"),
        );
        let value = if key.is_empty() {
            file
        } else {
            format!("(in {file})")
        };
        if let Some(e) = Self::stray_env(&text, |v| std::env::var_os(v).is_some()) {
            return e;
        }
        let text = name_the_choices(&text);
        let fix = if text.contains("unknown value") || text.contains("unknown variant") {
            "use one of the values listed; `stylecam generate-config` prints every key with its default"
        } else {
            "correct the value's type or spelling; `stylecam generate-config` prints every key with its default"
        };
        Self::new(key, value, text, fix)
    }
}

/// The values a typed key accepts, from the enum's own deserializer.
fn choices<T: serde::de::DeserializeOwned>() -> String {
    use serde::de::IntoDeserializer;
    let probe: serde::de::value::StrDeserializer<serde::de::value::Error> =
        "\u{0}".into_deserializer();
    match T::deserialize(probe) {
        Err(e) => e
            .to_string()
            .split("expected ")
            .nth(1)
            .unwrap_or_default()
            .to_string(),
        Ok(_) => String::new(),
    }
}

/// The `config` crate reports an unknown enum value as "enum X does not
/// have variant constructor V"; say which values X takes instead.
fn name_the_choices(text: &str) -> String {
    let Some(rest) = text.split("enum ").nth(1) else {
        return text.to_string();
    };
    let Some((ty, rest)) = rest.split_once(" does not have variant constructor ") else {
        return text.to_string();
    };
    let value = rest.split(" for key").next().unwrap_or(rest);
    let expected = match ty {
        "BackendKind" => choices::<super::BackendKind>(),
        "SmoothingMethod" => choices::<super::SmoothingMethod>(),
        "MqttProtocol" => choices::<super::MqttProtocol>(),
        "WhenFull" => choices::<super::WhenFull>(),
        "SyntheticFormat" => choices::<super::SyntheticFormat>(),
        "RunsOn" => choices::<super::RunsOn>(),
        _ => return text.to_string(),
    };
    format!("unknown value {value:?}, expected {expected}")
}

/// A config that passed [`Config::validate`]. Only this type reaches `run`.
#[derive(Debug, Clone)]
pub struct Validated(Config);

impl std::ops::Deref for Validated {
    type Target = Config;
    fn deref(&self) -> &Config {
        &self.0
    }
}

impl Validated {
    pub fn into_inner(self) -> Config {
        self.0
    }
}

fn err(key: &str, value: impl std::fmt::Display, problem: &str, fix: &str) -> ConfigError {
    ConfigError::new(key, value.to_string(), problem, fix)
}

fn topic_safe(s: &str) -> bool {
    !s.is_empty() && !s.contains(['/', '+', '#', '\0']) && !s.starts_with('$')
}

impl Config {
    /// Checks every key without touching files, devices or sockets.
    pub fn validate(self) -> Result<Validated, ConfigError> {
        if !topic_safe(&self.device) {
            return Err(err(
                "device",
                format!("{:?}", self.device),
                "must be non-empty and contain none of / + # and not start with $ (it is an MQTT topic level)",
                "use letters, digits, - and _, e.g. device = \"store-12-entrance\"",
            ));
        }
        let m = &self.model;
        if m.threads > 256 {
            return Err(err(
                "model.threads",
                m.threads,
                "must be in 0..=256 (0 = the backend's default)",
                "set model.threads = 0",
            ));
        }
        if m.max_batch == 0 || m.max_batch > 64 {
            return Err(err(
                "model.max_batch",
                m.max_batch,
                "must be in 1..=64",
                "set model.max_batch = 4",
            ));
        }
        if m.max_wait_ms > 1000 {
            return Err(err(
                "model.max_wait_ms",
                m.max_wait_ms,
                "waiting over a second for a batch adds that much latency to every tag",
                "set model.max_wait_ms to 0..=1000 (10 is a good start)",
            ));
        }
        if m.bundle.as_os_str().is_empty() {
            return Err(err(
                "model.bundle",
                "\"\"",
                "is empty",
                "point model.bundle at a bundle directory",
            ));
        }
        if self.cameras.is_empty() {
            return Err(err(
                "cameras",
                "[]",
                "no camera is configured",
                "add a [[cameras]] table (see `stylecam generate-config`)",
            ));
        }
        let mut names = HashSet::new();
        for (i, c) in self.cameras.iter().enumerate() {
            validate_camera(i, c)?;
            if !names.insert(c.name.as_str()) {
                return Err(err(
                    &format!("cameras[{i}].name"),
                    format!("{:?}", c.name),
                    "two cameras have the same name",
                    "give each camera its own name",
                ));
            }
        }
        let p = &self.pipeline;
        if p.queue_depth == 0 {
            return Err(err(
                "pipeline.queue_depth",
                0,
                "must be at least 1",
                "set pipeline.queue_depth = 2",
            ));
        }
        let o = &self.outbox;
        if o.path.as_os_str().is_empty() {
            return Err(err(
                "outbox.path",
                "\"\"",
                "is empty",
                "set outbox.path = \"/var/lib/stylecam/outbox.redb\"",
            ));
        }
        if o.max_events == 0 {
            return Err(err(
                "outbox.max_events",
                0,
                "must be at least 1",
                "set outbox.max_events = 100000",
            ));
        }
        if o.max_bytes < 4096 {
            return Err(err(
                "outbox.max_bytes",
                o.max_bytes,
                "must be at least 4096 (a few events)",
                "set outbox.max_bytes = 67108864",
            ));
        }
        let s = &self.smoothing;
        if s.window == 0 || s.window > 100 {
            return Err(err(
                "smoothing.window",
                s.window,
                "must be in 1..=100",
                "set smoothing.window = 3",
            ));
        }
        if !(s.ema_alpha > 0.0 && s.ema_alpha <= 1.0) {
            return Err(err(
                "smoothing.ema_alpha",
                s.ema_alpha,
                "must be in (0, 1]",
                "set smoothing.ema_alpha = 0.5",
            ));
        }
        for (key, v) in [
            ("smoothing.enter_frames", s.enter_frames),
            ("smoothing.leave_frames", s.leave_frames),
        ] {
            if v == 0 || v > 1000 {
                return Err(err(
                    key,
                    v,
                    "must be in 1..=1000",
                    &format!("set {key} = 2"),
                ));
            }
        }
        let g = &self.gate;
        if !(g.threshold.is_finite() && (0.0..=255.0).contains(&g.threshold)) {
            return Err(err(
                "gate.threshold",
                g.threshold,
                "must be in 0..=255 (grey levels)",
                "set gate.threshold = 1.0, or gate.enabled = false",
            ));
        }
        if g.max_age_ms > 3_600_000 {
            return Err(err(
                "gate.max_age_ms",
                g.max_age_ms,
                "must be at most 3600000 (an hour)",
                "set gate.max_age_ms = 1000",
            ));
        }
        let q = &self.mqtt;
        if q.host.trim().is_empty() {
            return Err(err(
                "mqtt.host",
                "\"\"",
                "is empty",
                "set mqtt.host = \"127.0.0.1\" or your broker's name",
            ));
        }
        if q.port == 0 {
            return Err(err(
                "mqtt.port",
                0,
                "is not a usable port",
                "set mqtt.port = 1883",
            ));
        }
        if q.prefix.is_empty()
            || q.prefix.contains(['+', '#'])
            || q.prefix.starts_with('/')
            || q.prefix.ends_with('/')
        {
            return Err(err(
                "mqtt.prefix",
                format!("{:?}", q.prefix),
                "must be non-empty, without + or #, and not start or end with /",
                "set mqtt.prefix = \"stylecam\"",
            ));
        }
        if let Some(id) = &q.client_id {
            if id.is_empty() || id.len() > 128 {
                return Err(err(
                    "mqtt.client_id",
                    format!("{id:?}"),
                    "must be 1..=128 characters",
                    "remove the key to use stylecam-<device>",
                ));
            }
        }
        if q.password.is_some() && q.password_file.is_some() {
            return Err(err(
                "mqtt.password_file",
                q.password_file
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
                "both mqtt.password and mqtt.password_file are set",
                "keep one: the file, or STYLECAM_MQTT__PASSWORD in the environment",
            ));
        }
        if (q.password.is_some() || q.password_file.is_some())
            && q.username.as_deref().unwrap_or("").is_empty()
        {
            return Err(err(
                "mqtt.username",
                "(missing)",
                "a password is set but no username",
                "set mqtt.username to the broker login",
            ));
        }
        if q.health_interval_s == 0 || q.health_interval_s > 86_400 {
            return Err(err(
                "mqtt.health_interval_s",
                q.health_interval_s,
                "must be in 1..=86400",
                "set mqtt.health_interval_s = 60",
            ));
        }
        let loopback = q.host == "localhost"
            || q.host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if (q.password.is_some() || q.password_file.is_some())
            && !q.tls
            && !loopback
            && !q.allow_insecure
        {
            return Err(err(
                "mqtt.allow_insecure",
                "false",
                &format!(
                    "a broker password would cross the network in clear text (mqtt.tls = false, mqtt.host = {:?})",
                    q.host
                ),
                "set mqtt.tls = true (usually with mqtt.port = 8883), or mqtt.allow_insecure = true on a network you trust",
            ));
        }
        if q.client_cert_file.is_some() != q.client_key_file.is_some() {
            return Err(err(
                "mqtt.client_key_file",
                if q.client_key_file.is_some() {
                    "(set)"
                } else {
                    "(missing)"
                },
                "a client certificate needs both mqtt.client_cert_file and mqtt.client_key_file",
                "set both, or neither",
            ));
        }
        if !q.tls && (q.ca_file.is_some() || q.client_cert_file.is_some()) {
            return Err(err(
                "mqtt.tls",
                "false",
                "mqtt.ca_file or a client certificate is set but TLS is off",
                "set mqtt.tls = true (and usually mqtt.port = 8883)",
            ));
        }
        if !(4096..=MAX_MQTT_PACKET).contains(&q.max_packet_bytes) {
            return Err(err(
                "mqtt.max_packet_bytes",
                q.max_packet_bytes,
                "must be in 4096..=268435455 (MQTT's largest packet)",
                "set mqtt.max_packet_bytes = 1048576",
            ));
        }
        if q.keep_alive_s < 5 || q.keep_alive_s > 3600 {
            return Err(err(
                "mqtt.keep_alive_s",
                q.keep_alive_s,
                "must be in 5..=3600",
                "set mqtt.keep_alive_s = 30",
            ));
        }
        if !self.metrics.listen.is_empty()
            && self.metrics.listen.parse::<std::net::SocketAddr>().is_err()
        {
            return Err(err(
                "metrics.listen",
                format!("{:?}", self.metrics.listen),
                "is not a host:port address",
                "set metrics.listen = \"127.0.0.1:9464\" (or \"\" to turn /metrics and /healthz off)",
            ));
        }
        validate_http(&self.http)?;
        super::collect::validate(&self.collect, &self.teach, &self.cameras)?;
        let beyond_loopback = self
            .metrics
            .listen
            .parse::<std::net::SocketAddr>()
            .is_ok_and(|a| !a.ip().is_loopback());
        if beyond_loopback && self.http.token.is_none() && self.http.token_file.is_none() {
            return Err(err(
                "metrics.listen",
                format!("{:?}", self.metrics.listen),
                "serves the status page, /metrics and /healthz beyond this machine with no token",
                "set http.token_file = \"/etc/stylecam/http-token\" (a file holding a long random token, e.g. from `openssl rand -hex 16`) or STYLECAM_HTTP__TOKEN; or listen on 127.0.0.1 only",
            ));
        }
        Ok(Validated(self))
    }
}

/// `[http]`: the token's form, the listener's bounds, the host names.
fn validate_http(h: &super::HttpConfig) -> Result<(), ConfigError> {
    if let Some(t) = &h.token {
        if t.0.trim().is_empty() {
            return Err(err(
                "http.token",
                "\"\"",
                "is empty",
                "set a long random token (e.g. `openssl rand -hex 16`), or remove the key",
            ));
        }
        if t.0.trim() != t.0 {
            // The value itself is never quoted: it is a secret.
            return Err(err(
                "http.token",
                "(not shown)",
                "starts or ends with white space, which a browser's form or a scraper's header would not send back",
                "remove the spaces (e.g. `openssl rand -hex 16` gives a token without any)",
            ));
        }
    }
    if !(1..=10_000).contains(&h.max_connections) {
        return Err(err(
            "http.max_connections",
            h.max_connections,
            "must be in 1..=10000",
            "set http.max_connections = 256",
        ));
    }
    if !(1..=h.max_connections).contains(&h.max_connections_per_address) {
        return Err(err(
            "http.max_connections_per_address",
            h.max_connections_per_address,
            "must be in 1..=http.max_connections",
            "set http.max_connections_per_address = 32",
        ));
    }
    if !(100..=120_000).contains(&h.request_timeout_ms) {
        return Err(err(
            "http.request_timeout_ms",
            h.request_timeout_ms,
            "must be in 100..=120000",
            "set http.request_timeout_ms = 10000",
        ));
    }
    if !(1..=24 * 90).contains(&h.session_hours) {
        return Err(err(
            "http.session_hours",
            h.session_hours,
            "must be in 1..=2160 (90 days)",
            "set http.session_hours = 12",
        ));
    }
    for (i, name) in h.hosts.iter().enumerate() {
        let ok = !name.is_empty()
            && name.len() <= 253
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
        if !ok {
            return Err(err(
                &format!("http.hosts[{i}]"),
                format!("{name:?}"),
                "is not a host name (letters, digits, '-' and '.'; no port, no scheme)",
                "write the name as a browser shows it, e.g. hosts = [\"stylecam-7.store.example\"]",
            ));
        }
    }
    if h.token_on_loopback && h.token.is_none() && h.token_file.is_none() {
        return Err(err(
            "http.token_on_loopback",
            "true",
            "asks for a token on loopback, but none is set",
            "set http.token_file (or STYLECAM_HTTP__TOKEN), or set token_on_loopback = false",
        ));
    }
    Ok(())
}

fn validate_camera(i: usize, c: &CameraConfig) -> Result<(), ConfigError> {
    let key = |k: &str| format!("cameras[{i}].{k}");
    if !topic_safe(&c.name) {
        return Err(err(
            &key("name"),
            format!("{:?}", c.name),
            "must be non-empty and contain none of / + # (it is an MQTT topic level)",
            "use letters, digits, - and _",
        ));
    }
    if !(c.fps >= 0.0 && c.fps <= 1000.0) {
        return Err(err(
            &key("fps"),
            c.fps,
            "must be in 0..=1000 (0 = as fast as possible)",
            "set fps = 5.0",
        ));
    }
    match &c.source {
        SourceConfig::Files(f) => {
            if f.path.is_empty() {
                return Err(err(
                    &key("path"),
                    "(missing)",
                    "a files camera needs a folder or glob of images",
                    "set path = \"/var/lib/stylecam/photos\" or \"photos/*.jpg\"",
                ));
            }
            if f.repeat == 0 {
                return Err(err(
                    &key("repeat"),
                    0,
                    "must be at least 1",
                    "set repeat = 1",
                ));
            }
        }
        SourceConfig::Synthetic(s) => {
            if s.width < 16 || s.height < 16 || s.width > 8192 || s.height > 8192 {
                return Err(err(
                    &key("width"),
                    format!("{}x{}", s.width, s.height),
                    "frame size must be within 16..=8192 on each side",
                    "set width = 640 and height = 480",
                ));
            }
            if s.pixel_format != SyntheticFormat::Rgb && (s.width % 2 != 0 || s.height % 2 != 0) {
                return Err(err(
                    &key("width"),
                    format!("{}x{}", s.width, s.height),
                    "YUYV and NV12 need an even width and height",
                    "use even sizes such as 640x480",
                ));
            }
        }
        SourceConfig::V4l2(v) => {
            if v.device.is_empty() {
                return Err(err(
                    &key("device"),
                    "(missing)",
                    "a v4l2 camera needs its device node",
                    "set device = \"/dev/v4l/by-id/…\" (run `stylecam cameras` to list them)",
                ));
            }
            if v.formats.is_empty() {
                return Err(err(
                    &key("formats"),
                    "[]",
                    "needs at least one pixel format",
                    "set formats = [\"mjpeg\", \"yuyv\", \"nv12\"]",
                ));
            }
            if v.width < 16 || v.height < 16 || v.width > 8192 || v.height > 8192 {
                return Err(err(
                    &key("width"),
                    format!("{}x{}", v.width, v.height),
                    "frame size must be within 16..=8192 on each side",
                    "set width = 1280 and height = 720",
                ));
            }
            if !(2..=32).contains(&v.buffers) {
                return Err(err(
                    &key("buffers"),
                    v.buffers,
                    "must be in 2..=32",
                    "set buffers = 4",
                ));
            }
            if v.stall_frames == 0 {
                return Err(err(
                    &key("stall_frames"),
                    0,
                    "must be at least 1",
                    "set stall_frames = 15",
                ));
            }
            if v.backoff_min_ms == 0 || v.backoff_max_ms < v.backoff_min_ms {
                return Err(err(
                    &key("backoff_max_ms"),
                    format!("{}..{}", v.backoff_min_ms, v.backoff_max_ms),
                    "backoff_min_ms must be at least 1 and backoff_max_ms at least backoff_min_ms",
                    "set backoff_min_ms = 250 and backoff_max_ms = 10000",
                ));
            }
        }
    }
    validate_analysis(i, &c.analysis)
}

/// `analyze`, `regions`, `masks` and `[cameras.people]` of camera `i`.
fn validate_analysis(i: usize, a: &super::Analysis) -> Result<(), ConfigError> {
    use super::Shape;
    let key = |k: &str| format!("cameras[{i}].{k}");
    // A shape error already names its key and fix; split it for ConfigError.
    let shape_err = |k: String, problem: String| {
        let (what, fix) = problem
            .split_once(". Fix: ")
            .map(|(w, f)| (w.to_string(), f.to_string()))
            .unwrap_or((problem.clone(), "see docs/people-mode.md".into()));
        let what = what
            .strip_prefix(&k)
            .unwrap_or(&what)
            .trim_start_matches([' ', ':', '='])
            .to_string();
        err(&k, "", &what, &fix)
    };
    for (j, m) in a.masks.iter().enumerate() {
        let k = key(&format!("masks[{j}]"));
        m.check(&k).map_err(|p| shape_err(k.clone(), p))?;
    }
    let mut names = std::collections::BTreeSet::new();
    for (j, r) in a.regions.iter().enumerate() {
        if !topic_safe(&r.name) || !names.insert(r.name.as_str()) {
            return Err(err(
                &key(&format!("regions[{j}].name")),
                format!("{:?}", r.name),
                "must be non-empty, unique on the camera and contain none of / + #",
                "give each region its own name of letters, digits, - and _",
            ));
        }
        let k = key(&format!("regions[{j}].rect"));
        Shape::Rect(r.rect)
            .check(&k)
            .map_err(|p| shape_err(k.clone(), p))?;
    }
    if a.analyze == super::AnalyzeMode::Regions && a.regions.is_empty() {
        return Err(err(
            &key("analyze"),
            "\"regions\"",
            "regions mode needs at least one region",
            "add [[cameras.regions]] tables with name = \"mannequin\" and rect = [x0, y0, x1, y1] (fractions of the frame), or set analyze = \"frame\"",
        ));
    }
    let p = &a.people;
    let checks: [(&str, bool, &str, &str); 15] = [
        (
            "people.detect_every",
            (1..=100).contains(&p.detect_every),
            "must be in 1..=100",
            "set detect_every = 1 (every frame)",
        ),
        (
            "people.min_hits",
            (1..=100).contains(&p.min_hits),
            "must be in 1..=100",
            "set min_hits = 3",
        ),
        (
            "people.min_iou",
            p.min_iou > 0.0 && p.min_iou < 1.0,
            "must be between 0 and 1",
            "set min_iou = 0.2",
        ),
        (
            "people.low_score",
            (0.0..=1.0).contains(&p.low_score),
            "must be in 0..=1",
            "set low_score = 0.1",
        ),
        // A person keeps every view (a probability per class, 4 bytes)
        // until they leave, and each new view takes a crop through the
        // model and re-sorts all views per class for the median: 100 views
        // of a 100-class model is 40 KB and 10^4 values sorted per view
        // per person. 100 is over a minute and a half of one person at the
        // default schedule; 10 already agree with classifying every frame
        // for 98% of people (docs/benchmarks.md).
        (
            "people.max_classifications",
            (1..=100).contains(&p.max_classifications),
            "must be in 1..=100 (each view of a person is kept until they leave and sorted again with every new one)",
            "set max_classifications = 10",
        ),
        (
            "people.settle_after",
            p.settle_after <= p.max_classifications,
            "must be at most max_classifications (a person classified that often never settles)",
            "set settle_after = 2, or raise max_classifications",
        ),
        (
            "people.max_crops_per_frame",
            p.max_crops_per_frame >= 1,
            "must be at least 1",
            "set max_crops_per_frame = 8",
        ),
        (
            "people.margin",
            (0.0..=1.0).contains(&p.margin),
            "must be in 0..=1",
            "set margin = 0.1",
        ),
        (
            "people.regrow",
            p.regrow >= 1.0 && p.regrow.is_finite(),
            "must be 1 or more",
            "set regrow = 1.5",
        ),
        // A lost track coasts this long: listed in view and its `left`
        // sent that much later, and every coasting track joins each
        // frame's matching, which is cubic in tracks and detections (with
        // a person passing a second, a minute is 60 coasting tracks). Its
        // fading prediction is a guess long before a minute.
        (
            "people.max_missed_ms",
            (100..=60_000).contains(&p.max_missed_ms),
            "must be in 100..=60000 (a lost person stays in view, and in every frame's matching, this long)",
            "set max_missed_ms = 1500",
        ),
        (
            "people.detect_fps",
            p.detect_fps.is_finite() && (0.0..=60.0).contains(&p.detect_fps),
            "must be in 0..=60 (detector runs per second; 0 = every detect_every-th frame)",
            "set detect_fps = 5 (people walking are tracked between detector runs)",
        ),
        // Longer than a lost track may coast, a person who stood still
        // would be dropped between two looks.
        (
            "people.stationary_interval_ms",
            (100..=60_000).contains(&p.stationary_interval_ms),
            "must be in 100..=60000",
            "set stationary_interval_ms = 5000",
        ),
        // Each region is one detector run: the cost of a frame grows with it.
        (
            "people.max_regions",
            (1..=16).contains(&p.max_regions),
            "must be in 1..=16 (each region is one detector run)",
            "set max_regions = 4",
        ),
        (
            "people.whole_frame_at",
            (0.0..=1.0).contains(&p.whole_frame_at),
            "must be in 0..=1 (a share of the frame; 0 = always the whole frame)",
            "set whole_frame_at = 0 (the whole frame), or 0.6 to look at squares until they cover 60% of it",
        ),
        (
            "people.region_side",
            p.region_side == 0 || (32..=4096).contains(&p.region_side),
            "must be 0 (the detector's input size) or in 32..=4096 pixels",
            "set region_side = 0",
        ),
    ];
    for (k, ok, problem, fix) in checks {
        if !ok {
            let value = toml_value(p, k.trim_start_matches("people."));
            return Err(err(&key(k), value, problem, fix));
        }
    }
    let m = &a.motion;
    let checks: [(&str, bool, &str, &str); 5] = [
        (
            "motion.frame_height",
            (24..=720).contains(&m.frame_height),
            "must be in 24..=720 (pixels of the grey image motion is found on)",
            "set frame_height = 100",
        ),
        (
            "motion.threshold",
            m.threshold >= 1,
            "must be in 1..=255 (grey levels)",
            "set threshold = 30",
        ),
        (
            "motion.contour_area",
            m.contour_area >= 1,
            "must be at least 1 (pixels of the grey image)",
            "set contour_area = 10",
        ),
        (
            "motion.frame_alpha",
            m.frame_alpha > 0.0 && m.frame_alpha < 1.0,
            "must be between 0 and 1",
            "set frame_alpha = 0.01",
        ),
        (
            "motion.lightning_threshold",
            m.lightning_threshold > 0.0 && m.lightning_threshold <= 1.0,
            "must be above 0 and at most 1 (a share of the image)",
            "set lightning_threshold = 0.8",
        ),
    ];
    for (k, ok, problem, fix) in checks {
        if !ok {
            let value = toml_value(m, k.trim_start_matches("motion."));
            return Err(err(&key(k), value, problem, fix));
        }
    }
    Ok(())
}

/// `field`'s value in `table` as TOML writes it (for error messages).
fn toml_value<T: serde::Serialize>(table: &T, field: &str) -> String {
    toml::to_string(table)
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with(&format!("{field} =")))
                .map(|l| l.split_once('=').unwrap().1.trim().to_string())
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::super::*;

    fn default_config() -> Config {
        toml::from_str(DEFAULT_TOML).unwrap()
    }

    #[test]
    fn default_config_is_valid() {
        default_config().validate().unwrap();
    }

    #[test]
    fn http_keys_are_checked_and_a_token_with_spaces_is_refused_unquoted() {
        let key_of = |edit: &dyn Fn(&mut HttpConfig)| {
            let mut c = default_config();
            edit(&mut c.http);
            c.validate()
                .map(|_| ())
                .map_err(|e| (e.key.clone(), e.to_string()))
        };
        let (key, said) =
            key_of(&|h| h.token = Some(Secret(" padded-secret ".into()))).unwrap_err();
        assert_eq!(key, "http.token");
        assert!(
            said.contains("white space") && !said.contains("padded-secret"),
            "{said}"
        );
        assert_eq!(
            key_of(&|h| h.max_connections = 0).unwrap_err().0,
            "http.max_connections"
        );
        assert_eq!(
            key_of(&|h| h.max_connections_per_address = 1000)
                .unwrap_err()
                .0,
            "http.max_connections_per_address"
        );
        assert_eq!(
            key_of(&|h| h.request_timeout_ms = 1).unwrap_err().0,
            "http.request_timeout_ms"
        );
        assert_eq!(
            key_of(&|h| h.session_hours = 0).unwrap_err().0,
            "http.session_hours"
        );
        assert_eq!(
            key_of(&|h| h.hosts = vec!["http://box:80".into()])
                .unwrap_err()
                .0,
            "http.hosts[0]"
        );
        assert_eq!(
            key_of(&|h| h.token_on_loopback = true).unwrap_err().0,
            "http.token_on_loopback"
        );
        key_of(&|h| {
            h.token = Some(Secret("tok".into()));
            h.token_on_loopback = true;
            h.hosts = vec!["stylecam-7.store.example".into()];
        })
        .unwrap();
    }

    #[test]
    fn v4l2_cameras_are_checked_key_by_key() {
        let mut c = default_config();
        c.cameras = vec![CameraConfig::v4l2(
            "door",
            "/dev/v4l/by-id/usb-cam-video-index0",
        )];
        c.clone().validate().unwrap();
        let parsed: CameraConfig = toml::from_str(
            "name = 'door'\nsource = 'v4l2'\ndevice = '/dev/video0'\nformats = ['yuyv', 'mjpeg']\nwidth = 640\nheight = 480\nfps = 15.0",
        )
        .unwrap();
        match &parsed.source {
            SourceConfig::V4l2(v) => {
                assert_eq!(v.formats, [CameraFormat::Yuyv, CameraFormat::Mjpeg]);
                assert_eq!(
                    (v.width, v.height, v.buffers, v.stall_frames),
                    (640, 480, 4, 15)
                );
            }
            other => panic!("{other:?}"),
        }
        let e = toml::from_str::<CameraConfig>(
            "name = 'd'\nsource = 'v4l2'\ndevice = '/dev/video0'\npath = 'x'",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("unknown field `path`"),
            "a files key on a v4l2 camera: {e}"
        );
        let e = toml::from_str::<CameraConfig>(
            "name = 'd'\nsource = 'v4l2'\ndevice = 'x'\nformats = ['h264']",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("h264") && e.contains("mjpeg"), "{e}");
        for (change, key) in [
            (
                Box::new(|v: &mut V4l2Camera| v.device.clear()) as Box<dyn Fn(&mut V4l2Camera)>,
                "cameras[0].device",
            ),
            (
                Box::new(|v: &mut V4l2Camera| v.formats.clear()),
                "cameras[0].formats",
            ),
            (
                Box::new(|v: &mut V4l2Camera| v.buffers = 1),
                "cameras[0].buffers",
            ),
            (
                Box::new(|v: &mut V4l2Camera| v.width = 8),
                "cameras[0].width",
            ),
            (
                Box::new(|v: &mut V4l2Camera| v.stall_frames = 0),
                "cameras[0].stall_frames",
            ),
            (
                Box::new(|v: &mut V4l2Camera| v.backoff_max_ms = 10),
                "cameras[0].backoff_max_ms",
            ),
        ] {
            let mut bad = c.clone();
            match &mut bad.cameras[0].source {
                SourceConfig::V4l2(v) => change(v),
                _ => unreachable!(),
            }
            let e = bad.validate().unwrap_err().to_string();
            assert!(e.contains(key) && e.contains("Fix:"), "{key}: {e}");
        }
    }

    /// The people-mode keys whose cost grows with their value have a
    /// ceiling; the largest allowed value passes, one more names key,
    /// value and fix.
    #[test]
    fn people_costs_are_bounded() {
        type Set = fn(&mut PeopleConfig, u64);
        let cases: [(&str, u64, u64, Set); 2] = [
            ("max_classifications", 100, 1_000_000, |p, v| {
                p.max_classifications = v as u32;
            }),
            ("max_missed_ms", 60_000, 86_400_000, |p, v| {
                p.max_missed_ms = v
            }),
        ];
        for (key, most, huge, set) in cases {
            for (v, ok) in [(most, true), (most + 1, false), (huge, false)] {
                let mut c = default_config();
                c.cameras[0].analysis.analyze = AnalyzeMode::People;
                set(&mut c.cameras[0].analysis.people, v);
                match c.validate() {
                    Ok(_) => assert!(ok, "cameras[0].people.{key} = {v} was accepted"),
                    Err(e) => {
                        let e = e.to_string();
                        assert!(!ok, "{key} = {v} refused: {e}");
                        assert!(
                            e.contains(&format!("`cameras[0].people.{key}` = {v}"))
                                && e.contains(&format!("Fix: set {key} = ")),
                            "{e}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn analysis_keys_are_checked_by_name() {
        let cfg = |extra: &str| {
            let text = format!("[[cameras]]\nname = \"door\"\nsource = \"synthetic\"\n{extra}\n");
            let mut c = default_config();
            c.cameras =
                toml::from_str::<std::collections::BTreeMap<String, Vec<CameraConfig>>>(&text)
                    .map(|mut m| m.remove("cameras").unwrap())
                    .unwrap_or_else(|e| panic!("{e}"));
            c.validate().err().map(|e| e.to_string())
        };
        assert_eq!(
            cfg("masks = [[0.0, 0.0, 0.2, 1.0], [[0.5, 0.5], [0.9, 0.5], [0.7, 0.9]]]"),
            None
        );
        assert_eq!(cfg("analyze = \"people\""), None);
        let e = cfg("masks = [[0.0, 0.0, 1.2, 1.0]]").unwrap();
        assert!(
            e.contains("cameras[0].masks[0]") && e.contains("0..=1"),
            "{e}"
        );
        let e = cfg("analyze = \"regions\"").unwrap();
        assert!(e.contains("cameras[0].analyze"), "{e}");
        let e = cfg("[[cameras.regions]]\nname = \"table\"\nrect = [0.5, 0.5, 0.4, 0.9]").unwrap();
        assert!(
            e.contains("cameras[0].regions[0].rect") && e.contains("empty"),
            "{e}"
        );
        let e = cfg("[cameras.people]\nmin_iou = 1.5").unwrap();
        assert!(
            e.contains("cameras[0].people.min_iou") && e.contains("1.5"),
            "{e}"
        );
        let parsed = toml::from_str::<std::collections::BTreeMap<String, Vec<CameraConfig>>>(
            "[[cameras]]\nname = \"d\"\nsource = \"synthetic\"\nanalyse = \"people\"\n",
        );
        assert!(
            parsed.unwrap_err().to_string().contains("analyse"),
            "a misspelt key is an error"
        );
    }

    #[test]
    fn bad_values_name_key_and_fix() {
        let mut c = default_config();
        c.mqtt.port = 0;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("mqtt.port") && e.contains("Fix:"), "{e}");

        let mut c = default_config();
        c.cameras[0].files_mut().unwrap().path.clear();
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("cameras[0].path") && e.contains("Fix:"), "{e}");

        let mut c = default_config();
        c.cameras.push(c.cameras[0].clone());
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("cameras[1].name"), "{e}");

        let mut c = default_config();
        c.mqtt.password = Some(Secret("hunter2".into()));
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("mqtt.username") && !e.contains("hunter2"), "{e}");
        assert_eq!(format!("{:?}", Secret("hunter2".into())), "\"***\"");

        // A password in clear text to another host needs an explicit yes.
        let mut c = default_config();
        c.mqtt.username = Some("u".into());
        c.mqtt.password = Some(Secret("p".into()));
        c.mqtt.host = "broker.store.lan".into();
        let e = c.clone().validate().unwrap_err().to_string();
        assert!(
            e.contains("mqtt.allow_insecure") && e.contains("mqtt.tls = true"),
            "{e}"
        );
        c.mqtt.allow_insecure = true;
        c.clone().validate().unwrap();
        c.mqtt.allow_insecure = false;
        c.mqtt.host = "127.0.0.1".into();
        c.validate().unwrap();

        let mut c = default_config();
        c.device = "a/b".into();
        assert!(c.validate().unwrap_err().to_string().contains("`device`"));
    }

    #[test]
    fn unknown_key_is_reported_with_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "device = \"x\"\n[mqtt]\nprot = 1\n").unwrap();
        let e = load(Some(&p)).unwrap_err().to_string();
        assert!(e.contains("prot"), "{e}");
    }

    #[test]
    fn a_stray_environment_variable_is_named() {
        let text = "unknown field `plotfont`, expected one of `device`, `model`";
        let e = ConfigError::stray_env(text, |v| v == "STYLECAM_PLOTFONT")
            .unwrap()
            .to_string();
        assert!(
            e.contains("environment variable STYLECAM_PLOTFONT") && e.contains("unset it"),
            "{e}"
        );
        assert!(
            ConfigError::stray_env(text, |_| false).is_none(),
            "a file's typo stays the file's"
        );
    }

    /// An unknown value of a typed key fails while reading the file, with
    /// the key and the allowed values; nothing downstream sees a string.
    #[test]
    fn unknown_enum_values_name_key_and_choices() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        let base = DEFAULT_TOML;
        for (from, to, key, choices) in [
            (
                "backend = \"auto\"",
                "backend = \"gpu\"",
                "model.backend",
                "onnxruntime",
            ),
            (
                "method = \"median\"",
                "method = \"mean\"",
                "smoothing.method",
                "ema",
            ),
            (
                "protocol = \"3.1.1\"",
                "protocol = \"4\"",
                "mqtt.protocol",
                "3.1.1",
            ),
            (
                "when_full = \"drop_oldest\"",
                "when_full = \"panic\"",
                "outbox.when_full",
                "refuse_new",
            ),
            (
                "source = \"files\"",
                "source = \"usb\"",
                "cameras",
                "synthetic",
            ),
        ] {
            assert!(base.contains(from), "{from}");
            std::fs::write(&p, base.replacen(from, to, 1)).unwrap();
            let e = load(Some(&p)).unwrap_err().to_string();
            assert!(
                e.contains(key)
                    && e.contains(choices)
                    && e.contains("Fix: use one of the values listed"),
                "{key}: {e}"
            );
        }
        std::fs::write(
            &p,
            base.replacen("repeat = 6", "repeat = 6\nwidth = 640", 1),
        )
        .unwrap();
        let e = load(Some(&p)).unwrap_err().to_string();
        assert!(
            e.contains("width") && e.contains("cameras"),
            "a synthetic key on a files camera: {e}"
        );
    }

    #[test]
    fn wrong_type_names_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "[mqtt]\nport = \"high\"\n").unwrap();
        let e = load(Some(&p)).unwrap_err().to_string();
        assert!(e.contains("port"), "{e}");
    }
}
