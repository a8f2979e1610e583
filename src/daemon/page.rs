//! The status page: its embedded assets and the JSON they read. Every
//! route here reads (the region editor runs in the browser and prints TOML
//! to paste; the login form sets a cookie in the browser only); the page's
//! writes are the label and teach routes, behind the write check
//! (`http::write`). `GET /` and `/api/status` start the browser's page
//! session, and `/api/status` gives the page its anti-forgery token.

use super::http::guard::{Guard, Verdict};
use super::http::{form_pairs, Access, Request, Response};
use crate::telemetry::view::{PageInfo, Picture};
use crate::telemetry::Metrics;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

const INDEX: &str = include_str!("../../assets/page/index.html");
const SCRIPT: &str = include_str!("../../assets/page/app.js");
const STYLE: &str = include_str!("../../assets/page/app.css");
const LABELS_SCRIPT: &str = include_str!("../../assets/page/labels.js");
const TEACH_SCRIPT: &str = include_str!("../../assets/page/teach.js");

/// The page's weight: its three assets, bytes (without pictures and JSON).
pub fn weight() -> usize {
    INDEX.len() + SCRIPT.len() + STYLE.len()
}

pub(super) async fn route(req: &Request, metrics: &Arc<Metrics>, access: &Access) -> Response {
    match req.path.as_str() {
        "/" | "/index.html" => {
            // Every browser gets a page session (the writes' anti-forgery
            // token, `super::http::write`) on its first look.
            let mut r = Response::new("200 OK", "text/html; charset=utf-8", INDEX);
            if let (_, Some(cookie)) = access.writes.page_session(req) {
                r.extra.push_str(&cookie);
            }
            r
        }
        "/app.js" => Response::new("200 OK", "text/javascript; charset=utf-8", SCRIPT),
        "/labels.js" => Response::new("200 OK", "text/javascript; charset=utf-8", LABELS_SCRIPT),
        "/teach.js" => Response::new("200 OK", "text/javascript; charset=utf-8", TEACH_SCRIPT),
        "/app.css" => Response::new("200 OK", "text/css; charset=utf-8", STYLE),
        // Browsers ask for it on their own; answering keeps the log clean.
        "/favicon.ico" => Response::new("204 No Content", "image/x-icon", ""),
        "/api/status" => {
            let mut v = status(metrics, access);
            // The page shows "Sign out" only to a signed-in browser.
            v["signed_in"] = json!(req.cookie().is_some_and(|c| access.guard.signed_in(c)));
            // The page session's anti-forgery token: the page sends it back
            // in X-Stylecam-Csrf with each write.
            let (csrf, cookie) = access.writes.page_session(req);
            v["csrf"] = json!(csrf);
            let mut r = Response::json(&v);
            if let Some(cookie) = cookie {
                r.extra.push_str(&cookie);
            }
            r
        }
        "/api/camera" => match req.query("name").and_then(|n| camera(metrics, n)) {
            Some(v) => Response::json(&v),
            None => Response::text("404 Not Found", "no such camera\n"),
        },
        "/api/snapshot" => snapshot(req, metrics, access).await,
        "/api/config" => config(metrics, access).await,
        _ => Response::text(
            "404 Not Found",
            "try /, /metrics or /healthz (and /api/status, /api/camera?name=…, /api/snapshot?camera=…, /api/config)\n",
        ),
    }
}

/// `GET /login`: the form; `POST /login`: the token checked, a session
/// started (its random id in the cookie; never the token).
pub(super) fn login(req: &Request, ip: std::net::IpAddr, guard: &Guard) -> Response {
    if req.method != "POST" {
        return if guard.has_token() {
            login_form(None)
        } else {
            redirect("/")
        };
    }
    let body = String::from_utf8_lossy(&req.body);
    let given = form_pairs(&body)
        .into_iter()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v)
        .unwrap_or_default();
    match guard.sign_in(ip, given.trim()) {
        Ok(session) => {
            let mut r = redirect("/");
            r.extra.push_str(&format!(
                "Set-Cookie: {}={session}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}\r\n",
                super::http::COOKIE,
                guard.session_ttl().as_secs()
            ));
            r
        }
        // No token configured: nothing to sign in to.
        Err(Verdict::Allowed) => redirect("/"),
        Err(Verdict::Blocked(left)) => too_many(left),
        Err(Verdict::Refused) => {
            let mut r = login_form(Some("That token is not the one in http.token."));
            r.status = "401 Unauthorized";
            r
        }
    }
}

/// `POST /logout`: the session ends here and in the browser.
pub(super) fn logout(req: &Request, guard: &Guard) -> Response {
    if let Some(session) = req.cookie() {
        if guard.sign_out(session) {
            log::info!("http: a page signed out");
        }
    }
    let mut r = redirect(if guard.has_token() { "/login" } else { "/" });
    r.extra.push_str(&format!(
        "Set-Cookie: {}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0\r\n",
        super::http::COOKIE
    ));
    r
}

/// Too many wrong tokens from this address lately.
pub(super) fn too_many(left: Duration) -> Response {
    let mut r = Response::text(
        "429 Too Many Requests",
        "too many wrong tokens from this address: wait a minute\n",
    );
    r.extra = format!("Retry-After: {}\r\n", left.as_secs().max(1));
    r
}

/// A request from beyond loopback without the token.
pub(super) fn refused(req: &Request) -> Response {
    let wants_html = req
        .headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("accept") && v.contains("text/html"));
    let mut r = if wants_html {
        login_form(None)
    } else {
        Response::text(
            "401 Unauthorized",
            "a token is required from beyond this machine: send `Authorization: Bearer <http.token>`\n",
        )
    };
    r.status = "401 Unauthorized";
    r.extra
        .push_str("WWW-Authenticate: Bearer realm=\"stylecam\"\r\n");
    r
}

fn redirect(to: &str) -> Response {
    let mut r = Response::text("303 See Other", "");
    r.extra = format!("Location: {to}\r\n");
    r
}

fn login_form(problem: Option<&str>) -> Response {
    let problem = problem
        .map(|p| format!("<p class=\"problem\" role=\"alert\">{p}</p>"))
        .unwrap_or_default();
    Response::new(
        "200 OK",
        "text/html; charset=utf-8",
        format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>stylecam: sign in</title><link rel=\"stylesheet\" href=\"/app.css\"></head><body><main class=\"login\"><h1>stylecam</h1><p>This box's status page needs its token (<code>http.token</code> or the file <code>http.token_file</code> names).</p>{problem}<form method=\"post\" action=\"/login\"><label for=\"token\">Token</label><input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"current-password\" required><button type=\"submit\">Sign in</button></form></main></body></html>"
        ),
    )
}

fn camera_names(info: &PageInfo) -> impl Iterator<Item = &str> {
    info.cameras.iter().map(|(n, _, _)| n.as_str())
}

/// Everything the overview shows, in one read.
pub fn status(metrics: &Metrics, access: &Access) -> serde_json::Value {
    let info = metrics.page_info();
    let snap = metrics.snapshot();
    let cameras: Vec<_> = info
        .cameras
        .iter()
        .map(|(name, mode, source)| {
            let c = snap.cameras.iter().find(|c| &c.name == name);
            let view = &metrics.camera(name).view;
            let picture = view.picture();
            let subjects: Vec<_> = view
                .subjects()
                .into_iter()
                .map(|(id, s)| {
                    json!({
                        "id": id,
                        "kind": s.kind,
                        "tags": s.tags.iter().map(|&t| class_id(&info, t)).collect::<Vec<_>>(),
                        "views": s.views,
                        "at": s.at,
                    })
                })
                .collect();
            json!({
                "name": name,
                "mode": mode,
                "source": source,
                "state": c.map(|c| c.state.as_str()).filter(|s| !s.is_empty()).unwrap_or("starting"),
                "fps": c.map_or(0.0, |c| c.fps),
                "captured": c.map_or(0, |c| c.captured),
                "dropped": c.map_or(0, |c| c.dropped),
                "skipped": c.map_or(0, |c| c.skipped),
                "reconnects": c.map_or(0, |c| c.reconnects),
                "connect_failures": c.map_or(0, |c| c.connect_failures),
                "last_error": c.and_then(|c| c.last_error.clone()),
                // People mode: motion and the detector (as in the health message).
                "motion": c.and_then(|c| c.motion.clone()),
                "subjects": subjects,
                "outlines": picture.as_ref().map(|p| p.outlines.clone()).unwrap_or_default(),
                "picture_at": picture.as_ref().map(|p| crate::publish::payload::timestamp(p.captured_at)),
            })
        })
        .collect();
    let events: Vec<_> = metrics
        .recent_events()
        .into_iter()
        .rev()
        .map(|(topic, payload)| {
            let payload: serde_json::Value =
                serde_json::from_str(&payload).unwrap_or(serde_json::Value::String(payload));
            json!({"topic": topic, "event": payload})
        })
        .collect();
    json!({
        "device": info.device,
        "version": env!("CARGO_PKG_VERSION"),
        "model": snap.pipeline.model,
        "backend": snap.pipeline.backend,
        "precision": info.precision,
        "engine": info.engine,
        "snapshots": access.snapshots(),
        "delivery": {
            "connected": metrics.mqtt_connected(),
            "backlog": snap.outbox_pending,
            "acked": snap.events_acked,
            "dropped": snap.events_dropped,
            "last_ack_s": metrics.last_ack_age().map(|d| d.as_secs()),
            // Messages the broker refused (MQTT 5 reason codes), by reason.
            "refused": snap.mqtt_refused,
            "last_refusal_s": metrics.last_refusal_age().map(|d| d.as_secs()),
            "dropped_by_reason": snap.dropped_by_reason,
        },
        "frames": {"captured": snap.frames_captured, "inferred": snap.frames_inferred},
        "events_decided": snap.events,
        "reload": {
            "reloads": snap.pipeline.reloads,
            "failures": snap.pipeline.reload_failures,
            "last_error": snap.pipeline.last_reload_error,
        },
        "cameras": cameras,
        "events": events,
        "collect": collect_status(metrics),
    })
}

/// Crop collection ([collect]): on or off, what the folder holds, and
/// whether a full disk has paused it.
fn collect_status(metrics: &Metrics) -> serde_json::Value {
    let c = metrics.collect().snapshot();
    json!({
        "enabled": c.enabled,
        "crops": c.crops,
        "bytes": c.bytes,
        "oldest": c.oldest.map(crate::publish::payload::timestamp),
        "paused": c.paused,
    })
}

fn class_id(info: &PageInfo, i: usize) -> String {
    info.classes
        .get(i)
        .map(|(id, _)| id.clone())
        .unwrap_or_else(|| format!("class {i}"))
}

/// A camera's detail: each subject's latest decision with the decision's
/// parameters, for the chart.
pub fn camera(metrics: &Metrics, name: &str) -> Option<serde_json::Value> {
    let info = metrics.page_info();
    camera_names(&info).find(|n| *n == name)?;
    let subjects = metrics.camera(name).view.subjects();
    Some(json!({
        "name": name,
        "classes": info.classes,
        "thresholds": info.thresholds,
        "second_thresholds": info.second_thresholds,
        "alpha": info.alpha,
        "min_labels": info.min_labels,
        "max_labels": info.max_labels,
        "subjects": subjects,
    }))
}

/// The camera's latest picture as JPEG: asked for, then waited on (up to
/// 1.5 s) when the one held is older than two seconds.
async fn snapshot(req: &Request, metrics: &Arc<Metrics>, access: &Access) -> Response {
    if !access.snapshots() {
        return Response::text(
            "404 Not Found",
            "snapshots are off (http.snapshots = false)\n",
        );
    }
    let info = metrics.page_info();
    let Some(name) = req
        .query("camera")
        .filter(|n| camera_names(&info).any(|c| c == *n))
    else {
        return Response::text("404 Not Found", "no such camera\n");
    };
    let stats = metrics.camera(name);
    stats.view.want_snapshot();
    let fresh = |p: &Arc<Picture>| {
        p.captured_at
            .elapsed()
            .is_ok_and(|age| age < Duration::from_secs(2))
    };
    let start = Instant::now();
    let mut picture = stats.view.picture();
    while !picture.as_ref().is_some_and(fresh) && start.elapsed() < Duration::from_millis(1500) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        picture = stats.view.picture();
    }
    let Some(picture) = picture else {
        return Response::text("503 Service Unavailable", "no frame from this camera yet\n");
    };
    let jpeg = match picture.jpeg.get() {
        Some(jpeg) => jpeg.clone(),
        None => encoded(picture).await,
    };
    Response::new("200 OK", "image/jpeg", jpeg)
}

/// The widest snapshot encoded; a larger frame is scaled down first (the
/// page shows tiles, and a 1080p encode would cost ~4× a 640-wide one).
pub const SNAPSHOT_WIDTH: u32 = 640;

/// Encodes on the page's own thread, at the lowest CPU priority: while the
/// pipeline keeps the cores busy, the page waits instead of taking frames
/// from it.
async fn encoded(picture: Arc<Picture>) -> Vec<u8> {
    type Job = (Arc<Picture>, tokio::sync::oneshot::Sender<Vec<u8>>);
    static ENCODER: std::sync::OnceLock<std::sync::Mutex<std::sync::mpsc::Sender<Job>>> =
        std::sync::OnceLock::new();
    let jobs = ENCODER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let spawned = std::thread::Builder::new()
            .name("page-jpeg".into())
            .spawn(move || {
                // SAFETY: setpriority on the calling thread (who = 0 is this
                // thread's id on Linux); no memory is touched.
                unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 19) };
                for (picture, reply) in rx {
                    let jpeg = picture.jpeg.get_or_init(|| encode_jpeg(&picture)).clone();
                    let _ = reply.send(jpeg);
                }
            });
        if let Err(e) = spawned {
            log::warn!("status page: cannot start its encoder thread: {e}");
        }
        std::sync::Mutex::new(tx)
    });
    let (tx, rx) = tokio::sync::oneshot::channel();
    if jobs
        .lock()
        .expect("page encoder")
        .send((picture, tx))
        .is_err()
    {
        return Vec::new();
    }
    rx.await.unwrap_or_default()
}

/// JPEG at quality 80, at most [`SNAPSHOT_WIDTH`] wide (in memory only).
pub fn encode_jpeg(p: &Picture) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 80);
    let small;
    let (rgb, w, h) = if p.width > SNAPSHOT_WIDTH {
        let h = (p.height as u64 * SNAPSHOT_WIDTH as u64 / p.width as u64).max(1) as u32;
        let Some(full) = image::RgbImage::from_raw(p.width, p.height, p.rgb.clone()) else {
            return out;
        };
        small = image::imageops::thumbnail(&full, SNAPSHOT_WIDTH, h);
        (small.as_raw().as_slice(), SNAPSHOT_WIDTH, h)
    } else {
        (p.rgb.as_slice(), p.width, p.height)
    };
    if let Err(e) = encoder.encode(rgb, w, h, image::ExtendedColorType::Rgb8) {
        log::warn!("status page: cannot encode a snapshot: {e}");
    }
    out
}

/// The running config (secrets replaced) and `check-config` on the file
/// (once per change of the files it reads: [`super::http::check`]).
async fn config(metrics: &Metrics, access: &Access) -> Response {
    let info = metrics.page_info();
    let check = match &access.check {
        Some(check) => match check.result().await {
            Ok(summary) => json!({"ok": true, "message": summary}),
            Err(e) => json!({"ok": false, "message": e}),
        },
        None => {
            json!({"ok": true, "message": "no config file: the daemon runs on the embedded default"})
        }
    };
    Response::json(&json!({"config": info.config, "check": check}))
}

/// What the page shows of a pipeline about to serve `bundle` on `backend`.
pub fn info(
    cfg: &crate::config::Config,
    bundle: &crate::bundle::Bundle,
    backend: &str,
) -> PageInfo {
    let d = bundle.decision();
    let mut shown = cfg.clone();
    let hide = |s: &mut Option<crate::config::Secret>| {
        if let Some(s) = s {
            s.0 = "***".into();
        }
    };
    hide(&mut shown.mqtt.password);
    hide(&mut shown.http.token);
    let config = toml::to_string(&shown)
        .unwrap_or_else(|e| format!("# the running config cannot be shown: {e}\n"));
    PageInfo {
        device: cfg.device.clone(),
        cameras: cfg
            .cameras
            .iter()
            .map(|c| {
                (
                    c.name.clone(),
                    c.analysis.analyze.as_str().to_string(),
                    c.source.kind().to_string(),
                )
            })
            .collect(),
        classes: bundle
            .manifest
            .classes
            .0
            .iter()
            .map(|c| (c.id.clone(), c.en.clone()))
            .collect(),
        thresholds: d.thresholds,
        second_thresholds: d.second_thresholds,
        alpha: d.alpha,
        min_labels: d.min_labels,
        max_labels: d.max_labels,
        precision: cfg.model.precision.as_str().into(),
        engine: if backend.starts_with("tensorrt") {
            cfg.model.engines.display().to_string()
        } else {
            String::new()
        },
        config,
        snapshots: cfg.http.snapshots,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_frame_is_encoded_at_most_640_wide_and_a_small_one_as_it_is() {
        for ((w, h), want) in [((1280, 720), (640, 360)), ((320, 240), (320, 240))] {
            let p = Picture {
                rgb: vec![128; (w * h * 3) as usize],
                width: w,
                height: h,
                captured_at: std::time::SystemTime::now(),
                outlines: vec![],
                jpeg: Default::default(),
            };
            let jpeg = encode_jpeg(&p);
            let img = image::load_from_memory(&jpeg).unwrap();
            assert_eq!((img.width(), img.height()), want);
        }
    }
}
