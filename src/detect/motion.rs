//! Motion: where something moves in a camera's view, found on a small grey
//! image of each frame (DESIGN.md "detect/": motion beside the tracker).
//!
//! SKELETON (issue 36): the helper who owns this file fills it in.

use super::BoxF;
use crate::capture::Frame;
use crate::config::{MotionConfig, Shape};
use crate::preprocess::PreprocessError;

/// A frame's luma, downscaled to about `frame_height` rows, masks painted
/// black (0): what motion is found on.
#[derive(Debug, Clone, PartialEq)]
pub struct Luma {
    pub width: u32,
    pub height: u32,
    /// `width × height` grey levels, row-major.
    pub data: Vec<u8>,
    /// The frame it was taken from (what boxes are mapped back to).
    pub frame_width: u32,
    pub frame_height: u32,
}

impl Luma {
    /// The frame's luma at about `height` rows, without a full RGB
    /// conversion: the Y plane of YUYV/NV12 or grey frames sampled, RGB/BGR
    /// weighted at the sampled pixels only, MJPEG decoded at reduced scale.
    /// Pixels under `masks` are 0.
    pub fn of(frame: &Frame, height: u32, masks: &[Shape]) -> Result<Luma, PreprocessError> {
        let _ = (frame, height, masks);
        todo!("issue 36: motion helper")
    }

    /// A box in this image's pixels → frame pixels.
    pub fn to_frame(&self, b: BoxF) -> BoxF {
        let (sx, sy) = (
            self.frame_width as f32 / self.width as f32,
            self.frame_height as f32 / self.height as f32,
        );
        BoxF::new(b.x0 * sx, b.y0 * sy, b.x1 * sx, b.y1 * sy)
    }
}

/// What one frame's motion is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Moved {
    /// Boxes around the moving areas, frame pixels.
    pub boxes: Vec<BoxF>,
    /// Share of the grey image's (unmasked) pixels that moved.
    pub fraction: f32,
    /// The background is being relearnt after a sudden global change (or
    /// at start): no boxes are reported meanwhile.
    pub calibrating: bool,
    /// This frame started a recalibration (counted).
    pub recalibrated: bool,
}

/// One camera's motion detector: a running average of the grey image and
/// where the current one differs from it.
pub struct Motion {
    config: MotionConfig,
}

impl Motion {
    pub fn new(config: &MotionConfig) -> Self {
        Self {
            config: config.clone(),
        }
    }

    pub fn config(&self) -> &MotionConfig {
        &self.config
    }

    /// The next frame's grey image.
    pub fn update(&mut self, luma: &Luma) -> Moved {
        let _ = luma;
        todo!("issue 36: motion helper")
    }
}
