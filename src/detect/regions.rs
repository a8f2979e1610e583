//! Where the detector looks: squares around motion and around the people
//! already tracked, merged, at least the detector's input size (so the
//! detector sees them at its own resolution, not squeezed), or the whole
//! frame when they would cover most of it.
//!
//! SKELETON (issue 36): the helper who owns this file fills it in.

use super::BoxF;

/// The detector's plan for one frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// The whole frame, once (fitted as the detector's spec says).
    Whole,
    /// These squares (frame pixels, inside the frame), one detector run each.
    Regions(Vec<BoxF>),
}

/// A plan and what it left out.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub plan: Plan,
    /// Regions over `max_regions`, left for the next detector frame.
    pub deferred: usize,
}

/// Plans regions for one camera (keeps the rotation that spreads a crowd's
/// regions over frames).
#[derive(Debug, Clone)]
pub struct Planner {
    /// The detector's input (width, height) in pixels.
    input: (u32, u32),
    max_regions: usize,
    whole_frame_at: f32,
}

impl Planner {
    pub fn new(input: (u32, u32), max_regions: u32, whole_frame_at: f32) -> Self {
        Self {
            input,
            max_regions: max_regions.max(1) as usize,
            whole_frame_at,
        }
    }

    /// Regions covering every box of `wanted` (frame pixels) in a
    /// `width × height` frame; empty `wanted` → `Regions(vec![])`.
    pub fn plan(&mut self, wanted: &[BoxF], width: u32, height: u32) -> Planned {
        let _ = (
            wanted,
            width,
            height,
            self.input,
            self.max_regions,
            self.whole_frame_at,
        );
        todo!("issue 36: regions helper")
    }
}
