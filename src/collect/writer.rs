//! The collector's thread (one per pipeline, while collection is on):
//! pairs each camera's ticket (the crop's pixels) with the inference
//! thread's probabilities for it, writes PNG + sidecar into the
//! [`Store`], and holds the folder to its bounds every minute and after
//! each write. A failing write (a full disk) pauses collection with one
//! log line and `stylecam_collect_paused` = 1; tagging never waits on it,
//! and the next write is tried a minute later.

use super::picker::{Picker, ProbsTx};
use super::store::{Bounds, Clock, Store};
use super::{Sidecar, SidecarBundle};
use crate::config::{AnalyzeMode, Config};
use crate::detect::track::TrackId;
use crate::styles::DecisionParams;
use crate::telemetry::Metrics;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// How often the bounds are enforced without writes, and how long a
/// paused collector waits before it tries to write again.
pub const EVERY: Duration = Duration::from_secs(60);

/// People whose views are numbered, at most.
const VIEWS_REMEMBERED: usize = 1 << 16;

/// Tickets waiting for their probabilities, at most (a frame dropped from
/// a full queue never gets them).
const PENDING: usize = 256;

/// A view to keep, from a camera thread.
pub(super) struct Ticket {
    pub(super) camera: usize,
    pub(super) seq: u64,
    pub(super) id: TrackId,
    pub(super) person: String,
    pub(super) captured_at: SystemTime,
    pub(super) bbox: [u32; 4],
    pub(super) frame: [u32; 2],
    pub(super) size: [u32; 2],
    pub(super) rgb: Vec<u8>,
    pub(super) head_blur: bool,
    pub(super) head_rows: Option<[u32; 2]>,
}

pub(super) enum Msg {
    Ticket(Box<Ticket>),
    Probs {
        camera: usize,
        seq: u64,
        id: TrackId,
        probs: Vec<f32>,
    },
}

/// What the model is, for the sidecars.
#[derive(Clone)]
pub struct Model {
    pub bundle: SidecarBundle,
    pub classes: Vec<String>,
    pub decision: DecisionParams,
}

impl Model {
    pub fn of(bundle: &crate::bundle::Bundle) -> Self {
        Self {
            bundle: SidecarBundle {
                name: bundle.manifest.name.clone(),
                version: bundle.manifest.version.clone(),
            },
            classes: bundle.manifest.classes.ids().map(str::to_string).collect(),
            decision: bundle.decision(),
        }
    }
}

/// A running collection: a picker per collecting camera, the sender the
/// inference thread reports probabilities on, and the thread.
pub struct Session {
    /// Per camera (config order): its picker, where it collects.
    pub pickers: Vec<Option<Picker>>,
    pub probs: ProbsTx,
    pub thread: std::thread::JoinHandle<()>,
}

impl Session {
    /// Starts collecting when `[collect] enabled` and some people-mode
    /// camera has `collect = true`; else `None`, and nothing is created
    /// on disk.
    pub fn start(
        cfg: &Config,
        model: Model,
        spec: crate::preprocess::Spec,
        metrics: Arc<Metrics>,
    ) -> Option<Self> {
        Self::start_with_clock(cfg, model, spec, metrics, super::store::system_clock())
    }

    /// [`Session::start`] reading time from `clock` (tests move it).
    pub fn start_with_clock(
        cfg: &Config,
        model: Model,
        spec: crate::preprocess::Spec,
        metrics: Arc<Metrics>,
        clock: Clock,
    ) -> Option<Self> {
        let collecting: Vec<bool> = cfg
            .cameras
            .iter()
            .map(|c| cfg.collect.enabled && c.collect && c.analysis.analyze == AnalyzeMode::People)
            .collect();
        let on = collecting.iter().any(|&c| c);
        metrics.collect().set_enabled(on);
        if !on {
            metrics.collect().set_paused(false);
            return None;
        }
        let c = &cfg.collect;
        let dir = std::path::absolute(&c.dir).unwrap_or(c.dir.clone());
        let names: Vec<String> = cfg.cameras.iter().map(|c| c.name.clone()).collect();
        log::info!(
            "collect: keeping up to {} view(s) per person of camera(s) {} in {} (bounded to {} MiB and {} days; head blur {})",
            c.max_per_person,
            names
                .iter()
                .zip(&collecting)
                .filter(|(_, on)| **on)
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            dir.display(),
            c.max_mib,
            c.retention_days,
            if c.blur_head { "on" } else { "off" },
        );
        let (tx, rx) = channel();
        let salt = std::collections::hash_map::RandomState::new();
        let pickers = collecting
            .iter()
            .enumerate()
            .map(|(i, &on)| {
                on.then(|| Picker {
                    camera: i,
                    spec: spec.clone(),
                    max_per_person: c.max_per_person,
                    min_interval: Duration::from_millis(c.min_interval_ms),
                    blur: c.blur_head.then_some(super::blur::HeadBlur {
                        fraction: c.head_fraction,
                        margin: cfg.cameras[i].analysis.people.margin,
                    }),
                    salt: salt.clone(),
                    people: Default::default(),
                    tx: tx.clone(),
                })
            })
            .collect();
        let writer = Writer {
            dir,
            bounds: Bounds::from_config(c),
            clock,
            metrics,
            model,
            names,
            store: None,
            paused_until: None,
            views: Default::default(),
        };
        let thread = std::thread::Builder::new()
            .name("collect".into())
            .spawn(move || writer.run(rx))
            .expect("spawn the collector thread");
        Some(Self {
            pickers,
            probs: ProbsTx { collecting, tx },
            thread,
        })
    }
}

struct Writer {
    dir: PathBuf,
    bounds: Bounds,
    clock: Clock,
    metrics: Arc<Metrics>,
    model: Model,
    /// Camera names, config order.
    names: Vec<String>,
    store: Option<Store>,
    /// While writes fail: when to try again.
    paused_until: Option<SystemTime>,
    /// Views written per person id.
    views: std::collections::HashMap<String, u32>,
}

impl Writer {
    fn run(mut self, rx: Receiver<Msg>) {
        self.open();
        let mut pending: BTreeMap<(usize, u64, TrackId), Box<Ticket>> = BTreeMap::new();
        let mut next_check = (self.clock)() + EVERY;
        loop {
            match rx.recv_timeout(Duration::from_secs(1)) {
                Ok(Msg::Ticket(t)) => {
                    pending.insert((t.camera, t.seq, t.id), t);
                    while pending.len() > PENDING {
                        pending.pop_first();
                    }
                }
                Ok(Msg::Probs {
                    camera,
                    seq,
                    id,
                    probs,
                }) => {
                    // Frames reach the model in order per camera: tickets
                    // of earlier frames will get no probabilities now.
                    pending.retain(|k, _| k.0 != camera || k.1 >= seq);
                    if let Some(t) = pending.remove(&(camera, seq, id)) {
                        self.keep(*t, &probs);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            let now = (self.clock)();
            if now >= next_check {
                next_check = now + EVERY;
                match self.store.as_mut() {
                    Some(s) => {
                        s.refresh();
                    }
                    None => self.open(),
                }
            }
        }
    }

    /// Opens the folder (at start, then every minute while it cannot be).
    fn open(&mut self) {
        match Store::open(
            &self.dir,
            self.bounds,
            self.clock.clone(),
            self.metrics.clone(),
        ) {
            Ok(s) => {
                log::info!(
                    "collect: {} holds {} crop(s), {} bytes",
                    self.dir.display(),
                    s.crops(),
                    s.bytes()
                );
                self.store = Some(s);
            }
            Err(e) => self.pause(&e),
        }
    }

    fn pause(&mut self, e: &std::io::Error) {
        if self.paused_until.is_none() {
            log::warn!(
                "collect: cannot write to {} ({e}); collection pauses, tagging goes on; trying again every minute (free space, or set collect.dir or collect.max_mib)",
                self.dir.display()
            );
        }
        self.paused_until = Some((self.clock)() + EVERY);
        self.metrics.collect().set_paused(true);
    }

    /// Writes one view with its probabilities, unless paused.
    fn keep(&mut self, t: Ticket, probs: &[f32]) {
        let now = (self.clock)();
        if self.paused_until.is_some_and(|until| now < until) {
            return;
        }
        let Some(store) = self.store.as_mut() else {
            self.open();
            if self.store.is_none() {
                return;
            }
            return self.keep(t, probs);
        };
        let view = self.views.get(&t.person).copied().unwrap_or(0) + 1;
        let camera = sanitize(self.names.get(t.camera).map_or("camera", String::as_str));
        let stamp = compact_time(t.captured_at);
        let stem = format!("{camera}-{stamp}-{}-{view}", t.person);
        let decided = self
            .model
            .decision
            .decide(probs)
            .labels
            .iter()
            .filter_map(|&i| self.model.classes.get(i).cloned())
            .collect();
        let sidecar = Sidecar {
            image: format!("{stem}.png"),
            camera: self.names.get(t.camera).cloned().unwrap_or_default(),
            captured_at: humantime::format_rfc3339_millis(t.captured_at).to_string(),
            seq: t.seq,
            person: t.person.clone(),
            view,
            bbox: t.bbox,
            frame: t.frame,
            size: t.size,
            bundle: self.model.bundle.clone(),
            classes: self.model.classes.clone(),
            probs: probs.to_vec(),
            decided,
            head_blur: t.head_blur,
            head_rows: t.head_rows,
        };
        let png = match encode_png(&t.rgb, t.size[0], t.size[1]) {
            Ok(p) => p,
            Err(e) => {
                log::warn!("collect: {stem}.png: {e}");
                return;
            }
        };
        match store.write(&stem, &png, &sidecar) {
            Ok(()) => {
                if self.views.len() >= VIEWS_REMEMBERED {
                    // Weeks of people: the numbering starts again (the
                    // stem keeps its capture time, so no name repeats).
                    self.views.clear();
                }
                self.views.insert(t.person, view);
                if self.paused_until.take().is_some() {
                    log::info!("collect: writing to {} again", self.dir.display());
                    self.metrics.collect().set_paused(false);
                }
            }
            Err(e) => self.pause(&e),
        }
    }
}

/// A camera name as a file-name part: `[A-Za-z0-9_-]`, others as `_`.
pub fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `YYYYmmddTHHMMSS.mmmZ` (UTC).
pub fn compact_time(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t)
        .to_string()
        .replace(['-', ':'], "")
}

fn encode_png(rgb: &[u8], w: u32, h: u32) -> Result<Vec<u8>, image::ImageError> {
    use image::ImageEncoder;
    let mut out = vec![];
    image::codecs::png::PngEncoder::new(&mut out).write_image(
        rgb,
        w,
        h,
        image::ExtendedColorType::Rgb8,
    )?;
    Ok(out)
}
