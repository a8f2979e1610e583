//! Motion: where something moves in a camera's view, found on a small grey
//! image of each frame (DESIGN.md "detect/": motion beside the tracker).
//!
//! [`Luma::of`] takes a frame's grey image at about `frame_height` rows
//! straight from its pixels (no full RGB conversion; masks painted 0).
//! [`Motion::update`] compares it with a running average of the scene, the
//! steps of Frigate's improved motion detector in our own code: contrast
//! stretched between the 4th and 96th percentile (followed slowly over
//! frames, so one person entering does not re-grade the whole image), a
//! 3×3 Gaussian blur, `|grey − average| > threshold`, a 3×3 dilation, and
//! the 8-connected groups of at least `contour_area` pixels as boxes in
//! frame pixels (a box lying inside another is left out). The average follows the scene by `frame_alpha` a frame, so
//! slow lighting drift is absorbed and a passing person is not.
//!
//! A sudden global change (more than `lightning_threshold` of the image at
//! once: lights switched on) recalibrates: the average and the contrast
//! are reset to the current image, and no boxes are reported until
//! [`SETTLE_FRAMES`] frames in a row are calm again (under
//! [`calm_fraction`] moving). A scene that never calms (a screen, a fan)
//! gives up calibrating after [`GIVE_UP_FRAMES`] frames and reports its
//! motion, the lightning check off until the scene has been calm again.
//! The first frame (or one of a new size) starts the average: calibrating.
//!
//! Known limit: a person who stood still long enough to enter the average
//! (`frame_alpha` 0.01: about 10 s at 10 fps) leaves a ghost where they
//! stood when they go, reported as motion until the average forgets it
//! (a few seconds), as Frigate's detector does.
//!
//! tests/ref/motion_peer.py does the same steps with OpenCV (the
//! agreement test and the cost bench run it).

mod luma;
mod steps;
#[cfg(test)]
mod tests;

pub use steps::Component;

use super::BoxF;
use crate::capture::Frame;
use crate::config::{MotionConfig, Shape};
use crate::preprocess::PreprocessError;

/// Percentiles the contrast is stretched between.
pub const CONTRAST_PERCENTILES: (f32, f32) = (0.04, 0.96);
/// Weight of a frame's percentiles in the remembered contrast range.
pub const CONTRAST_MEMORY: f32 = 1.0 / 32.0;
/// How fast the average follows the scene while calibrating.
pub const CALIBRATING_ALPHA: f32 = 0.2;
/// Calm frames in a row that end a calibration (and re-arm the lightning check).
pub const SETTLE_FRAMES: u32 = 3;
/// Frames a calibration may last before the motion is reported anyway
/// (5 s at 10 fps): an always-moving scene is never stuck without boxes.
pub const GIVE_UP_FRAMES: u32 = 50;

/// `v` (0..=255) rounded to the nearest level, ties to even, without a
/// library call: adding 2^23 leaves no fraction bits in an f32.
#[inline]
fn round_even(v: f32) -> u8 {
    const SHIFT: f32 = 8_388_608.0;
    ((v + SHIFT) - SHIFT) as u8
}

/// Below this share of moving pixels a frame is calm.
pub fn calm_fraction(config: &MotionConfig) -> f32 {
    (config.lightning_threshold / 2.0).min(0.1)
}

/// A frame's luma, downscaled to about `frame_height` rows, masks painted
/// black (0): what motion is found on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Luma {
    pub width: u32,
    pub height: u32,
    /// `width × height` grey levels, row-major.
    pub data: Vec<u8>,
    /// The frame it was taken from (what boxes are mapped back to).
    pub frame_width: u32,
    pub frame_height: u32,
    /// Empty (nothing masked) or one flag per pixel: under a mask.
    pub masked: Vec<bool>,
}

impl Luma {
    /// The frame's luma at about `height` rows, without a full RGB
    /// conversion: each pixel the average of the frame's block under it,
    /// from the Y plane of YUYV/NV12 (expanded to full range like the RGB
    /// conversion) or grey frames, the BT.601 luma of RGB/BGR, or an
    /// MJPEG frame decoded at the smallest scale that covers it. Pixels
    /// whose centre lies under one of `masks` are 0 (and flagged in
    /// `masked`). Never more rows than the frame has.
    pub fn of(frame: &Frame, height: u32, masks: &[Shape]) -> Result<Luma, PreprocessError> {
        luma::of(frame, height, masks)
    }

    /// A grey image with nothing masked (tests, tools).
    pub fn new(
        width: u32,
        height: u32,
        data: Vec<u8>,
        frame_width: u32,
        frame_height: u32,
    ) -> Self {
        assert_eq!(
            data.len(),
            width as usize * height as usize,
            "grey image size"
        );
        Self {
            width,
            height,
            data,
            frame_width,
            frame_height,
            masked: vec![],
        }
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
/// where the current one differs from it. Buffers are kept between frames.
pub struct Motion {
    config: MotionConfig,
    size: Option<(usize, usize)>,
    avg: Vec<f32>,
    /// The average rounded half to even (OpenCV's `convertScaleAbs`).
    level: Vec<u8>,
    stretched: Vec<u8>,
    blurred: Vec<u8>,
    tmp16: Vec<u16>,
    moving: Vec<u8>,
    dilated: Vec<u8>,
    tmp8: Vec<u8>,
    seen: Vec<bool>,
    stack: Vec<u32>,
    components: Vec<Component>,
    /// Remembered contrast range (4th, 96th percentile).
    contrast: Option<(f32, f32)>,
    calibrating: bool,
    calibrating_frames: u32,
    calm_frames: u32,
    /// The lightning check is on (off after a calibration gave up, until calm).
    armed: bool,
}

impl Motion {
    pub fn new(config: &MotionConfig) -> Self {
        Self {
            config: config.clone(),
            size: None,
            avg: vec![],
            level: vec![],
            stretched: vec![],
            blurred: vec![],
            tmp16: vec![],
            moving: vec![],
            dilated: vec![],
            tmp8: vec![],
            seen: vec![],
            stack: vec![],
            components: vec![],
            contrast: None,
            calibrating: true,
            calibrating_frames: 0,
            calm_frames: 0,
            armed: true,
        }
    }

    pub fn config(&self) -> &MotionConfig {
        &self.config
    }

    /// The groups of moving pixels of the last frame (grey-image pixels,
    /// all of them, before the `contour_area` cut): for tools and tests.
    pub fn components(&self) -> &[Component] {
        &self.components
    }

    /// The next frame's grey image. The first one (or one of a new size)
    /// starts the average: calibrating, no boxes.
    pub fn update(&mut self, luma: &Luma) -> Moved {
        let (w, h) = (luma.width as usize, luma.height as usize);
        let first = self.size != Some((w, h)) || luma.data.len() != w * h;
        if first {
            self.start(w, h);
            if luma.data.len() != w * h {
                return Moved {
                    calibrating: true,
                    ..Moved::default()
                };
            }
        }
        self.prepare(luma, first);
        if first {
            self.reset_average();
            return Moved {
                calibrating: true,
                ..Moved::default()
            };
        }
        let threshold = self.config.threshold;
        let pixels = self.moving.iter_mut().zip(&self.blurred).zip(&self.level);
        for ((m, &b), &a) in pixels {
            *m = (b.abs_diff(a) > threshold) as u8;
        }
        let unmasked = if luma.masked.is_empty() {
            w * h
        } else {
            for (m, &masked) in self.moving.iter_mut().zip(&luma.masked) {
                *m &= !masked as u8;
            }
            luma.masked.iter().filter(|&&m| !m).count()
        };
        steps::dilate3(&self.moving, &mut self.dilated, &mut self.tmp8, w, h);
        if !luma.masked.is_empty() {
            for (d, &masked) in self.dilated.iter_mut().zip(&luma.masked) {
                *d &= !masked as u8;
            }
        }
        let count: usize = self.dilated.iter().map(|&d| d as usize).sum();
        let fraction = if unmasked == 0 {
            0.0
        } else {
            count as f32 / unmasked as f32
        };
        let calm = fraction < calm_fraction(&self.config);
        self.calm_frames = if calm { self.calm_frames + 1 } else { 0 };
        let mut moved = Moved {
            fraction,
            ..Moved::default()
        };
        if self.armed && fraction > self.config.lightning_threshold {
            if !self.calibrating {
                moved.recalibrated = true;
                self.calibrating = true;
                self.calibrating_frames = 0;
            }
            self.calibrating_frames += 1;
            self.calm_frames = 0;
            if self.calibrating_frames < GIVE_UP_FRAMES {
                // The new scene's contrast and average, from this frame.
                self.prepare(luma, true);
                self.reset_average();
                self.components.clear();
                moved.calibrating = true;
                return moved;
            }
            // Never calm: report the motion, lightning off until calm.
            self.calibrating = false;
            self.armed = false;
        } else if self.calibrating {
            self.calibrating_frames += 1;
            if self.calm_frames >= SETTLE_FRAMES {
                self.calibrating = false;
            } else if self.calibrating_frames >= GIVE_UP_FRAMES {
                self.calibrating = false;
                self.armed = false;
            }
        } else if !self.armed && self.calm_frames >= SETTLE_FRAMES {
            self.armed = true;
        }
        let alpha = if self.calibrating {
            CALIBRATING_ALPHA
        } else {
            self.config.frame_alpha
        };
        let pixels = self.avg.iter_mut().zip(&self.blurred).zip(&mut self.level);
        for ((a, &b), l) in pixels {
            *a += (b as f32 - *a) * alpha;
            *l = round_even(*a);
        }
        steps::components(
            &self.dilated,
            w,
            h,
            &mut self.seen,
            &mut self.stack,
            &mut self.components,
        );
        moved.calibrating = self.calibrating;
        if !self.calibrating {
            moved.boxes = self.boxes(luma);
        }
        moved
    }

    /// Fresh buffers for a `w × h` image.
    fn start(&mut self, w: usize, h: usize) {
        let n = w * h;
        self.size = Some((w, h));
        self.avg = vec![0.0; n];
        self.level = vec![0; n];
        self.stretched = vec![0; n];
        self.blurred = vec![0; n];
        self.tmp16 = vec![0; n];
        self.moving = vec![0; n];
        self.dilated = vec![0; n];
        self.tmp8 = vec![0; n];
        self.components.clear();
        self.contrast = None;
        self.calibrating = true;
        self.calibrating_frames = 0;
        self.calm_frames = 0;
        self.armed = true;
    }

    /// Contrast stretch (the remembered range followed by this frame's,
    /// or reset to it) and blur into `blurred`.
    fn prepare(&mut self, luma: &Luma, reset_contrast: bool) {
        let (w, h) = (luma.width as usize, luma.height as usize);
        if self.config.improve_contrast {
            let (lo_q, hi_q) = CONTRAST_PERCENTILES;
            if let Some((lo, hi)) = steps::percentiles(&luma.data, &luma.masked, lo_q, hi_q) {
                let (lo, hi) = (lo as f32, hi as f32);
                self.contrast = match self.contrast {
                    Some((l, h)) if !reset_contrast => Some((
                        l + (lo - l) * CONTRAST_MEMORY,
                        h + (hi - h) * CONTRAST_MEMORY,
                    )),
                    _ => Some((lo, hi)),
                };
            }
            let lut = match self.contrast {
                Some((lo, hi)) => steps::stretch_lut(lo, hi),
                None => steps::stretch_lut(0.0, 0.0),
            };
            for (s, &v) in self.stretched.iter_mut().zip(&luma.data) {
                *s = lut[v as usize];
            }
            // Masked pixels stay 0 (the stretch maps 0 to 0 only when the
            // range starts at 0).
            for (s, _) in self
                .stretched
                .iter_mut()
                .zip(&luma.masked)
                .filter(|(_, &m)| m)
            {
                *s = 0;
            }
        } else {
            self.stretched.copy_from_slice(&luma.data);
        }
        steps::blur3(&self.stretched, &mut self.blurred, &mut self.tmp16, w, h);
    }

    fn reset_average(&mut self) {
        for ((a, &b), l) in self.avg.iter_mut().zip(&self.blurred).zip(&mut self.level) {
            *a = b as f32;
            *l = b;
        }
    }

    /// The components of at least `contour_area` pixels that no other
    /// such component's box contains, as boxes in frame pixels.
    fn boxes(&self, luma: &Luma) -> Vec<BoxF> {
        let big: Vec<&Component> = self
            .components
            .iter()
            .filter(|c| c.area >= self.config.contour_area)
            .collect();
        let inside = |a: &Component, b: &Component| {
            a.x0 >= b.x0 && a.y0 >= b.y0 && a.x1 <= b.x1 && a.y1 <= b.y1
        };
        big.iter()
            .enumerate()
            .filter(|(i, c)| {
                !big.iter()
                    .enumerate()
                    .any(|(j, o)| j != *i && inside(c, o) && (!inside(o, c) || j < *i))
            })
            .map(|(_, c)| {
                luma.to_frame(BoxF::new(
                    c.x0 as f32,
                    c.y0 as f32,
                    c.x1 as f32,
                    c.y1 as f32,
                ))
            })
            .collect()
    }
}
