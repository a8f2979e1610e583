//! The rebuildable half of the daemon: sources, preprocessor, backend,
//! decision and smoothing. [`Parts::open`] opens and checks everything a
//! config names (the slow, fallible part of a reload, done before anything
//! is swapped); `Pipeline::start` runs them against the long-lived
//! publisher; `Pipeline::stop` drains it and hands back the per-camera
//! state (keyed by camera name) for the next pipeline.

use super::gate::{CameraGate, Reuse};
use super::inference::{CameraState, Inference};
use super::queue::{FrameQueues, Input, Prepared};
use super::subjects::{Notice, RegionState, Subject};
use super::DaemonError;
use crate::bundle::Bundle;
use crate::capture::{self, CaptureError, FrameSource, SourceState, StopToken};
use crate::config::{AnalyzeMode, PreprocessKind, Validated};
use crate::detect::people::PeopleStage;
use crate::detect::BoxF;
use crate::detect::Detector;
use crate::infer::{self, Backend, Slot};
use crate::preprocess::signature::Thumbnail;
use crate::preprocess::{CpuPreprocessor, Preprocessor, RunsOn};
use crate::publish::mqtt::Publisher;
use crate::publish::Topics;
use crate::smooth::{Hysteresis, Smoother};
use crate::telemetry::view::{Outline, Picture};
use crate::telemetry::{CameraStats, Metrics, PeopleCounters, Stage};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Everything a pipeline runs, opened and checked.
pub struct Parts {
    pub cfg: Validated,
    pub bundle: Bundle,
    pub backend: Box<dyn Backend>,
    pub sources: Vec<Box<dyn FrameSource>>,
    /// The GPU preprocessor (`pipeline.preprocess`), run on the inference
    /// thread; `None` = the CPU path.
    pub gpu_preprocessor: Option<Box<dyn Preprocessor>>,
    /// Per camera: its people stage (the bundle's detector and a tracker)
    /// when it runs `analyze = "people"`.
    pub people: Vec<Option<PeopleStage>>,
}

impl Parts {
    /// Loads the bundle, opens the backend and every camera the config
    /// names; the first failure names its config key.
    pub fn open(cfg: Validated) -> Result<Self, DaemonError> {
        let bundle = Bundle::load(&cfg.model.bundle)?;
        let backend =
            infer::open(&infer::Options::from_config(&cfg.model), &bundle).map_err(|error| {
                DaemonError::Backend {
                    kind: cfg.model.backend.as_str(),
                    error,
                }
            })?;
        let mut backend = backend;
        let gpu_preprocessor = choose_preprocessor(&cfg, &bundle, backend.as_mut())?;
        let device_input = matches!(backend.slot(0), Slot::Device(_));
        if let Some(problem) = crate::preprocess::placement_problem(
            cfg.pipeline.preprocess_on,
            device_input,
            gpu_preprocessor.is_some(),
        ) {
            return Err(DaemonError::Placement(problem));
        }
        let people = open_people(&cfg, &bundle)?;
        let sources = open_cameras(&cfg)?;
        Ok(Self {
            cfg,
            bundle,
            backend,
            sources,
            gpu_preprocessor,
            people,
        })
    }
}

/// `pipeline.preprocess`: `cuda` must open (its error names the key and
/// the fix); `auto` takes CUDA only when the backend's input lives on the
/// GPU and CUDA opens, and logs why not otherwise.
fn choose_preprocessor(
    cfg: &Validated,
    bundle: &Bundle,
    backend: &mut dyn Backend,
) -> Result<Option<Box<dyn Preprocessor>>, DaemonError> {
    let opts = crate::preprocess::CudaOptions::from_config(&cfg.pipeline);
    let spec = &bundle.manifest.input;
    match cfg.pipeline.preprocess {
        PreprocessKind::Cpu => Ok(None),
        PreprocessKind::Cuda => {
            let p = crate::preprocess::open_cuda(spec, &opts).map_err(DaemonError::Preprocess)?;
            log::info!(
                "pipeline.preprocess = cuda: on the inference thread, into the {} backend's input",
                backend.name()
            );
            Ok(Some(p))
        }
        PreprocessKind::Auto => {
            if !matches!(backend.slot(0), Slot::Device(_)) {
                log::info!(
                    "pipeline.preprocess = auto: cpu (the {} backend takes its input in host memory)",
                    backend.name()
                );
                return Ok(None);
            }
            match crate::preprocess::open_cuda(spec, &opts) {
                Ok(p) => Ok(Some(p)),
                Err(e) => {
                    log::info!("pipeline.preprocess = auto: cpu ({e})");
                    Ok(None)
                }
            }
        }
    }
}

/// The bundle's detector for each `analyze = "people"` camera (one per
/// camera thread), or why it cannot run, naming the keys.
fn open_people(cfg: &Validated, bundle: &Bundle) -> Result<Vec<Option<PeopleStage>>, DaemonError> {
    let opts = infer::Options::from_config(&cfg.model);
    cfg.cameras
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if c.analysis.analyze != AnalyzeMode::People {
                return Ok(None);
            }
            if let Some(problem) = people_problem(bundle) {
                return Err(DaemonError::Placement(format!(
                    "config key `cameras[{i}].analyze` = \"people\": {problem}"
                )));
            }
            let detector = Detector::open(bundle, &opts).map_err(|error| DaemonError::Backend {
                kind: cfg.model.backend.as_str(),
                error,
            })?;
            let p = &c.analysis.people;
            let pace = if p.detect_fps > 0.0 {
                format!("at most {} times a second", p.detect_fps)
            } else {
                format!("every {} frame(s)", p.detect_every)
            };
            let look = if c.analysis.motion.enabled && p.whole_frame_at <= 0.0 {
                format!("on the whole frame when something moves or somebody tracked needs it, people standing still every {} ms", p.stationary_interval_ms)
            } else if c.analysis.motion.enabled {
                format!("where something moves and around the people tracked (squares of up to {} per frame; the whole frame past {:.0}% of it), people standing still every {} ms", p.max_regions, p.whole_frame_at * 100.0, p.stationary_interval_ms)
            } else {
                "on the whole frame ([cameras.motion] enabled = false)".to_string()
            };
            log::info!(
                "camera {}: people mode — detector {} on {}, {pace}, {look}; each tracked person classified when due",
                c.name,
                bundle.manifest.detector.as_ref().map_or("", |d| d.onnx.as_str()),
                detector.backend(),
            );
            Ok(Some(PeopleStage::with_motion(
                detector,
                c.analysis.people.clone(),
                &c.analysis.motion,
                c.analysis.masks.clone(),
            )))
        })
        .collect()
}

/// Why people mode cannot run on this bundle, if so.
pub fn people_problem(bundle: &Bundle) -> Option<String> {
    bundle.manifest.detector.is_none().then(|| {
        format!(
            "the bundle {} has no [detector]. Fix: add a person detector (`stylecam detector add {} --onnx detector.onnx --preset ssdlite`), or set analyze = \"frame\"",
            bundle.dir.display(),
            bundle.dir.display()
        )
    })
}

/// Opens every camera, so a bad camera is an error that names its key.
pub fn open_cameras(cfg: &Validated) -> Result<Vec<Box<dyn FrameSource>>, DaemonError> {
    cfg.cameras
        .iter()
        .enumerate()
        .map(|(index, c)| {
            capture::open(c).map_err(|error| DaemonError::Camera {
                index,
                name: c.name.clone(),
                error,
            })
        })
        .collect()
}

/// Per-camera state that outlives a pipeline, by camera name.
pub(super) type Carried = HashMap<String, CameraState>;

/// A running pipeline.
pub(super) struct Pipeline {
    queues: Arc<FrameQueues>,
    stops: Vec<StopToken>,
    captures: Vec<std::thread::JoinHandle<()>>,
    pub(super) worker: tokio::task::JoinHandle<Vec<CameraState>>,
}

/// What a pipeline publishes with, fixed for the life of the process.
pub(super) struct Outlet {
    pub(super) publisher: Arc<Publisher>,
    pub(super) topics: Topics,
    pub(super) epoch: String,
    /// Last event number per camera from the outbox (for cameras never seen
    /// in this process).
    pub(super) seqs: HashMap<String, u64>,
    pub(super) metrics: Arc<Metrics>,
}

impl Pipeline {
    /// Starts capture threads and the inference thread. Cameras found in
    /// `carried` keep their event numbers, and their smoothing state when
    /// the class count and smoothing settings are unchanged.
    pub(super) fn start(parts: Parts, carried: &mut Carried, out: &Outlet, reload: bool) -> Self {
        let Parts {
            cfg,
            bundle,
            backend,
            sources,
            gpu_preprocessor,
            people,
        } = parts;
        let queues = Arc::new(FrameQueues::new(sources.len(), cfg.pipeline.queue_depth));
        let preprocessor = CpuPreprocessor::new(bundle.manifest.input.clone());
        // Crop collection ([collect]): a picker per collecting camera, the
        // probabilities from the inference thread, the writer's thread.
        let (model, spec) = (
            crate::collect::Model::of(&bundle),
            bundle.manifest.input.clone(),
        );
        let collect = crate::collect::Session::start(&cfg, model, spec, out.metrics.clone());
        let (mut pickers, probs, collector) = match collect {
            Some(s) => (s.pickers, Some(s.probs), Some(s.thread)),
            None => (vec![], None, None),
        };
        // The GPU preprocessor runs where the batch is built (one stream).
        let on_cameras =
            gpu_preprocessor.is_none() && cfg.pipeline.preprocess_on == RunsOn::CaptureThreads;
        let mjpeg_cameras = cfg.cameras.iter().any(|c| {
            matches!(&c.source, crate::config::SourceConfig::V4l2(v) if v.formats.contains(&crate::config::CameraFormat::Mjpeg))
        });
        if mjpeg_cameras {
            log::info!(
                "MJPEG frames are decoded at reduced scale by {}",
                crate::preprocess::mjpeg::auto_decoder()
            );
        }
        out.metrics
            .set_page_info(super::page::info(&cfg, &bundle, backend.name()));
        for c in &cfg.cameras {
            out.metrics.camera(&c.name).view.clear();
        }
        let names: Vec<String> = cfg.cameras.iter().map(|c| c.name.clone()).collect();
        let probe_queues = queues.clone();
        out.metrics.set_queue_probe(Arc::new(move || {
            names.iter().cloned().zip(probe_queues.depths()).collect()
        }));
        // The change gate: one keyframe per camera (a reload starts afresh:
        // the probabilities must come from the model now served).
        let gate_on = cfg.gate.enabled;
        let lost: Vec<_> = if cfg.gate.enabled {
            log::info!(
                "change gate on: frames within {} grey levels of their camera's last inferred frame, and less than {} ms after it, reuse its probabilities (gate.enabled = false turns it off)",
                cfg.gate.threshold,
                cfg.gate.max_age_ms
            );
            cfg.cameras.iter().map(|_| Reuse::slot()).collect()
        } else {
            vec![]
        };
        let mut stops = vec![];
        let mut captures = vec![];
        let mut notices = vec![];
        let mut settled = vec![];
        let mut people = people.into_iter();
        for (i, (source, c)) in sources.into_iter().zip(&cfg.cameras).enumerate() {
            stops.push(source.stopper());
            let pre = on_cameras.then(|| preprocessor.clone());
            let (queues, metrics) = (queues.clone(), out.metrics.clone());
            let stats = metrics.camera(&c.name);
            let mode = c.analysis.analyze;
            // The gate compares whole frames: frame mode only.
            let gate = lost
                .get(i)
                .filter(|_| mode == AnalyzeMode::Frame)
                .map(|l| CameraGate::new(&cfg.gate, l.clone()));
            if gate_on && mode != AnalyzeMode::Frame {
                log::info!(
                    "camera {}: the change gate is off in {} mode",
                    c.name,
                    mode.as_str()
                );
            }
            let people = people.next().flatten();
            let (tx, rx) = std::sync::mpsc::channel();
            notices.push(people.is_some().then_some(rx));
            // Back from the inference thread: whose tags have settled.
            let (settled_tx, settled_rx) = std::sync::mpsc::channel();
            settled.push(
                people
                    .is_some()
                    .then_some((settled_tx, c.analysis.people.settle_after)),
            );
            if !c.analysis.masks.is_empty() {
                log::info!(
                    "camera {}: {} privacy mask(s) painted black before any model sees a frame",
                    c.name,
                    c.analysis.masks.len()
                );
            }
            let camera = CaptureLoop {
                index: i,
                masks: c.analysis.masks.clone(),
                mode,
                regions: c.analysis.regions.iter().map(|r| r.rect).collect(),
                region_names: c.analysis.regions.iter().map(|r| r.name.clone()).collect(),
                people,
                collect: pickers.get_mut(i).and_then(Option::take),
                notices: tx,
                settled: settled_rx,
                last_at: None,
                clock: Default::default(),
                preprocessor: pre,
                gate,
                queues,
                metrics,
                stats,
            };
            captures.push(
                std::thread::Builder::new()
                    .name(format!("camera-{i}"))
                    .spawn(move || camera.run(source))
                    .expect("spawn camera thread"),
            );
        }
        // Joined after the cameras: it ends once they and the inference
        // thread are done, having written what they handed it.
        captures.extend(collector);
        let classes = bundle.manifest.classes.len();
        let cameras = cfg
            .cameras
            .iter()
            .map(|c| {
                let fresh = || CameraState {
                    name: c.name.clone(),
                    smoother: Smoother::from_config(&cfg.smoothing),
                    hysteresis: Hysteresis::new(
                        classes,
                        cfg.smoothing.enter_frames,
                        cfg.smoothing.leave_frames,
                    ),
                    events: 0,
                    classes,
                    smoothing: cfg.smoothing.clone(),
                    regions: c
                        .analysis
                        .regions
                        .iter()
                        .map(|r| RegionState {
                            name: r.name.clone(),
                            smoother: Smoother::from_config(&cfg.smoothing),
                            hysteresis: Hysteresis::new(
                                classes,
                                cfg.smoothing.enter_frames,
                                cfg.smoothing.leave_frames,
                            ),
                            tags: vec![],
                            scores: vec![0.0; classes],
                        })
                        .collect(),
                    people: Default::default(),
                    mode: c.analysis.analyze,
                };
                match carried.remove(&c.name) {
                    // Regions and people start afresh on a reload (the
                    // tracks ended with the old pipeline's threads).
                    Some(old)
                        if old.classes == classes
                            && old.smoothing == cfg.smoothing
                            && old.mode == AnalyzeMode::Frame
                            && c.analysis.analyze == AnalyzeMode::Frame =>
                    {
                        old
                    }
                    // Event numbers go on; smoothing starts afresh.
                    Some(old) => CameraState {
                        events: old.events,
                        ..fresh()
                    },
                    // Event numbers go on from the last run's.
                    None => CameraState {
                        events: out.seqs.get(&c.name).copied().unwrap_or(0),
                        ..fresh()
                    },
                }
            })
            .collect();
        let reopen = {
            let (opts, bundle) = (infer::Options::from_config(&cfg.model), bundle.clone());
            Box::new(move || infer::open(&opts, &bundle))
        };
        let max_batch = cfg.model.max_batch.min(backend.limits().max);
        out.metrics
            .pipeline_started(model_name(&bundle), backend.name(), reload);
        let inference = Inference {
            backend,
            reopen,
            preprocessor: gpu_preprocessor
                .unwrap_or_else(|| Box::new(preprocessor) as Box<dyn Preprocessor>),
            decision: bundle.decision(),
            cameras,
            bundle,
            topics: out.topics.clone(),
            epoch: out.epoch.clone(),
            publish_frames: cfg.mqtt.publish_frames,
            max_batch,
            max_wait: Duration::from_millis(cfg.model.max_wait_ms),
            reuse: Reuse::new(lost),
            escalated_seen: 0,
            notices,
            settled,
            collect: probs,
        };
        let worker = {
            let (queues, publisher, metrics) =
                (queues.clone(), out.publisher.clone(), out.metrics.clone());
            tokio::task::spawn_blocking(move || inference.run(&queues, &*publisher, &metrics))
        };
        Self {
            queues,
            stops,
            captures,
            worker,
        }
    }

    /// Stops the sources, lets the inference thread finish the frames
    /// already queued, and returns the per-camera state.
    pub(super) async fn stop(self, carried: &mut Carried) {
        self.signal_stop();
        let Pipeline {
            worker, captures, ..
        } = self;
        let cameras = worker.await.expect("inference thread panicked");
        join(captures, cameras, carried);
    }

    /// After the worker ended by itself (every camera ran out of frames).
    pub(super) fn finish(self, cameras: Vec<CameraState>, carried: &mut Carried) {
        self.signal_stop();
        join(self.captures, cameras, carried);
    }

    fn signal_stop(&self) {
        for s in &self.stops {
            s.stop();
        }
        self.queues.stop();
    }
}

fn join(
    captures: Vec<std::thread::JoinHandle<()>>,
    cameras: Vec<CameraState>,
    carried: &mut Carried,
) {
    for c in captures {
        let _ = c.join();
    }
    for c in cameras {
        carried.insert(c.name.clone(), c);
    }
}

/// `name version` of a bundle, as logs and the health message show it.
pub(super) fn model_name(bundle: &Bundle) -> String {
    format!("{} {}", bundle.manifest.name, bundle.manifest.version)
}

/// One frame's motion and detector plan for the camera's statistics.
fn motion_sample(step: &crate::detect::people::Step) -> crate::telemetry::motion::MotionSample {
    use crate::detect::regions::Plan;
    let m = step.moved.as_ref();
    crate::telemetry::motion::MotionSample {
        measured: m.is_some(),
        boxes: m.map_or(0, |m| m.boxes.len() as u32),
        fraction: m.map_or(0.0, |m| m.fraction),
        calibrating: m.is_some_and(|m| m.calibrating),
        recalibrated: m.is_some_and(|m| m.recalibrated),
        cost: step.motion_cost,
        detector_runs: match &step.plan {
            None => 0,
            Some(Plan::Whole) => 1,
            Some(Plan::Regions(r)) => r.len() as u32,
        },
        whole: matches!(step.plan, Some(Plan::Whole)),
        regions_deferred: step.regions_deferred as u32,
    }
}

/// The frame as RGB8 with the masks painted (for the page's picture of a
/// frame the detector did not need), or `None` when it does not convert.
fn masked_rgb(
    frame: &crate::capture::Frame,
    masks: &[crate::config::Shape],
) -> Option<crate::detect::people::Rgb> {
    let (rgb, width, height) = crate::preprocess::to_rgb8(frame).ok()?;
    let mut data = rgb.into_owned();
    crate::detect::mask::paint(&mut data, width, height, masks);
    Some(crate::detect::people::Rgb {
        data,
        width,
        height,
    })
}

/// A box in frame pixels as fractions of the frame.
fn outline(id: String, b: &BoxF, w: u32, h: u32) -> Outline {
    let (w, h) = (w as f32, h as f32);
    Outline {
        id,
        rect: [
            (b.x0 / w).clamp(0.0, 1.0),
            (b.y0 / h).clamp(0.0, 1.0),
            (b.x1 / w).clamp(0.0, 1.0),
            (b.y1 / h).clamp(0.0, 1.0),
        ],
        kind: "subject",
    }
}

/// One camera's thread: capture, the change gate, preprocessing (on the
/// CPU path), then its queue.
struct CaptureLoop {
    index: usize,
    /// Privacy masks, painted before anything else sees the frame.
    masks: Vec<crate::config::Shape>,
    mode: AnalyzeMode,
    /// `regions` mode: each region's rectangle (fractions of the frame).
    regions: Vec<[f32; 4]>,
    region_names: Vec<String>,
    /// `people` mode: the detector and tracker.
    people: Option<PeopleStage>,
    /// `people` mode with `collect = true`: which views are kept.
    collect: Option<crate::collect::Picker>,
    notices: std::sync::mpsc::Sender<Notice>,
    /// The people whose tags the inference thread found settled.
    settled: std::sync::mpsc::Receiver<crate::detect::track::TrackId>,
    /// The previous frame's capture time and seq (for `left` events).
    last_at: Option<(std::time::SystemTime, u64)>,
    /// The tracker's clock (monotonic; ticked when a frame arrives).
    clock: crate::detect::track::Clock,
    preprocessor: Option<CpuPreprocessor>,
    gate: Option<CameraGate>,
    queues: Arc<FrameQueues>,
    metrics: Arc<Metrics>,
    stats: Arc<CameraStats>,
}

impl CaptureLoop {
    fn run(mut self, mut source: Box<dyn FrameSource>) {
        let (index, metrics, stats) = (self.index, self.metrics.clone(), self.stats.clone());
        let stop = source.stopper();
        while !stop.is_stopped() {
            let t0 = Instant::now();
            let (frame, received) = match source.next_frame() {
                Ok(Some(f)) => (f, Instant::now()),
                Ok(None) => break,
                Err(CaptureError::Skipped { .. }) => {
                    metrics.frame_skipped();
                    stats.skipped();
                    continue;
                }
                Err(CaptureError::Interrupted {
                    reason,
                    lost_stream,
                }) => {
                    stats.interrupted(&reason, lost_stream);
                    self.age_people(Instant::now());
                    continue;
                }
                Err(e @ CaptureError::Fatal(_)) => {
                    log::error!("camera #{index} stops: {e}");
                    stats.set_state("failed");
                    break;
                }
            };
            metrics.frame_captured();
            if frame.lost_before > 0 {
                stats.lost(frame.lost_before);
            }
            stats.captured(match source.state() {
                SourceState::Reconnecting { .. } => "reconnecting",
                _ => "streaming",
            });
            metrics.time(Stage::Capture, t0.elapsed(), 1);
            for item in self.prepare(frame, received) {
                if self.queues.push(item) {
                    metrics.frame_dropped();
                    stats.dropped();
                }
            }
        }
        // Everyone in view leaves with the camera (before it ends, so that
        // the inference thread sees the notices).
        if let Some(people) = &mut self.people {
            let (at, frame_seq) = self.last_at.unwrap_or((std::time::SystemTime::now(), 0));
            for (id, dwell_ms) in people.finish() {
                PeopleCounters::add(&metrics.people().tracks_ended, 1);
                let _ = self.notices.send(Notice::Left {
                    id,
                    at,
                    frame_seq,
                    dwell_ms,
                });
            }
        }
        if source.state() == SourceState::Ended {
            log::info!("camera #{index}: no more frames");
            stats.set_state("ended");
        } else if stop.is_stopped() {
            stats.set_state("stopped");
        }
        self.queues.camera_ended();
    }

    /// What goes to the inference thread for one frame: in `frame` mode the
    /// frame (or nothing, skipped); in `regions` mode one crop per region;
    /// in `people` mode the crops of the people due for classification.
    fn prepare(&mut self, frame: crate::capture::Frame, received: Instant) -> Vec<Prepared> {
        let t0 = Instant::now();
        // People mode paints its masks itself: into the grey image motion
        // sees, and into the RGB frame only when the detector or a crop
        // needs one (an idle frame is never converted).
        if self.mode == AnalyzeMode::People {
            return self.prepare_people(frame, received);
        }
        // Masks first: the gate's thumbnail, the model's tensor, a raw
        // frame handed on and every crop are made from the painted frame.
        let frame = match crate::detect::mask::apply(frame, &self.masks) {
            Ok(f) => f,
            Err(e) => {
                self.skipped(&e);
                return vec![];
            }
        };
        match self.mode {
            AnalyzeMode::Frame => {
                if self.stats.view.snapshot_due() {
                    if let Ok((rgb, w, h)) = crate::preprocess::to_rgb8(&frame) {
                        self.snapshot(&frame, rgb.into_owned(), w, h, vec![]);
                    }
                }
                self.prepare_frame(frame, t0).into_iter().collect()
            }
            AnalyzeMode::Regions => self.prepare_regions(frame),
            AnalyzeMode::People => unreachable!("people mode returned above"),
        }
    }

    /// No frame (the camera is interrupted): the tracker ages by the time
    /// since the last frame, and the people it no longer sees leave after
    /// `max_missed_ms`, while the camera is down (with the time and seq of
    /// the last frame they were seen in).
    fn age_people(&mut self, now: Instant) {
        let Some(people) = self.people.as_mut() else {
            return;
        };
        let (at, frame_seq) = self.last_at.unwrap_or((std::time::SystemTime::now(), 0));
        for (id, dwell_ms) in people.age(self.clock.tick(now)) {
            PeopleCounters::add(&self.metrics.people().tracks_ended, 1);
            let _ = self.notices.send(Notice::Left {
                id,
                at,
                frame_seq,
                dwell_ms,
            });
        }
    }

    /// Each region's crop as an item of its own.
    fn prepare_regions(&mut self, frame: crate::capture::Frame) -> Vec<Prepared> {
        let (rgb, w, h) = match crate::preprocess::to_rgb8(&frame) {
            Ok(x) => x,
            Err(e) => {
                self.skipped(&e);
                return vec![];
            }
        };
        let boxes: Vec<BoxF> = self
            .regions
            .iter()
            .map(|r| {
                BoxF::new(
                    r[0] * w as f32,
                    r[1] * h as f32,
                    r[2] * w as f32,
                    r[3] * h as f32,
                )
            })
            .collect();
        let crops: Vec<(Subject, BoxF)> = boxes
            .into_iter()
            .enumerate()
            .map(|(i, b)| (Subject::Region(i), b))
            .collect();
        if self.stats.view.snapshot_due() {
            let outlines = crops
                .iter()
                .zip(&self.region_names)
                .map(|((_, b), name)| outline(name.clone(), b, w, h))
                .collect();
            self.snapshot(&frame, rgb.to_vec(), w, h, outlines);
        }
        self.crops(&frame, &rgb, w, h, &crops)
    }

    /// Motion, detect where needed, track, and the crops of the people due
    /// for classification.
    fn prepare_people(&mut self, frame: crate::capture::Frame, received: Instant) -> Vec<Prepared> {
        let t0 = Instant::now();
        let dt_ms = self.clock.tick(received);
        self.last_at = Some((frame.captured_at, frame.seq));
        let Some(people) = self.people.as_mut() else {
            return vec![];
        };
        for id in self.settled.try_iter() {
            people.settled(id);
        }
        let (step, rgb) = match people.step_frame(&frame, dt_ms) {
            Ok(s) => s,
            Err(e) => {
                let e = format!("camera #{} frame {}: {e}", self.index, frame.seq);
                self.skipped(&e);
                return vec![];
            }
        };
        let m = self.metrics.people();
        PeopleCounters::add(&m.detections, step.detections as u64);
        PeopleCounters::add(&m.tracks_started, step.entered.len() as u64);
        PeopleCounters::add(&m.tracks_ended, step.left.len() as u64);
        PeopleCounters::add(&m.crops_skipped, (step.too_small + step.edge_cut) as u64);
        PeopleCounters::add(&m.crops_deferred, step.deferred as u64);
        if step.detected {
            self.metrics.time(Stage::Detect, t0.elapsed(), 1);
        }
        self.stats.motion(&motion_sample(&step));
        for &id in &step.entered {
            let _ = self.notices.send(Notice::Entered {
                id,
                at: frame.captured_at,
            });
        }
        for &(id, dwell_ms) in &step.left {
            let _ = self.notices.send(Notice::Left {
                id,
                at: frame.captured_at,
                frame_seq: frame.seq,
                dwell_ms,
            });
        }
        let crops: Vec<(Subject, BoxF)> = step
            .crops
            .iter()
            .map(|&(id, b)| (Subject::Person(id), b))
            .collect();
        if crops.is_empty() {
            // Analysed, nothing due: progress all the same.
            self.metrics.frame_analysed();
        }
        let rgb = if self.stats.view.snapshot_due() {
            // The page's picture: the masked frame, its people, where
            // something moved and where the detector looked.
            let rgb = match rgb {
                Some(rgb) => Some(rgb),
                None => masked_rgb(&frame, &self.masks),
            };
            if let Some(rgb) = &rgb {
                let (w, h) = (rgb.width, rgb.height);
                let mut outlines: Vec<Outline> = people
                    .in_view()
                    .into_iter()
                    .map(|(id, b)| outline(id.to_string(), &b, w, h))
                    .collect();
                let moved = step.moved.iter().flat_map(|m| &m.boxes);
                outlines.extend(moved.map(|b| Outline {
                    kind: "motion",
                    ..outline(String::new(), b, w, h)
                }));
                if let Some(crate::detect::regions::Plan::Regions(r)) = &step.plan {
                    outlines.extend(r.iter().map(|b| Outline {
                        kind: "look",
                        ..outline(String::new(), b, w, h)
                    }));
                }
                self.snapshot(&frame, rgb.data.clone(), w, h, outlines);
            }
            rgb
        } else {
            rgb
        };
        match rgb {
            Some(rgb) => self.crops(&frame, &rgb.data, rgb.width, rgb.height, &crops),
            None => vec![],
        }
    }

    /// Each box of the (masked) RGB frame, prepared like a frame: cut out
    /// and made a tensor here on the CPU path; else the boxes of the frame,
    /// which the inference thread's preprocessor cuts into consecutive
    /// slots (the CUDA kernels: all of them in one launch).
    fn crops(
        &mut self,
        frame: &crate::capture::Frame,
        rgb: &[u8],
        w: u32,
        h: u32,
        crops: &[(Subject, BoxF)],
    ) -> Vec<Prepared> {
        let mut out = Vec::with_capacity(crops.len());
        let shared = (self.preprocessor.is_none() && !crops.is_empty()).then(|| {
            Arc::new(crate::capture::Frame {
                width: w,
                height: h,
                format: crate::capture::PixelFormat::Rgb8,
                stride: 0,
                data: rgb.to_vec(),
                ..frame.clone_meta()
            })
        });
        for &(subject, b) in crops {
            let t0 = Instant::now();
            if let (Some(c), Subject::Person(id)) = (self.collect.as_mut(), subject) {
                c.offer(frame.seq, frame.captured_at, rgb, w, h, id, &b);
            }
            let input = match (self.preprocessor.as_mut(), &shared) {
                (Some(p), _) => {
                    let (data, cw, ch) = crate::detect::people::crop(rgb, w, h, &b);
                    let crop = crate::capture::Frame {
                        width: cw,
                        height: ch,
                        format: crate::capture::PixelFormat::Rgb8,
                        stride: 0,
                        data,
                        ..frame.clone_meta()
                    };
                    let mut tensor = vec![0.0; p.spec().len()];
                    if let Err(e) = p.prepare(&crop, Slot::Host(&mut tensor)) {
                        self.skipped(&e);
                        continue;
                    }
                    self.metrics.time(Stage::Preprocess, t0.elapsed(), 1);
                    Input::Tensor(tensor)
                }
                (None, Some(shared)) => Input::Crop {
                    frame: shared.clone(),
                    rect: crate::detect::people::crop_rect(w, h, &b),
                },
                (None, None) => unreachable!("shared when there are crops"),
            };
            out.push(Prepared {
                camera: self.index,
                seq: frame.seq,
                captured_at: frame.captured_at,
                input,
                subject,
                reuse: None,
            });
        }
        out
    }

    /// The gate's verdict and, unless it lets the frame reuse a keyframe's
    /// probabilities, the tensor (on the CPU path); `None` = skipped.
    fn prepare_frame(&mut self, frame: crate::capture::Frame, t0: Instant) -> Option<Prepared> {
        let (seq, captured_at) = (frame.seq, frame.captured_at);
        let mut reuse = None;
        if let Some(gate) = &mut self.gate {
            match Thumbnail::of(&frame) {
                Ok(t) => {
                    if log::log_enabled!(log::Level::Trace) {
                        log::trace!(
                            "gate: camera #{} frame {seq}: {}",
                            self.index,
                            gate.explain(&t, captured_at)
                        );
                    }
                    reuse = gate.check(&t, seq, captured_at);
                }
                Err(e) => {
                    self.skipped(&e);
                    return None;
                }
            }
        }
        let input = match self.preprocessor.as_mut() {
            // Preprocess here, in parallel with the other cameras.
            Some(p) if reuse.is_none() => {
                let mut tensor = vec![0.0; p.spec().len()];
                if let Err(e) = p.prepare(&frame, Slot::Host(&mut tensor)) {
                    self.skipped(&e);
                    return None;
                }
                self.metrics.time(Stage::Preprocess, t0.elapsed(), 1);
                Input::Tensor(tensor)
            }
            // The inference thread preprocesses it into the backend's slot
            // (or reuses its keyframe's probabilities).
            _ => Input::Frame(frame),
        };
        Some(Prepared {
            camera: self.index,
            seq,
            captured_at,
            input,
            subject: Subject::Frame,
            reuse,
        })
    }

    /// Hands the status page this (masked) frame.
    fn snapshot(
        &self,
        frame: &crate::capture::Frame,
        rgb: Vec<u8>,
        width: u32,
        height: u32,
        outlines: Vec<Outline>,
    ) {
        self.stats.view.put_picture(Picture {
            rgb,
            width,
            height,
            captured_at: frame.captured_at,
            outlines,
            jpeg: Default::default(),
        });
    }

    fn skipped(&self, e: &dyn std::fmt::Display) {
        self.metrics.frame_skipped();
        self.stats.skipped();
        log::warn!("{e}");
    }
}
