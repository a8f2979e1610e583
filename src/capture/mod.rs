//! Capture: where frames come from.
//!
//! A [`FrameSource`] yields [`Frame`]s one at a time, paces itself to its
//! target fps and reports its [`SourceState`]. Each camera runs its source on
//! its own thread (a blocking task), so a slow or lost camera never holds up
//! another. Sources: [`files::FilesSource`] (a folder or glob of JPEG/PNG)
//! [`synthetic::SyntheticSource`] (a moving test pattern) and
//! [`v4l2::V4l2Source`] (a USB/CSI camera, reconnecting by itself). The frame
//! carries what V4L2 delivers: YUYV, MJPEG and NV12 payloads, row stride,
//! the driver's timestamp and sequence.

pub mod encode;
pub mod files;
pub mod synthetic;
pub mod v4l2;

use crate::config::{CameraConfig, SourceConfig};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Pixel layouts a frame may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
    /// The driver's frame counter (V4L2 `sequence`), where there is one.
    pub driver_sequence: Option<u32>,
    /// Frames the source lost just before this one (a gap in the driver's
    /// sequence: the driver had no free buffer). Counted as drops at the
    /// source.
    pub lost_before: u32,
    pub width: u32,
    pub height: u32,
    pub format: PixelFormat,
    /// Bytes per row of the first plane (0 = tightly packed).
    pub stride: usize,
    pub data: Vec<u8>,
}

impl Frame {
    /// This frame's camera, numbers and times with no pixels (for a frame
    /// derived from it: a crop, a masked copy).
    pub fn clone_meta(&self) -> Self {
        Self {
            camera: self.camera.clone(),
            seq: self.seq,
            captured_at: self.captured_at,
            driver_timestamp: self.driver_timestamp,
            driver_sequence: self.driver_sequence,
            lost_before: self.lost_before,
            width: 0,
            height: 0,
            format: self.format,
            stride: 0,
            data: vec![],
        }
    }

    /// A tightly packed frame with no driver metadata, captured now, as
    /// camera `camera` frame 0 (for tests, benchmarks and still images).
    pub fn still(
        camera: impl Into<Arc<str>>,
        format: PixelFormat,
        width: u32,
        height: u32,
        data: Vec<u8>,
    ) -> Self {
        Self {
            camera: camera.into(),
            seq: 0,
            captured_at: SystemTime::now(),
            driver_timestamp: None,
            driver_sequence: None,
            lost_before: 0,
            width,
            height,
            format,
            stride: 0,
            data,
        }
    }

    /// The bytes a reader of this frame may touch (rows × stride, plus
    /// NV12's chroma plane), or why the frame cannot be read as it claims
    /// to be: a stride shorter than a row of pixels, fewer bytes than its
    /// rows need, an empty frame or (YUYV, NV12: a chroma pair per two
    /// pixels) an odd width. The one geometry rule of the CPU paths and the
    /// CUDA path. MJPEG frames have no geometry of their own (`Ok(0)`);
    /// they are checked when decoded.
    pub fn expected_len(&self) -> Result<usize, String> {
        let (w, h) = (self.width as usize, self.height as usize);
        let stride = self.row_bytes();
        let (packed, needed) = match self.format {
            PixelFormat::Mjpeg => return Ok(0),
            PixelFormat::Yuyv => (w * 2, stride * h),
            PixelFormat::Nv12 => (w, stride * h + stride * h.div_ceil(2)),
            PixelFormat::Rgb8 | PixelFormat::Bgr8 => (w * 3, stride * h),
            PixelFormat::Gray8 => (w, stride * h),
        };
        let yuv = matches!(self.format, PixelFormat::Yuyv | PixelFormat::Nv12);
        if w == 0 || h == 0 || (yuv && w % 2 != 0) {
            return Err(format!("{:?} frame of {w}x{h} pixels", self.format));
        }
        if stride < packed {
            return Err(format!(
                "{:?} {w}x{h}: a stride of {stride} bytes is shorter than a row ({packed} bytes)",
                self.format
            ));
        }
        if self.data.len() < needed {
            return Err(format!(
                "{:?} {w}x{h} (stride {stride}) needs {needed} bytes, got {}",
                self.format,
                self.data.len()
            ));
        }
        Ok(needed)
    }

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
    /// The device went away, failed or stalled (or could not be opened yet):
    /// the source is reconnecting with backoff; call `next_frame` again.
    #[error("{reason}")]
    Interrupted {
        reason: String,
        /// It was streaming (a device lost), not failing to (re)open.
        lost_stream: bool,
    },
    /// The source cannot go on at all.
    #[error("camera source failed: {0}")]
    Fatal(String),
}

/// A camera. `next_frame` blocks until the next frame is due (pacing to the
/// target fps is the source's job) and returns `Ok(None)` once it has ended
/// or once its [`StopToken`] is set (within [`STOP_LATENCY`], also while it
/// waits for a frame: shutdown and reload never wait on a blocking read).
pub trait FrameSource: Send {
    fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError>;
    fn state(&self) -> SourceState;
    /// A handle that stops this source from another thread.
    fn stopper(&self) -> StopToken;
}

/// How long a source may take to notice its stop token.
pub const STOP_LATENCY: Duration = Duration::from_millis(50);

/// Set once to stop a source (and the thread reading it).
#[derive(Debug, Clone, Default)]
pub struct StopToken(Arc<std::sync::atomic::AtomicBool>);

impl StopToken {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn stop(&self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn is_stopped(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Opens the source a camera's config names.
pub fn open(cfg: &CameraConfig) -> Result<Box<dyn FrameSource>, CaptureError> {
    match &cfg.source {
        SourceConfig::Files(f) => Ok(Box::new(files::FilesSource::open(&cfg.name, cfg.fps, f)?)),
        SourceConfig::Synthetic(s) => Ok(Box::new(synthetic::SyntheticSource::new(
            &cfg.name, cfg.fps, s,
        ))),
        SourceConfig::V4l2(v) => Ok(Box::new(v4l2::V4l2Source::new(&cfg.name, cfg.fps, v))),
    }
}

/// Sleeps until the next frame is due at `fps` (0 = no pacing), in slices
/// of [`STOP_LATENCY`] so that a stop is seen while it waits.
pub(crate) struct Pacer {
    period: Option<Duration>,
    next: Option<std::time::Instant>,
    pub(crate) stop: StopToken,
}

impl Pacer {
    pub fn new(fps: f64) -> Self {
        let period = (fps > 0.0).then(|| Duration::from_secs_f64(1.0 / fps));
        Self {
            period,
            next: None,
            stop: StopToken::new(),
        }
    }

    /// Sleeps until `due` (a retry's time); false when the source was
    /// stopped meanwhile.
    pub fn sleep_until(&self, due: std::time::Instant) -> bool {
        loop {
            if self.stop.is_stopped() {
                return false;
            }
            let now = std::time::Instant::now();
            if now >= due {
                return true;
            }
            std::thread::sleep((due - now).min(STOP_LATENCY));
        }
    }

    /// Waits for the next frame's time; false when the source was stopped.
    pub fn wait(&mut self) -> bool {
        let Some(period) = self.period else {
            return !self.stop.is_stopped();
        };
        let now = std::time::Instant::now();
        let due = self.next.unwrap_or(now);
        loop {
            if self.stop.is_stopped() {
                return false;
            }
            let now = std::time::Instant::now();
            if now >= due {
                break;
            }
            std::thread::sleep((due - now).min(STOP_LATENCY));
        }
        // A late frame does not make the next ones bunch up.
        self.next = Some(due.max(now) + period);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(format: PixelFormat, w: u32, h: u32, stride: usize, len: usize) -> Frame {
        let mut f = Frame::still("cam", format, w, h, vec![0; len]);
        f.stride = stride;
        f
    }

    /// What the CUDA path reads of a frame (it trusted the frame before):
    /// exact lengths, odd strides and NV12's chroma plane accepted, short
    /// or malformed frames refused with the reason.
    #[test]
    fn expected_len_checks_every_frame_as_the_cpu_paths_do() {
        use PixelFormat::*;
        assert_eq!(frame(Yuyv, 4, 2, 0, 16).expected_len(), Ok(16));
        assert_eq!(
            frame(Rgb8, 3, 2, 11, 22).expected_len(),
            Ok(22),
            "odd stride"
        );
        assert_eq!(
            frame(Nv12, 4, 3, 5, 25).expected_len(),
            Ok(25),
            "luma 3 rows + chroma 2 rows of 5"
        );
        assert_eq!(
            frame(Gray8, 4, 4, 0, 20).expected_len(),
            Ok(16),
            "a longer buffer is read only so far"
        );
        assert_eq!(frame(Mjpeg, 640, 480, 0, 3).expected_len(), Ok(0));
        let short = frame(Nv12, 4, 4, 0, 16 + 7).expected_len().unwrap_err();
        assert!(short.contains("needs 24 bytes, got 23"), "{short}");
        let narrow = frame(Yuyv, 4, 2, 6, 12).expected_len().unwrap_err();
        assert!(narrow.contains("shorter than a row"), "{narrow}");
        assert!(
            frame(Yuyv, 3, 2, 0, 12).expected_len().is_err(),
            "odd YUYV width"
        );
        assert!(frame(Rgb8, 0, 2, 0, 0).expected_len().is_err(), "empty");
    }
}
