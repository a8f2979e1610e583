//! The page's label routes (`/api/labels…`): HTTP around
//! [`crate::collect::labels`], which does all the reading and writing.
//!
//! - `GET /api/labels?show=unlabelled|labelled|all&class=ID&camera=NAME&offset=N&limit=N`:
//!   a page of crops, least sure first, with the taxonomy and counts.
//! - `GET /api/labels/crop/<name>.png`: a crop's picture (names checked
//!   strictly: no path leaves `collect.dir`).
//! - `POST /api/labels/save {image, classes}`, `POST /api/labels/discard
//!   {image}`, `POST /api/labels/taxonomy {classes: [{id, en}] | [id]}`.
//! - `GET /api/labels/download`: the labelled set as a tar, streamed.
//! - `POST /api/labels/upload?name=FILE` with a labels CSV as the body
//!   (2 MiB at most): `{taken}` or 400 with `{problems: [{file, line,
//!   problem, fix}]}`, nothing written.
//!
//! The POSTs have passed the write check ([`super::write`]) before they
//! get here.

use super::{Request, Response, WriteCtx};
use crate::collect::labels::{self as store, ClassDef, Filter, Problem, Store};
use serde_json::json;

/// Problems of an upload listed at most.
const MAX_PROBLEMS: usize = 200;

fn status(code: u16) -> &'static str {
    match code {
        400 => "400 Bad Request",
        404 => "404 Not Found",
        409 => "409 Conflict",
        _ => "500 Internal Server Error",
    }
}

fn problem(p: Problem) -> Response {
    if p.status >= 500 {
        log::warn!("labels: {} ({})", p.error, p.fix);
    }
    let mut r = Response::json(&json!({"error": p.error, "fix": p.fix}));
    r.status = status(p.status);
    r
}

fn bad(error: &str, fix: &str) -> Response {
    problem(Problem::new(400, error, fix))
}

/// Runs the store's blocking work off the runtime.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .expect("a label store task panicked")
}

pub(super) async fn route(req: &Request, ctx: &WriteCtx) -> Response {
    let s = Store::new(&ctx.collect_dir, &ctx.teach_dir);
    let path = req.path.as_str();
    let post = req.method == "POST";
    if let Some(name) = path.strip_prefix("/api/labels/crop/") {
        if post {
            return bad("POST to a crop's picture", "GET it");
        }
        let name = name.to_string();
        if !store::valid_image_name(&name) {
            return bad(
                &format!("{name:?} is not a crop's file name"),
                "ask for a name the grid gives (/api/labels)",
            );
        }
        return match blocking(move || s.crop_png(&name)).await {
            Some(png) => Response::new("200 OK", "image/png", png),
            None => problem(Problem::new(
                404,
                "no such crop",
                "it may have been discarded or expired: reload the grid",
            )),
        };
    }
    let taxonomy = {
        let (s, classes, bundle) = (s.clone(), ctx.classes.clone(), ctx.bundle.clone());
        match blocking(move || s.taxonomy(&classes, &bundle)).await {
            Ok(t) => t,
            Err(p) => return problem(p),
        }
    };
    let who = ctx.who.clone();
    match (post, path) {
        (false, "/api/labels") => {
            let q = |k: &str| req.query(k).filter(|v| !v.is_empty()).map(str::to_string);
            let filter = Filter {
                labelled: match q("show").as_deref() {
                    Some("unlabelled") => Some(false),
                    Some("labelled") => Some(true),
                    _ => None,
                },
                class: q("class"),
                camera: q("camera"),
            };
            let offset = q("offset").and_then(|v| v.parse().ok()).unwrap_or(0usize);
            let limit = q("limit")
                .and_then(|v| v.parse().ok())
                .unwrap_or(60usize)
                .clamp(1, 500);
            let bundle = ctx.bundle.clone();
            blocking(move || grid(&s, taxonomy, &filter, offset, limit, &bundle))
                .await
                .unwrap_or_else(problem)
        }
        (true, "/api/labels/save") => {
            let Some((image, classes)) = body(req).and_then(|v| {
                let image = v.get("image")?.as_str()?.to_string();
                let classes = v
                    .get("classes")?
                    .as_array()?
                    .iter()
                    .map(|c| c.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()?;
                Some((image, classes))
            }) else {
                return bad(
                    "the body is not {\"image\": NAME, \"classes\": [ID, …]}",
                    "send JSON with the crop's name and its classes' ids",
                );
            };
            let tax = taxonomy.0;
            blocking(move || s.save(&tax, &image, &classes, &who))
                .await
                .map_or_else(problem, |()| Response::json(&json!({"ok": true})))
        }
        (true, "/api/labels/discard") => {
            let Some(image) = body(req).and_then(|v| Some(v.get("image")?.as_str()?.to_string()))
            else {
                return bad(
                    "the body is not {\"image\": NAME}",
                    "send JSON with the crop's name",
                );
            };
            blocking(move || s.discard(&image, &who))
                .await
                .map_or_else(problem, |()| Response::json(&json!({"ok": true})))
        }
        (true, "/api/labels/taxonomy") => {
            let list = body(req).and_then(|v| {
                v.get("classes")?
                    .as_array()?
                    .iter()
                    .map(|c| match c {
                        serde_json::Value::String(id) => Some(ClassDef {
                            id: id.trim().to_string(),
                            en: id.trim().replace('_', " "),
                        }),
                        other => serde_json::from_value::<ClassDef>(other.clone()).ok(),
                    })
                    .collect::<Option<Vec<_>>>()
            });
            let Some(list) = list else {
                return bad(
                    "the body is not {\"classes\": [ID, …]} or {\"classes\": [{\"id\", \"en\"}, …]}",
                    "send the new class list",
                );
            };
            blocking(move || s.set_taxonomy(&list, &who))
                .await
                .map_or_else(problem, |()| Response::json(&json!({"ok": true})))
        }
        (true, "/api/labels/upload") => {
            let file = req
                .query("name")
                .filter(|n| !n.is_empty())
                .unwrap_or("upload.csv")
                .chars()
                .filter(|c| !c.is_control())
                .take(100)
                .collect::<String>();
            let Ok(text) = String::from_utf8(req.body.clone()) else {
                return bad(
                    &format!("{file} is not UTF-8 text"),
                    "save the CSV as UTF-8",
                );
            };
            let tax = taxonomy.0;
            match blocking(move || s.upload(&tax, &file, &text, &who)).await {
                Ok(n) => Response::json(&json!({"ok": true, "taken": n})),
                Err(mut problems) => {
                    let n = problems.len();
                    // A file wrong on every line: the first ones say enough.
                    problems.truncate(MAX_PROBLEMS);
                    let mut r = Response::json(&json!({
                        "error": format!("{n} problem(s){}; nothing was written",
                            if n > MAX_PROBLEMS { format!(", the first {MAX_PROBLEMS} listed") } else { String::new() }),
                        "fix": "fix each line named and upload the file again",
                        "problems": problems,
                    }));
                    r.status = "400 Bad Request";
                    r
                }
            }
        }
        (false, "/api/labels/download") => download(s, taxonomy.0).await,
        _ => Response::text(
            "404 Not Found",
            "label routes: GET /api/labels, /api/labels/crop/<name>.png, /api/labels/download; POST /api/labels/save, discard, taxonomy, upload\n",
        ),
    }
}

fn body(req: &Request) -> Option<serde_json::Value> {
    serde_json::from_slice(&req.body).ok()
}

/// The grid: a page of crops matching the filter, least sure first.
fn grid(
    s: &Store,
    (taxonomy, source): (Vec<ClassDef>, store::Source),
    filter: &Filter,
    offset: usize,
    limit: usize,
    bundle: &std::path::Path,
) -> Result<Response, Problem> {
    let crops = s.crops()?;
    let table = store::table::Table::read(&s.labels_path())?;
    let thresholds = store::thresholds(bundle);
    let picked = store::select(&crops, &table, filter, &thresholds);
    let labelled = crops
        .iter()
        .filter(|c| table.row(&c.name).is_some())
        .count();
    let mut cameras: Vec<&str> = crops.iter().map(|c| c.info.camera.as_str()).collect();
    cameras.sort_unstable();
    cameras.dedup();
    let page: Vec<_> = picked
        .iter()
        .skip(offset)
        .take(limit)
        .map(|c| {
            let labels = table.row(&c.name).map(|r| {
                table
                    .classes
                    .iter()
                    .zip(r)
                    .filter(|(_, v)| **v == 1)
                    .map(|(id, _)| id.clone())
                    .collect::<Vec<_>>()
            });
            let probs: serde_json::Map<_, _> = c
                .info
                .classes
                .iter()
                .zip(&c.info.probs)
                .map(|(id, p)| (id.clone(), json!(p)))
                .collect();
            json!({
                "image": c.name,
                "camera": c.info.camera,
                "captured_at": c.info.captured_at,
                "person": c.info.person,
                "view": c.info.view,
                "probs": probs,
                "sureness": store::sureness(&c.info, &thresholds),
                "prefill": store::prefill(&c.info, &taxonomy),
                "labels": labels,
            })
        })
        .collect();
    let counts: serde_json::Map<_, _> = table
        .counts()
        .into_iter()
        .map(|(c, n)| (c, json!(n)))
        .collect();
    Ok(Response::json(&json!({
        "taxonomy": taxonomy,
        "source": source,
        "counts": counts,
        "crops_total": crops.len(),
        "labelled": labelled,
        "unlabelled": crops.len() - labelled,
        "cameras": cameras,
        "matched": picked.len(),
        "offset": offset,
        "crops": page,
        "order": "least sure first: the smallest |probability − threshold| over the crop's classes",
    })))
}

/// Sends what the blocking writer writes, 64 KiB at a time.
struct Chunks {
    tx: tokio::sync::mpsc::Sender<Vec<u8>>,
    buf: Vec<u8>,
}

impl std::io::Write for Chunks {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        if self.buf.len() >= 64 << 10 {
            self.flush()?;
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::take(&mut self.buf);
        self.tx
            .blocking_send(chunk)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client left"))
    }
}

/// The tar, written on a blocking thread while the answer streams it.
async fn download(s: Store, taxonomy: Vec<ClassDef>) -> Response {
    // What would fail at once is answered with a status, not a cut tar.
    let check = {
        let (s, t) = (s.clone(), taxonomy.clone());
        blocking(move || store::table::Table::read(&s.labels_path())?.reshape(&t)).await
    };
    if let Err(p) = check {
        return problem(p);
    }
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::task::spawn_blocking(move || {
        let mut sink = Chunks {
            tx,
            buf: Vec::new(),
        };
        if let Err(p) = s.download(&taxonomy, &mut sink) {
            log::warn!("labels: the download stopped: {} ({})", p.error, p.fix);
        }
    });
    let mut r = Response::new("200 OK", "application/x-tar", Vec::new());
    r.extra = "Content-Disposition: attachment; filename=\"stylecam-labels.tar\"\r\n".into();
    r.stream = Some(rx);
    r
}
