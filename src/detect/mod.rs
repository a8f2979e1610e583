//! People mode: a person detector on the frame, a tracker per camera, and
//! the style ensemble on each tracked person's crop (DESIGN.md "Data flow").
//!
//! # The contract
//!
//! - The detector is a second ONNX in the model bundle, described by its
//!   optional `[detector]` section ([`DetectorSpec`]): input size, layout
//!   (NCHW/NHWC), channel order, `value = pixel·scale + offset`, how the
//!   frame is fitted (stretched or letterboxed), and its output format from
//!   a small documented set ([`OutputFormat`]): decoded boxes + scores
//!   before NMS, post-NMS boxes, or the YOLOv8 export layout. The classes
//!   kept, the score threshold and the NMS IoU are in the same section.
//! - [`input`] turns an RGB8 frame (masks already painted) into the
//!   detector's input tensor; [`decode()`] turns its outputs into
//!   [`Detection`]s in frame pixels, NMS applied in Rust where the graph
//!   has none.
//! - The graph runs on an infer backend ([`crate::infer::graph`]): tract or
//!   onnxruntime.
//! - [`track`] associates detections over frames into tracks whose ids are
//!   random per run (never linkable across runs, never a biometric
//!   identity).

pub mod decode;
pub mod detector;
pub mod input;
pub mod mask;
pub mod motion;
pub mod people;
pub mod regions;
pub mod track;

pub use crate::bundle::detector as spec;
pub use crate::bundle::detector::{DetectorSpec, OutputFormat};
pub use decode::{decode, nms};
pub use detector::Detector;

/// An axis-aligned box in frame pixels: `x0 ≤ x1`, `y0 ≤ y1`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BoxF {
    pub x0: f32,
    pub y0: f32,
    pub x1: f32,
    pub y1: f32,
}

impl BoxF {
    pub fn new(x0: f32, y0: f32, x1: f32, y1: f32) -> Self {
        Self {
            x0: x0.min(x1),
            y0: y0.min(y1),
            x1: x0.max(x1),
            y1: y0.max(y1),
        }
    }

    pub fn width(&self) -> f32 {
        (self.x1 - self.x0).max(0.0)
    }

    pub fn height(&self) -> f32 {
        (self.y1 - self.y0).max(0.0)
    }

    pub fn area(&self) -> f32 {
        self.width() * self.height()
    }

    pub fn centre(&self) -> (f32, f32) {
        ((self.x0 + self.x1) / 2.0, (self.y0 + self.y1) / 2.0)
    }

    /// Intersection over union (0 for two empty boxes).
    pub fn iou(&self, other: &BoxF) -> f32 {
        let w = (self.x1.min(other.x1) - self.x0.max(other.x0)).max(0.0);
        let h = (self.y1.min(other.y1) - self.y0.max(other.y0)).max(0.0);
        let inter = w * h;
        let union = self.area() + other.area() - inter;
        if union > 0.0 {
            inter / union
        } else {
            0.0
        }
    }

    /// Clipped to a `width × height` frame.
    pub fn clip(&self, width: f32, height: f32) -> BoxF {
        BoxF {
            x0: self.x0.clamp(0.0, width),
            y0: self.y0.clamp(0.0, height),
            x1: self.x1.clamp(0.0, width),
            y1: self.y1.clamp(0.0, height),
        }
    }

    /// Grown by `margin` of its size on every side.
    pub fn grow(&self, margin: f32) -> BoxF {
        let (dx, dy) = (self.width() * margin, self.height() * margin);
        BoxF {
            x0: self.x0 - dx,
            y0: self.y0 - dy,
            x1: self.x1 + dx,
            y1: self.y1 + dy,
        }
    }
}

/// One detected object in frame pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detection {
    pub bbox: BoxF,
    pub score: f32,
    /// The class index in the detector's output.
    pub class: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iou_by_hand() {
        let a = BoxF::new(0.0, 0.0, 2.0, 2.0);
        let b = BoxF::new(1.0, 0.0, 3.0, 2.0);
        assert!((a.iou(&b) - 2.0 / 6.0).abs() < 1e-6);
        assert_eq!(a.iou(&BoxF::new(5.0, 5.0, 6.0, 6.0)), 0.0);
        assert_eq!(a.iou(&a), 1.0);
        let e = BoxF::new(1.0, 1.0, 1.0, 1.0);
        assert_eq!(e.iou(&e), 0.0);
        assert_eq!(BoxF::new(3.0, 4.0, 1.0, 2.0), BoxF::new(1.0, 2.0, 3.0, 4.0));
    }
}
