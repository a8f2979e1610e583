//! The page's training, comparison and bundle-switch routes (`/api/teach…`,
//! `/api/bundles…`), over [`crate::collect::job`] and the bundle store
//! ([`crate::bundle::store`]):
//!
//! - `GET /api/teach`: the latest run (state, progress while it trains, log
//!   lines, and once finished the report: the new bundle beside the current
//!   one on the same held-out crops); `POST /api/teach/start`, `/stop`.
//! - `GET /api/bundles`: the store's bundles, which is current and which
//!   previous; `POST /api/bundles/switch {"run": id}` installs a finished
//!   run's bundle into the store and makes it current; `POST
//!   /api/bundles/rollback` makes `previous` current again. Either then asks
//!   the daemon to reload by raising SIGHUP on its own process: the very
//!   path `systemctl reload` and `stylecam bundle install` take, so the new
//!   pipeline is opened and checked completely before the old one stops,
//!   and a bundle that fails to open leaves the old one serving.
//!
//! The write check (token, Origin/Host, anti-forgery token, rate, a log line
//! per write) ran before `route`; each write here logs what it did.

use super::write::refusal;
use super::{Request, Response, WriteCtx};
use crate::bundle::store::{Store, StoreError, Switch, CURRENT};
use crate::collect::job::{self, JobError};
use crate::collect::labels;
use crate::styles::taxonomy::{Class, Taxonomy};
use serde_json::json;
use std::path::{Path, PathBuf};

pub(super) async fn route(req: &Request, ctx: &WriteCtx) -> Response {
    let post = req.method == "POST";
    let ctx = ctx.clone();
    let answer = match (post, req.path.as_str()) {
        (false, "/api/teach") => return teach_state(&ctx),
        (false, "/api/bundles") => blocking(move || bundles(&ctx)).await,
        (true, "/api/teach/start") => blocking(move || start(&ctx)).await,
        (true, "/api/teach/stop") => stop(&ctx),
        (true, "/api/bundles/switch") => {
            let run = serde_json::from_slice::<serde_json::Value>(&req.body)
                .ok()
                .and_then(|v| v["run"].as_str().map(str::to_string));
            let Some(run) = run else {
                return refusal(
                    "400 Bad Request",
                    "the switch names no run",
                    "send {\"run\": \"<id>\"} with the id GET /api/teach gives",
                );
            };
            blocking(move || switch(&ctx, &run)).await
        }
        (true, "/api/bundles/rollback") => blocking(move || rollback(&ctx)).await,
        (false, "/api/teach/start" | "/api/teach/stop")
        | (false, "/api/bundles/switch" | "/api/bundles/rollback")
        | (true, "/api/teach" | "/api/bundles") => {
            let mut r = Response::text(
                "405 Method Not Allowed",
                "this route takes POST for a write, GET /api/teach or /api/bundles to read\n",
            );
            r.extra = if post {
                "Allow: GET, HEAD\r\n"
            } else {
                "Allow: POST\r\n"
            }
            .into();
            return r;
        }
        _ => return Response::text("404 Not Found", "no such teach route\n"),
    };
    answer
}

/// Runs `f` (file system, bundle loading) off the listener's threads.
async fn blocking(f: impl FnOnce() -> Response + Send + 'static) -> Response {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Response::text("500 Internal Server Error", &format!("{e}\n")))
}

fn teach_state(ctx: &WriteCtx) -> Response {
    Response::json(&json!({
        "running": job::running(),
        "run": job::latest(&ctx.teach_dir),
        "labels": ctx.teach_dir.join("labels.csv").is_file(),
    }))
}

fn job_refusal(e: &JobError) -> Response {
    let status = match e {
        JobError::Busy(_) | JobError::NotFinished { .. } => "409 Conflict",
        JobError::NoRun(_) => "404 Not Found",
        JobError::Io { .. } => "500 Internal Server Error",
    };
    let fix = match e {
        JobError::Busy(_) => "wait for it to finish, or stop it (POST /api/teach/stop)",
        JobError::NoRun(_) | JobError::NotFinished { .. } => {
            "switch to a finished run: GET /api/teach shows the latest"
        }
        JobError::Io { .. } => "check that teach.dir is writable by the daemon's user",
    };
    refusal(status, &e.to_string(), fix)
}

fn start(ctx: &WriteCtx) -> Response {
    let labels = ctx.teach_dir.join("labels.csv");
    if !labels.is_file() {
        return refusal(
            "409 Conflict",
            &format!(
                "{} does not exist: nothing is labelled yet",
                labels.display()
            ),
            "label crops in the Labels view (or upload a labels CSV) first",
        );
    }
    let features = match features_bundle(ctx) {
        Ok(f) => f,
        Err(e) => return refusal("500 Internal Server Error", &e, "fix the config file"),
    };
    let taxonomy = match taxonomy(ctx) {
        Ok(t) => t,
        Err(p) => return refusal(status_line(p.status), &p.error, &p.fix),
    };
    let inputs = job::Inputs {
        crops: ctx.collect_dir.clone(),
        teach: ctx.teach_dir.clone(),
        taxonomy,
        features,
        current: absolute(&ctx.bundle),
    };
    match job::start(inputs) {
        Ok(id) => {
            log::info!("page write by {}: started training run {id}", ctx.who);
            Response::json(&json!({"started": id}))
        }
        Err(e) => job_refusal(&e),
    }
}

fn status_line(code: u16) -> &'static str {
    match code {
        400 => "400 Bad Request",
        404 => "404 Not Found",
        409 => "409 Conflict",
        _ => "500 Internal Server Error",
    }
}

fn stop(ctx: &WriteCtx) -> Response {
    match job::stop() {
        Some(id) => {
            log::info!("page write by {}: asked training run {id} to stop", ctx.who);
            Response::json(&json!({"stopping": id}))
        }
        None => refusal(
            "409 Conflict",
            "no training is running",
            "nothing to stop; GET /api/teach shows the latest run",
        ),
    }
}

/// `teach.features` (read from the daemon's config file: the page's
/// context carries the paths the label routes need), else `model.bundle`.
fn features_bundle(ctx: &WriteCtx) -> Result<PathBuf, String> {
    let Some(path) = &ctx.config else {
        return Ok(absolute(&ctx.bundle));
    };
    let cfg = crate::config::load(Some(path)).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(absolute(
        cfg.teach.features.as_deref().unwrap_or(&ctx.bundle),
    ))
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// The label store's taxonomy ([`crate::collect::labels::Store::taxonomy`]:
/// `taxonomy.json` written on the page, else `teach.classes`, else the
/// current bundle's classes), with the bundle's names where it has them.
fn taxonomy(ctx: &WriteCtx) -> Result<Taxonomy, labels::Problem> {
    let store = labels::Store::new(&ctx.collect_dir, &ctx.teach_dir);
    let (classes, _) = store.taxonomy(&ctx.classes, &ctx.bundle)?;
    let named = labels::manifest(&ctx.bundle)
        .map(|m| m.classes)
        .unwrap_or_default();
    Ok(Taxonomy(
        classes
            .iter()
            .map(|c| {
                named
                    .0
                    .iter()
                    .find(|n| n.id == c.id)
                    .cloned()
                    .unwrap_or_else(|| Class {
                        id: c.id.clone(),
                        en: c.en.clone(),
                        zh: String::new(),
                    })
            })
            .collect(),
    ))
}

/// The store `model.bundle` is the `current` link of, or the refusal that
/// says how to make it one.
fn store_of(ctx: &WriteCtx) -> Result<Store, Response> {
    let bundle = absolute(&ctx.bundle);
    let is_link = std::fs::symlink_metadata(&bundle).is_ok_and(|m| m.file_type().is_symlink());
    match bundle.parent() {
        Some(root) if is_link && bundle.file_name().is_some_and(|n| n == CURRENT) => {
            Ok(Store::new(root))
        }
        _ => Err(refusal(
            "409 Conflict",
            &format!(
                "model.bundle = {} is not a bundle store's `current` link, so the page cannot switch bundles",
                bundle.display()
            ),
            "model.bundle must be the bundle store's `current` link: `stylecam bundle install <dir>` once, then point model.bundle at /var/lib/stylecam/bundles/current",
        )),
    }
}

fn bundles(ctx: &WriteCtx) -> Response {
    let store = match store_of(ctx) {
        Ok(s) => s,
        Err(refused) => {
            let why: serde_json::Value = serde_json::from_slice(&refused.body).unwrap_or_default();
            return Response::json(&json!({
                "managed": false, "error": why["error"], "fix": why["fix"], "bundles": [],
            }));
        }
    };
    match store.list() {
        Ok(list) => Response::json(&json!({
            "managed": true,
            "store": store.root(),
            "current": store.target(CURRENT),
            "previous": store.target(crate::bundle::store::PREVIOUS),
            "bundles": list.iter().map(|e| json!({
                "id": e.id,
                "model": e.model.as_ref().ok(),
                "error": e.model.as_ref().err(),
                "current": e.current,
                "previous": e.previous,
            })).collect::<Vec<_>>(),
        })),
        Err(e) => store_refusal(&e),
    }
}

fn store_refusal(e: &StoreError) -> Response {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text += &format!(": {s}");
        source = s.source();
    }
    let status = match e {
        StoreError::Busy { .. } | StoreError::NoPrevious { .. } => "409 Conflict",
        _ => "500 Internal Server Error",
    };
    refusal(
        status,
        &text,
        "the running bundle is unchanged; see the daemon's log",
    )
}

fn switch(ctx: &WriteCtx, run: &str) -> Response {
    let store = match store_of(ctx) {
        Ok(s) => s,
        Err(refused) => return refused,
    };
    let (dir, report) = match job::finished_bundle(&ctx.teach_dir, run) {
        Ok(found) => found,
        Err(e) => return job_refusal(&e),
    };
    match store.install(&dir, None) {
        Ok(done) => {
            log::info!(
                "page write by {}: switched the bundle store's current to {} ({}, training run {run}); previous: {}",
                ctx.who,
                done.current,
                done.model,
                done.previous.as_deref().unwrap_or("none")
            );
            switched(ctx, &done, json!({"run": run, "classes": report.classes}))
        }
        Err(e) => store_refusal(&e),
    }
}

fn rollback(ctx: &WriteCtx) -> Response {
    let store = match store_of(ctx) {
        Ok(s) => s,
        Err(refused) => return refused,
    };
    match store.rollback() {
        Ok(done) => {
            log::info!(
                "page write by {}: rolled the bundle store back to {} ({}); previous: {}",
                ctx.who,
                done.current,
                done.model,
                done.previous.as_deref().unwrap_or("none")
            );
            switched(ctx, &done, json!({}))
        }
        Err(e) => store_refusal(&e),
    }
}

fn switched(ctx: &WriteCtx, done: &Switch, mut extra: serde_json::Value) -> Response {
    let reload = reload(ctx, done);
    extra["current"] = json!(done.current);
    extra["model"] = json!(done.model);
    extra["previous"] = json!(done.previous);
    extra["unchanged"] = json!(done.unchanged);
    extra["reload"] = json!(reload);
    Response::json(&extra)
}

/// Asks this daemon to reload (SIGHUP on its own process: the one reload
/// path). A daemon run without a config file (the demo) has no SIGHUP
/// handler, and the signal would end it: it is told to restart instead.
fn reload(ctx: &WriteCtx, done: &Switch) -> String {
    if done.unchanged {
        return "the store's current already named this bundle: nothing to reload".into();
    }
    if ctx.config.is_none() {
        return format!(
            "this daemon runs without a config file and cannot reload: restart it to serve {}",
            done.model
        );
    }
    // SAFETY: kill(2) on our own pid with a signal the daemon handles.
    if unsafe { libc::kill(libc::getpid(), libc::SIGHUP) } != 0 {
        let e = std::io::Error::last_os_error();
        log::error!("switch: cannot signal the reload: {e}");
        return format!(
            "the reload could not be signalled ({e}): `systemctl reload stylecam` serves {}",
            done.model
        );
    }
    format!(
        "reload requested: the daemon serves {} once it has opened and checked it (the Overview's model shows it; a failed reload keeps the old one and says why)",
        done.model
    )
}
