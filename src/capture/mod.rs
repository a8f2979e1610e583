//! Capture: where frames come from.
//!
//! A [`FrameSource`] yields [`Frame`]s one at a time, paces itself to its
//! target fps and reports its [`SourceState`]. Each camera runs its source on
//! its own thread (a blocking task), so a slow or lost camera never holds up
//! another. Sources: [`files::FilesSource`] (a folder or glob of JPEG/PNG)
//! and [`synthetic::SyntheticSource`] (a moving test pattern). The frame type
//! already carries what V4L2 delivers: YUYV, MJPEG and NV12 payloads, row
//! stride and the driver's timestamp.

pub mod files;
pub mod synthetic;

use crate::config::CameraConfig;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Pixel layouts a frame may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelFormat {
    /// Packed 4:2:2, Y0 U Y1 V (V4L2 `YUYV`), BT.601 limited range.
    Yuyv,
    /// One JPEG image per frame (V4L2 `MJPG`).
    Mjpeg,
    /// Planar Y then interleaved UV at half resolution, BT.601 limited range.
    Nv12,
    Rgb8,
    Bgr8,
    Gray8,
}

/// One captured image and where it came from.
#[derive(Debug, Clone)]
pub struct Frame {
    pub camera: Arc<str>,
    /// Per-camera sequence number, from 0, without gaps at the source.
    pub seq: u64,
    /// Wall-clock capture time (what events carry).
    pub captured_at: SystemTime,
    /// The driver's monotonic timestamp, where the source has one.
    pub driver_timestamp: Option<Duration>,
    pub width: u32,
    pub height: u32,
    pub format: PixelFormat,
    /// Bytes per row of the first plane (0 = tightly packed).
    pub stride: usize,
    pub data: Vec<u8>,
}

impl Frame {
    /// Bytes per row of the first plane.
    pub fn row_bytes(&self) -> usize {
        if self.stride != 0 {
            return self.stride;
        }
        let w = self.width as usize;
        match self.format {
            PixelFormat::Yuyv => w * 2,
            PixelFormat::Rgb8 | PixelFormat::Bgr8 => w * 3,
            PixelFormat::Gray8 | PixelFormat::Nv12 => w,
            PixelFormat::Mjpeg => 0,
        }
    }
}

/// What a source is doing, for logs, metrics and health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceState {
    Streaming,
    /// Lost its device; retrying with backoff (attempt counts from 1).
    Reconnecting {
        attempt: u32,
    },
    /// Ran out of frames (a files source without `loop`).
    Ended,
}

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// One input could not be used; the source goes on with the next.
    #[error("skipped {what}: {reason}")]
    Skipped { what: String, reason: String },
    /// The source cannot go on at all.
    #[error("camera source failed: {0}")]
    Fatal(String),
}

/// A camera. `next_frame` blocks until the next frame is due (pacing to the
/// target fps is the source's job) and returns `Ok(None)` once it has ended.
pub trait FrameSource: Send {
    fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError>;
    fn state(&self) -> SourceState;
}

/// Opens the source a camera's config names.
pub fn open(cfg: &CameraConfig) -> Result<Box<dyn FrameSource>, CaptureError> {
    match cfg.source.as_str() {
        "files" => Ok(Box::new(files::FilesSource::open(cfg)?)),
        "synthetic" => Ok(Box::new(synthetic::SyntheticSource::new(cfg)?)),
        other => Err(CaptureError::Fatal(format!(
            "camera {:?}: source {other:?} is not available in this build",
            cfg.name
        ))),
    }
}

/// Sleeps until the next frame is due at `fps` (0 = no pacing).
pub(crate) struct Pacer {
    period: Option<Duration>,
    next: Option<std::time::Instant>,
}

impl Pacer {
    pub fn new(fps: f64) -> Self {
        let period = (fps > 0.0).then(|| Duration::from_secs_f64(1.0 / fps));
        Self { period, next: None }
    }

    pub fn wait(&mut self) {
        let Some(period) = self.period else { return };
        let now = std::time::Instant::now();
        let due = self.next.unwrap_or(now);
        if due > now {
            std::thread::sleep(due - now);
        }
        // A late frame does not make the next ones bunch up.
        self.next = Some(due.max(now) + period);
    }
}
