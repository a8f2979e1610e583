//! One stream through one people-mode schedule, the way the daemon's
//! camera thread and inference thread would do it, on this thread: the
//! MJPEG frame decoded, the people stage stepped, each due crop cut,
//! preprocessed and classified for real, the settling told back. Every
//! frame's thread CPU time and what the stage saw are recorded.

use crate::setup::{thread_cpu_ns, Stream};
use std::collections::HashMap;
use stylecam::bundle::Bundle;
use stylecam::capture::{Frame, PixelFormat};
use stylecam::config::{MotionConfig, PeopleConfig};
use stylecam::detect::people::{crop, PeopleStage, Settling, Step, Summary};
use stylecam::detect::regions::Plan;
use stylecam::detect::track::TrackId;
use stylecam::detect::{BoxF, Detector};
use stylecam::infer::Backend;
use stylecam::styles::DecisionParams;

/// The schedules compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// (a) Today's default: the whole frame decoded and detected on every
    /// frame (`PeopleStage::new`, `detect_fps = 0`), people classified
    /// when due.
    Every,
    /// (b) The same with `detect_every = 2`.
    EverySecond,
    /// (c) The new default: motion on the grey image, the detector at
    /// most `detect_fps` (5) times a second and only when something moves
    /// or a tracked person needs it — on the whole frame by default, on
    /// squares around them with `whole_frame_at` > 0
    /// (`STORE_DAY_PEOPLE='whole_frame_at = 0.6'`) — through
    /// `PeopleStage::with_motion` + `step_frame`.
    Gated,
}

impl Mode {
    pub fn label(self) -> &'static str {
        match self {
            Mode::Every => "(a) every frame, whole frame",
            Mode::EverySecond => "(b) detect_every = 2",
            Mode::Gated => "(c) motion-gated (the defaults), detect_fps 5",
        }
    }

    pub fn short(self) -> &'static str {
        match self {
            Mode::Every => "a",
            Mode::EverySecond => "b",
            Mode::Gated => "c",
        }
    }
}

/// What the detector did on one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Look {
    #[default]
    None,
    Whole,
    Regions(u8),
}

/// One run's record.
#[derive(Default)]
pub struct Run {
    /// Thread CPU ns per frame: decode, motion, detector, tracker,
    /// schedule, crops and their classification.
    pub cpu_ns: Vec<u64>,
    /// The confirmed tracks in view after each frame, with their boxes.
    pub in_view: Vec<Vec<(TrackId, BoxF)>>,
    pub look: Vec<Look>,
    /// Detections (at the detector's threshold) per frame.
    pub detections: Vec<usize>,
    pub recalibrated: Vec<bool>,
    pub calibrating: Vec<bool>,
    /// Motion boxes per frame.
    pub motion_boxes: Vec<usize>,
    pub motion_ns: u64,
    pub regions_deferred: usize,
    pub classified: usize,
    /// Frames whose RGB the stage made (step_frame); every frame in (a)/(b).
    pub rgb_made: usize,
    /// Each track's views (class probabilities) in classification order.
    pub views: HashMap<TrackId, Vec<Vec<f32>>>,
}

impl Run {
    pub fn cpu_ms(&self) -> f64 {
        self.cpu_ns.iter().sum::<u64>() as f64 / 1e6
    }

    /// CPU ms per second of video over the frames `keep` selects.
    pub fn ms_per_camera_second(&self, fps: f64, keep: impl Fn(usize) -> bool) -> f64 {
        let (mut ns, mut n) = (0u64, 0usize);
        for (i, c) in self.cpu_ns.iter().enumerate() {
            if keep(i) {
                ns += c;
                n += 1;
            }
        }
        if n == 0 {
            return f64::NAN;
        }
        ns as f64 / 1e6 / (n as f64 / fps)
    }

    pub fn detector_runs(&self) -> usize {
        self.look.iter().filter(|l| **l != Look::None).count()
    }

    /// Graph runs (a region run each, the whole frame one).
    pub fn graph_runs(&self) -> usize {
        self.look
            .iter()
            .map(|l| match l {
                Look::None => 0,
                Look::Whole => 1,
                Look::Regions(k) => *k as usize,
            })
            .sum()
    }

    /// Each track's final tags: the median of its views, then the
    /// bundle's decision (the daemon's).
    pub fn final_tags(&self, decision: &DecisionParams) -> HashMap<TrackId, Vec<usize>> {
        self.views
            .iter()
            .map(|(id, v)| (*id, decision.decide(&Summary::Median.of(v)).labels))
            .collect()
    }
}

/// A frame's RGB8 pixels, width, height.
type Pixels<'a> = (std::borrow::Cow<'a, [u8]>, u32, u32);

/// Runs `mode` over every frame of `stream`.
pub fn run(
    stream: &Stream,
    mode: Mode,
    detector: Detector,
    classifier: &mut dyn Backend,
    bundle: &Bundle,
) -> Run {
    let defaults = PeopleConfig::default();
    let mut stage = match mode {
        Mode::Every | Mode::EverySecond => PeopleStage::new(
            detector,
            PeopleConfig {
                detect_fps: 0.0,
                detect_every: if mode == Mode::Every { 1 } else { 2 },
                ..defaults.clone()
            },
        ),
        // STORE_DAY_PEOPLE / STORE_DAY_MOTION: `[cameras.people]` /
        // `[cameras.motion]` keys (TOML) for the gated run, to try settings.
        Mode::Gated => {
            let people: PeopleConfig = std::env::var("STORE_DAY_PEOPLE")
                .map(|t| toml::from_str(&t.replace(';', "\n")).expect("STORE_DAY_PEOPLE"))
                .unwrap_or(defaults.clone());
            let motion: MotionConfig = std::env::var("STORE_DAY_MOTION")
                .map(|t| toml::from_str(&t.replace(';', "\n")).expect("STORE_DAY_MOTION"))
                .unwrap_or_default();
            PeopleStage::with_motion(detector, people, &motion, vec![])
        }
    };
    let spec = &bundle.manifest.input;
    let decision = bundle.decision();
    let mut input = vec![0f32; spec.len()];
    let mut settling: HashMap<TrackId, Settling> = HashMap::new();
    let mut r = Run::default();
    let dt = stream.dt_ms();
    for frame in &stream.frames {
        let t0 = thread_cpu_ns();
        let (step, rgb): (Step, Option<Pixels>) = match mode {
            Mode::Every | Mode::EverySecond => {
                let (rgb, w, h) = stylecam::preprocess::to_rgb8(frame).unwrap();
                let step = stage.step(&rgb, w, h, dt).unwrap();
                (step, Some((rgb, w, h)))
            }
            Mode::Gated => {
                let (step, rgb) = stage
                    .step_frame(frame, dt)
                    .unwrap_or_else(|e| panic!("{} frame {}: {e}", stream.name, frame.seq));
                (step, rgb.map(|x| (x.data.into(), x.width, x.height)))
            }
        };
        if !step.crops.is_empty() {
            let (rgb, w, h) = rgb
                .as_ref()
                .unwrap_or_else(|| panic!("frame {}: crops but no RGB", frame.seq));
            for (id, b) in &step.crops {
                let (c, cw, ch) = crop(rgb, *w, *h, b);
                let f = Frame::still("store-day", PixelFormat::Rgb8, cw, ch, c);
                stylecam::preprocess::preprocess_into(&f, spec, &mut input).unwrap();
                let p = classifier.infer(&input, 1).unwrap();
                let views = r.views.entry(*id).or_default();
                views.push(p);
                // What the daemon's inference thread tells the schedule.
                let labels = decision.decide(&Summary::Median.of(views)).labels;
                if settling
                    .entry(*id)
                    .or_default()
                    .observe(&labels, defaults.settle_after)
                {
                    stage.settled(*id);
                }
                r.classified += 1;
            }
        }
        for (id, _) in &step.left {
            settling.remove(id);
        }
        r.cpu_ns.push(thread_cpu_ns() - t0);
        r.rgb_made += rgb.is_some() as usize;
        r.look.push(match (&step.plan, step.detected) {
            (_, false) => Look::None,
            (Some(Plan::Regions(v)), true) => Look::Regions(v.len().min(255) as u8),
            (_, true) => Look::Whole,
        });
        r.detections.push(step.detections);
        r.regions_deferred += step.regions_deferred;
        r.motion_ns += step.motion_cost.as_nanos() as u64;
        let moved = step.moved.clone().unwrap_or_default();
        r.recalibrated.push(moved.recalibrated);
        r.calibrating.push(moved.calibrating);
        r.motion_boxes.push(moved.boxes.len());
        r.in_view.push(stage.in_view());
    }
    r
}
