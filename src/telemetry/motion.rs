//! Per camera: what motion found and what the detector did about it
//! (people mode), for the health message, `/metrics` and the page.
//!
//! SKELETON (issue 36): the telemetry helper fills it in.

use std::time::Duration;

/// One frame's motion and detector plan, as the camera thread reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MotionSample {
    /// Motion ran on this frame (people mode with `[cameras.motion] enabled`).
    pub measured: bool,
    /// Moving areas found.
    pub boxes: u32,
    /// Share of the grey image that moved.
    pub fraction: f32,
    /// The background is being relearnt (no boxes meanwhile).
    pub calibrating: bool,
    /// This frame started a recalibration.
    pub recalibrated: bool,
    /// What motion cost on this frame (the grey image included).
    pub cost: Duration,
    /// Detector runs on this frame: 0 = not run, 1 = whole frame or one region.
    pub detector_runs: u32,
    /// The detector saw the whole frame (else `detector_runs` regions).
    pub whole: bool,
    /// Regions left for a later frame (over `max_regions`).
    pub regions_deferred: u32,
}

impl super::CameraStats {
    /// Records one frame's motion and detector plan.
    pub fn motion(&self, sample: &MotionSample) {
        let _ = sample;
    }
}
