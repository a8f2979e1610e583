//! V4L2 cameras (USB UVC, CSI through a V4L2 bridge): mmap streaming over
//! our own ioctl layer ([`sys`], no bindgen and so no libclang at build
//! time), with a [`Supervisor`] that turns every fault — unplug (ENODEV),
//! EIO, a stalled stream, a busy or missing device — into `reconnecting`
//! with backoff, and back into `streaming` when the device returns.
//!
//! A camera's thread owns its device; a fault on one camera never touches
//! another. Each (re)connect opens the node, checks it captures, picks the
//! first configured pixel format it offers, negotiates size and rate, logs
//! what the driver granted, maps `buffers` buffers and starts streaming.
//! Each frame is copied out of its buffer (`bytesused` bytes) and the
//! buffer goes straight back to the driver.

pub mod device;
pub mod sys;

use super::{CaptureError, Frame, FrameSource, SourceState, StopToken, STOP_LATENCY};
use crate::config::{CameraFormat, V4l2Camera};
use device::{Device, FormatInfo, Granted, Stream, Wait};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Reconnect and stall decisions, on a clock the caller passes in (so the
/// state machine is tested on a simulated clock).
#[derive(Debug, Clone)]
pub struct Supervisor {
    min: Duration,
    max: Duration,
    stall_after: Duration,
    /// Grace for the first frame after a (re)start (cameras warm up).
    first_frame: Duration,
    attempt: u32,
    retry_at: Instant,
    connected: bool,
    since: Instant,
    had_frame: bool,
}

/// What the supervisor says about a streaming device that sent nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Fine,
    Stalled(Duration),
}

impl Supervisor {
    /// Starts disconnected, with the first attempt due at `now`.
    pub fn new(cfg: &V4l2Camera, fps: f64, now: Instant) -> Self {
        let interval = if fps > 0.0 {
            Duration::from_secs_f64(1.0 / fps)
        } else {
            Duration::from_millis(100)
        };
        let stall_after = (interval * cfg.stall_frames).max(Duration::from_millis(500));
        Self {
            min: Duration::from_millis(cfg.backoff_min_ms),
            max: Duration::from_millis(cfg.backoff_max_ms),
            stall_after,
            first_frame: stall_after.max(Duration::from_secs(2)),
            attempt: 0,
            retry_at: now,
            connected: false,
            since: now,
            had_frame: false,
        }
    }

    /// Failed attempts since the last frame (0 while frames flow).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// How long until the next connect attempt is due (zero: now).
    pub fn wait(&self, now: Instant) -> Duration {
        self.retry_at.saturating_duration_since(now)
    }

    /// The device opened and streams.
    pub fn opened(&mut self, now: Instant) {
        self.connected = true;
        self.since = now;
        self.had_frame = false;
    }

    /// A frame arrived: the device is healthy again.
    pub fn frame(&mut self, now: Instant) {
        self.since = now;
        self.had_frame = true;
        self.attempt = 0;
    }

    /// An attempt to connect failed, or a streaming device was lost: the
    /// next attempt waits `min`, doubling per failure up to `max`.
    /// Returns the wait.
    pub fn failed(&mut self, now: Instant) -> Duration {
        self.connected = false;
        self.attempt += 1;
        let doublings = (self.attempt - 1).min(20);
        let delay = self.min.saturating_mul(1 << doublings).min(self.max);
        self.retry_at = now + delay;
        delay
    }

    /// Whether a streaming device has been silent too long.
    pub fn health(&self, now: Instant) -> Health {
        let silent = now.saturating_duration_since(self.since);
        let limit = if self.had_frame {
            self.stall_after
        } else {
            self.first_frame
        };
        if self.connected && silent > limit {
            Health::Stalled(silent)
        } else {
            Health::Fine
        }
    }
}

/// A V4L2 camera as a [`FrameSource`].
pub struct V4l2Source {
    name: Arc<str>,
    cfg: V4l2Camera,
    fps: f64,
    stream: Option<Live>,
    supervisor: Supervisor,
    state: SourceState,
    stop: StopToken,
    seq: u64,
    down: Option<Down>,
}

/// Since when and why a camera is away (for logging once per change).
struct Down {
    since: Instant,
    failures: u32,
    last: String,
}

/// The open stream and what was negotiated for it.
struct Live {
    stream: Stream,
    granted: Granted,
    last_sequence: Option<u32>,
    last_delivered: Option<Instant>,
    /// Frames lost before buffers we did not deliver (flagged, decimated):
    /// reported with the next delivered frame.
    pending_lost: u32,
}

impl V4l2Source {
    /// Nothing is opened here: the first `next_frame` connects (and a
    /// camera that is not plugged in yet starts as `reconnecting`).
    pub fn new(name: &str, fps: f64, cfg: &V4l2Camera) -> Self {
        Self {
            name: name.into(),
            cfg: cfg.clone(),
            fps,
            stream: None,
            supervisor: Supervisor::new(cfg, fps, Instant::now()),
            state: SourceState::Reconnecting { attempt: 0 },
            stop: StopToken::new(),
            seq: 0,
            down: None,
        }
    }

    fn connect(&self) -> Result<Live, String> {
        let path = Path::new(&self.cfg.device);
        let device = Device::open(path).map_err(|e| open_error(path, &e))?;
        let id = device
            .identity()
            .map_err(|e| io_error("VIDIOC_QUERYCAP", &e))?;
        if !id.can_capture {
            return Err(format!(
                "{} ({}) is not a streaming video capture node (a metadata node?); pick another with `stylecam cameras`",
                path.display(),
                id.card
            ));
        }
        let formats = device
            .formats()
            .map_err(|e| io_error("VIDIOC_ENUM_FMT", &e))?;
        let fourcc = pick_format(&self.cfg.formats, &formats).ok_or_else(|| {
            format!(
                "{} offers {} but cameras.formats asks for {:?}; add one of those it offers",
                path.display(),
                offered(&formats),
                self.cfg.formats
            )
        })?;
        let granted = device
            .negotiate(fourcc, self.cfg.width, self.cfg.height, self.fps)
            .map_err(|e| io_error("VIDIOC_S_FMT", &e))?;
        if granted.pixel_format().is_none() {
            return Err(format!(
                "asked {} for {}, it granted {}",
                path.display(),
                sys::fourcc_str(fourcc),
                sys::fourcc_str(granted.fourcc)
            ));
        }
        let stream = device
            .stream(self.cfg.buffers)
            .map_err(|e| io_error("streaming start (REQBUFS/mmap/STREAMON)", &e))?;
        log::info!(
            "camera {}: {} ({}, {}, {}): {} {}x{} at {} fps (asked {}x{} at {} fps), {} buffers",
            self.name,
            path.display(),
            id.driver,
            id.card,
            id.bus,
            sys::fourcc_str(granted.fourcc),
            granted.width,
            granted.height,
            fmt_fps(granted.fps),
            self.cfg.width,
            self.cfg.height,
            fmt_fps(self.fps),
            self.cfg.buffers
        );
        Ok(Live {
            stream,
            granted,
            last_sequence: None,
            last_delivered: None,
            pending_lost: 0,
        })
    }

    /// Drops the stream and schedules a reconnect.
    fn lose(&mut self, reason: String) -> CaptureError {
        let lost_stream = self.stream.take().is_some();
        let wait = self.supervisor.failed(Instant::now());
        let attempt = self.supervisor.attempt();
        self.state = SourceState::Reconnecting { attempt };
        let msg = format!(
            "camera {}: {reason}; reconnecting in {} (attempt {attempt})",
            self.name,
            humantime::format_duration(round_ms(wait))
        );
        // Logged once per change: the first failure is a warning, a retry
        // failing for another reason is info, the same failure again debug;
        // the recovery says how long it took and how many attempts failed.
        let kind = reason.split(" (").next().unwrap_or(&reason).to_string();
        if attempt == 1 {
            log::warn!("{msg}");
            self.down = Some(Down {
                since: Instant::now(),
                failures: 1,
                last: kind,
            });
        } else if let Some(down) = self.down.as_mut() {
            down.failures += 1;
            if down.last != kind {
                log::info!("{msg}");
                down.last = kind;
            } else {
                log::debug!("{msg}");
            }
        }
        CaptureError::Interrupted {
            reason: msg,
            lost_stream,
        }
    }

    /// Delivers the buffer as a frame, or `None` to skip it (decimation).
    fn take(&mut self, filled: device::Filled) -> Result<Option<Frame>, CaptureError> {
        let now = Instant::now();
        let live = self.stream.as_mut().expect("streaming");
        let lost = live.pending_lost
            + match live.last_sequence {
                // A gap in the driver's counter: frames it dropped (no free buffer).
                Some(prev) => filled
                    .sequence
                    .wrapping_sub(prev)
                    .saturating_sub(1)
                    .min(10_000),
                None => 0,
            };
        live.last_sequence = Some(filled.sequence);
        // The driver runs faster than the camera's configured fps: skip
        // frames that come early (not counted as drops).
        let early = match (live.last_delivered, self.fps > 0.0) {
            (Some(last), true) => {
                now - last < Duration::from_secs_f64(0.9 / self.fps)
                    && live.granted.fps > self.fps * 1.2
            }
            _ => false,
        };
        if filled.error || early {
            let error = filled.error;
            live.pending_lost = lost;
            if let Err(e) = live.stream.requeue(filled) {
                return Err(self.lose(io_error("VIDIOC_QBUF", &e)));
            }
            self.supervisor.frame(now);
            return if error {
                Err(CaptureError::Skipped {
                    what: format!("frame (driver sequence {})", filled.sequence),
                    reason: "the driver flagged the buffer as corrupt (V4L2_BUF_FLAG_ERROR)".into(),
                })
            } else {
                Ok(None)
            };
        }
        let data = live.stream.data(&filled).to_vec();
        let g = live.granted;
        if let Err(e) = live.stream.requeue(filled) {
            return Err(self.lose(io_error("VIDIOC_QBUF", &e)));
        }
        live.last_delivered = Some(now);
        live.pending_lost = 0;
        self.supervisor.frame(now);
        self.state = SourceState::Streaming;
        if let Some(down) = self.down.take() {
            log::info!(
                "camera {}: streaming again after {} ({} failed attempts)",
                self.name,
                humantime::format_duration(round_ms(now - down.since)),
                down.failures
            );
        }
        let format = g.pixel_format().expect("checked at connect");
        let frame = Frame {
            camera: self.name.clone(),
            seq: self.seq,
            captured_at: wall_clock_of(filled.timestamp),
            driver_timestamp: Some(filled.timestamp),
            driver_sequence: Some(filled.sequence),
            lost_before: lost,
            width: g.width,
            height: g.height,
            format,
            stride: if format == super::PixelFormat::Mjpeg {
                0
            } else {
                g.bytes_per_line as usize
            },
            data,
        };
        self.seq += 1;
        Ok(Some(frame))
    }
}

impl FrameSource for V4l2Source {
    fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError> {
        loop {
            if self.stop.is_stopped() {
                return Ok(None);
            }
            let Some(live) = self.stream.as_mut() else {
                let wait = self.supervisor.wait(Instant::now());
                if !wait.is_zero() {
                    std::thread::sleep(wait.min(STOP_LATENCY));
                    continue;
                }
                match self.connect() {
                    Ok(live) => {
                        self.supervisor.opened(Instant::now());
                        self.stream = Some(live);
                    }
                    Err(reason) => return Err(self.lose(reason)),
                }
                continue;
            };
            match live.stream.wait(STOP_LATENCY) {
                Ok(Wait::Ready(filled)) => match self.take(filled)? {
                    Some(frame) => return Ok(Some(frame)),
                    None => continue,
                },
                Ok(Wait::Timeout) => {
                    if let Health::Stalled(silent) = self.supervisor.health(Instant::now()) {
                        return Err(self.lose(format!(
                            "no frame for {} (stalled stream)",
                            humantime::format_duration(round_ms(silent))
                        )));
                    }
                }
                Err(e) => return Err(self.lose(io_error("waiting for a frame (poll/DQBUF)", &e))),
            }
        }
    }

    fn state(&self) -> SourceState {
        self.state.clone()
    }

    fn stopper(&self) -> StopToken {
        self.stop.clone()
    }
}

fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
}

fn fmt_fps(fps: f64) -> String {
    if fps <= 0.0 {
        "(driver default)".into()
    } else {
        format!("{}", (fps * 100.0).round() / 100.0)
    }
}

/// The first configured format the device offers.
fn pick_format(wanted: &[CameraFormat], offered: &[FormatInfo]) -> Option<u32> {
    wanted.iter().find_map(|w| {
        let codes: &[u32] = match w {
            CameraFormat::Mjpeg => &[sys::PIX_FMT_MJPEG, sys::PIX_FMT_JPEG],
            CameraFormat::Yuyv => &[sys::PIX_FMT_YUYV],
            CameraFormat::Nv12 => &[sys::PIX_FMT_NV12],
        };
        offered.iter().map(|f| f.fourcc).find(|c| codes.contains(c))
    })
}

fn offered(formats: &[FormatInfo]) -> String {
    if formats.is_empty() {
        return "no formats".into();
    }
    formats
        .iter()
        .map(|f| sys::fourcc_str(f.fourcc))
        .collect::<Vec<_>>()
        .join(", ")
}

/// An open error, with what usually causes it.
fn open_error(path: &Path, e: &io::Error) -> String {
    let hint = match e.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ENODEV) | Some(libc::ENXIO) => "not there (unplugged?)",
        Some(libc::EACCES) | Some(libc::EPERM) => {
            "permission denied: run stylecam in the `video` group (the shipped unit does)"
        }
        Some(libc::EBUSY) => "busy: another program has the camera",
        _ => "cannot open",
    };
    format!("{}: {hint} ({e})", path.display())
}

fn io_error(what: &str, e: &io::Error) -> String {
    let hint = match e.raw_os_error() {
        Some(libc::ENODEV) => "the device is gone (unplugged)",
        Some(libc::EIO) => "I/O error from the device",
        Some(libc::EBUSY) => "busy: another program is streaming from the camera",
        _ => "failed",
    };
    format!("{what}: {hint} ({e})")
}

/// Wall-clock time of a CLOCK_MONOTONIC driver timestamp (now, if the
/// timestamp is from another clock).
fn wall_clock_of(ts: Duration) -> SystemTime {
    let now_wall = SystemTime::now();
    let now_mono = monotonic_now();
    match now_mono.checked_sub(ts) {
        Some(age) if age < Duration::from_secs(10) => now_wall - age,
        _ => now_wall,
    }
}

/// `CLOCK_MONOTONIC`, the clock V4L2 timestamps use.
pub fn monotonic_now() -> Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t) };
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// One node as `stylecam cameras` lists it.
#[derive(Debug, Clone)]
pub struct Listed {
    pub path: PathBuf,
    /// `/dev/v4l/by-id/…` and `/dev/v4l/by-path/…` links to it.
    pub stable: Vec<PathBuf>,
    pub identity: device::Identity,
    pub formats: Vec<FormatInfo>,
}

/// The capture nodes under `dev` (normally `/dev`): `video*` files, in
/// number order, with their stable names from `dev/v4l/by-id` and
/// `dev/v4l/by-path`. Nodes that are not capture nodes (UVC metadata
/// nodes) are left out; nodes that fail to open are returned as errors
/// with their path.
pub fn list(dev: &Path) -> io::Result<Vec<Result<Listed, (PathBuf, String)>>> {
    let mut nodes: Vec<(u32, PathBuf)> = std::fs::read_dir(dev)?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let n = name.strip_prefix("video")?.parse().ok()?;
            Some((n, e.path()))
        })
        .collect();
    nodes.sort();
    let links = stable_links(dev);
    let mut out = vec![];
    for (_, path) in nodes {
        let described = Device::open(&path)
            .map_err(|e| open_error(&path, &e))
            .and_then(|d| {
                let identity = d.identity().map_err(|e| io_error("VIDIOC_QUERYCAP", &e))?;
                let formats = d.formats().map_err(|e| io_error("VIDIOC_ENUM_FMT", &e))?;
                Ok((identity, formats))
            });
        match described {
            Ok((identity, _)) if !identity.can_capture => {}
            Ok((identity, formats)) => {
                let real = std::fs::canonicalize(&path).unwrap_or(path.clone());
                let stable = links
                    .iter()
                    .filter(|(_, target)| *target == real)
                    .map(|(l, _)| l.clone())
                    .collect();
                out.push(Ok(Listed {
                    path,
                    stable,
                    identity,
                    formats,
                }));
            }
            Err(e) => out.push(Err((path, e))),
        }
    }
    Ok(out)
}

fn stable_links(dev: &Path) -> Vec<(PathBuf, PathBuf)> {
    let mut out = vec![];
    for sub in ["v4l/by-id", "v4l/by-path"] {
        let Ok(entries) = std::fs::read_dir(dev.join(sub)) else {
            continue;
        };
        let mut here: Vec<_> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| Some((e.path(), std::fs::canonicalize(e.path()).ok()?)))
            .collect();
        here.sort();
        out.extend(here);
    }
    out
}

/// The `[[cameras]]` snippet for a listed node: its stable name, the
/// formats it offers (MJPEG first), the largest size up to 1280×720 and
/// that size's highest rate.
pub fn snippet(l: &Listed) -> String {
    let ours: Vec<(CameraFormat, &FormatInfo)> =
        [CameraFormat::Mjpeg, CameraFormat::Yuyv, CameraFormat::Nv12]
            .into_iter()
            .filter_map(|c| {
                let f = l
                    .formats
                    .iter()
                    .find(|f| pick_format(&[c], std::slice::from_ref(f)).is_some())?;
                Some((c, f))
            })
            .collect();
    let device = l.stable.first().unwrap_or(&l.path);
    let name: String = l
        .identity
        .card
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect::<String>()
        .split('-')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    let mut s = format!(
        "[[cameras]]\nname = \"{}\"\nsource = \"v4l2\"\ndevice = \"{}\"\n",
        if name.is_empty() { "camera" } else { &name },
        device.display()
    );
    let Some((_, best)) = ours.first() else {
        s.push_str("# offers no format stylecam reads (MJPEG, YUYV, NV12)\n");
        return s;
    };
    let formats: Vec<String> = ours
        .iter()
        .map(|(c, _)| format!("\"{}\"", format!("{c:?}").to_lowercase()))
        .collect();
    s.push_str(&format!("formats = [{}]\n", formats.join(", ")));
    let size = best
        .sizes
        .iter()
        .filter(|z| z.width <= 1280 && z.height <= 720)
        .max_by_key(|z| z.width * z.height)
        .or_else(|| best.sizes.iter().min_by_key(|z| z.width * z.height));
    if let Some(z) = size {
        s.push_str(&format!("width = {}\nheight = {}\n", z.width, z.height));
        if let Some(f) = z.fps.first() {
            s.push_str(&format!("fps = {}\n", fmt_fps(*f)));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> V4l2Camera {
        match crate::config::CameraConfig::v4l2("c", "/dev/video0").source {
            crate::config::SourceConfig::V4l2(v) => v,
            _ => unreachable!(),
        }
    }

    #[test]
    fn backoff_doubles_to_its_cap_and_resets_on_a_frame() {
        let t0 = Instant::now();
        let mut s = Supervisor::new(&cfg(), 30.0, t0);
        assert_eq!(
            s.wait(t0),
            Duration::ZERO,
            "the first attempt is due at once"
        );
        let waits: Vec<u64> = (0..8).map(|_| s.failed(t0).as_millis() as u64).collect();
        assert_eq!(waits, [250, 500, 1000, 2000, 4000, 8000, 10_000, 10_000]);
        assert_eq!(s.attempt(), 8);
        assert_eq!(s.wait(t0 + Duration::from_secs(4)), Duration::from_secs(6));
        assert_eq!(s.wait(t0 + Duration::from_secs(11)), Duration::ZERO);
        let t1 = t0 + Duration::from_secs(11);
        s.opened(t1);
        assert_eq!(s.attempt(), 8, "opening is not enough: a frame must arrive");
        s.frame(t1);
        assert_eq!(s.attempt(), 0);
        assert_eq!(
            s.failed(t1),
            Duration::from_millis(250),
            "after frames flowed, backoff starts over"
        );
    }

    #[test]
    fn stall_is_counted_in_frame_intervals_with_grace_for_the_first_frame() {
        let t0 = Instant::now();
        let mut c = cfg();
        c.stall_frames = 15; // 0.5 s at 30 fps
        let mut s = Supervisor::new(&c, 30.0, t0);
        assert_eq!(
            s.health(t0 + Duration::from_secs(60)),
            Health::Fine,
            "not connected: never stalled"
        );
        s.opened(t0);
        // The first frame gets 2 s.
        assert_eq!(s.health(t0 + Duration::from_millis(1900)), Health::Fine);
        assert!(matches!(
            s.health(t0 + Duration::from_millis(2100)),
            Health::Stalled(_)
        ));
        s.frame(t0 + Duration::from_secs(1));
        let t = t0 + Duration::from_secs(1);
        assert_eq!(s.health(t + Duration::from_millis(499)), Health::Fine);
        assert_eq!(
            s.health(t + Duration::from_millis(600)),
            Health::Stalled(Duration::from_millis(600))
        );
        // At 1 fps, 15 intervals = 15 s.
        let mut slow = Supervisor::new(&c, 1.0, t0);
        slow.opened(t0);
        slow.frame(t0);
        assert_eq!(slow.health(t0 + Duration::from_secs(14)), Health::Fine);
        assert!(matches!(
            slow.health(t0 + Duration::from_secs(16)),
            Health::Stalled(_)
        ));
    }

    #[test]
    fn a_lost_stream_waits_before_reopening() {
        let t0 = Instant::now();
        let mut s = Supervisor::new(&cfg(), 30.0, t0);
        s.opened(t0);
        s.frame(t0);
        let t1 = t0 + Duration::from_secs(3);
        assert_eq!(s.failed(t1), Duration::from_millis(250));
        assert_eq!(
            s.health(t1 + Duration::from_secs(10)),
            Health::Fine,
            "disconnected"
        );
        assert_eq!(
            s.wait(t1 + Duration::from_millis(100)),
            Duration::from_millis(150)
        );
    }

    #[test]
    fn formats_are_picked_in_config_order() {
        let f = |c: &[u8; 4]| FormatInfo {
            fourcc: sys::fourcc(c),
            description: String::new(),
            sizes: vec![],
        };
        let offered = [f(b"YUYV"), f(b"MJPG")];
        assert_eq!(
            pick_format(&[CameraFormat::Nv12, CameraFormat::Mjpeg], &offered),
            Some(sys::PIX_FMT_MJPEG)
        );
        assert_eq!(
            pick_format(&[CameraFormat::Yuyv, CameraFormat::Mjpeg], &offered),
            Some(sys::PIX_FMT_YUYV)
        );
        assert_eq!(pick_format(&[CameraFormat::Nv12], &offered), None);
        assert_eq!(
            pick_format(&[CameraFormat::Mjpeg], &[f(b"JPEG")]),
            Some(sys::PIX_FMT_JPEG)
        );
    }
}
