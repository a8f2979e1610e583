//! The detector stage: an RGB frame in, person detections out.

use super::input::{fill, fill_region, Geometry};
use super::{decode::decode_down_to, nms, regions, BoxF, Detection, DetectorSpec};
use crate::bundle::Bundle;
use crate::infer::graph::{self, Graph};
use crate::infer::{InferError, Options};

/// A bundle's `[detector]`, loaded on a backend.
pub struct Detector {
    spec: DetectorSpec,
    graph: Box<dyn Graph>,
    input: Vec<f32>,
}

impl Detector {
    /// Opens the bundle's detector on the backend `opts` names; an error
    /// when the bundle has none.
    pub fn open(bundle: &Bundle, opts: &Options) -> Result<Self, InferError> {
        let Some(spec) = bundle.manifest.detector.clone() else {
            return Err(InferError::Load {
                path: bundle.dir.display().to_string(),
                reason: "the bundle has no [detector] section. Fix: use a bundle with a person detector (`stylecam detector add BUNDLE --onnx detector.onnx --preset ssdlite`), or analyze = \"frame\"/\"regions\"".into(),
            });
        };
        let graph = graph::open_detector(bundle, &spec.input_shape(), opts)?;
        Ok(Self {
            spec,
            graph,
            input: vec![],
        })
    }

    /// The backend the graph runs on.
    pub fn backend(&self) -> &'static str {
        self.graph.name()
    }

    pub fn spec(&self) -> &DetectorSpec {
        &self.spec
    }

    /// Detections in a packed RGB8 `width × height` frame (masks already
    /// painted), best score first.
    pub fn detect(
        &mut self,
        rgb: &[u8],
        width: u32,
        height: u32,
    ) -> Result<Vec<Detection>, InferError> {
        self.detect_down_to(rgb, width, height, self.spec.score_threshold)
    }

    /// [`detect`](Self::detect), keeping detections down to `min_score`
    /// (below the spec's threshold too: the tracker's low-score stage).
    pub fn detect_down_to(
        &mut self,
        rgb: &[u8],
        width: u32,
        height: u32,
        min_score: f32,
    ) -> Result<Vec<Detection>, InferError> {
        let g: Geometry = fill(&self.spec, rgb, width, height, &mut self.input);
        let outputs = self.graph.run(&self.input)?;
        decode_down_to(&self.spec, &outputs, &g, min_score).map_err(InferError::Run)
    }

    /// Detections in `regions` of the frame (squares in frame pixels, each
    /// resized to the detector's input: one run each), mapped back to the
    /// frame and de-duplicated where regions overlap; down to `min_score`.
    /// A detection a region's inner border cut is dropped when another
    /// region holds it whole ([`regions::drop_cut`]), then NMS over all;
    /// best score first, at most the spec's `max_detections`.
    pub fn detect_regions(
        &mut self,
        rgb: &[u8],
        width: u32,
        height: u32,
        regions: &[BoxF],
        min_score: f32,
    ) -> Result<Vec<Detection>, InferError> {
        let mut found = Vec::new();
        for (i, r) in regions.iter().enumerate() {
            let g = fill_region(&self.spec, rgb, width, height, *r, &mut self.input);
            let outputs = self.graph.run(&self.input)?;
            let got =
                decode_down_to(&self.spec, &outputs, &g, min_score).map_err(InferError::Run)?;
            found.extend(got.into_iter().map(|d| (d, i)));
        }
        let mut kept = nms(
            regions::drop_cut(found, regions, width, height),
            self.spec.nms_iou,
        );
        kept.truncate(self.spec.max_detections);
        Ok(kept)
    }
}
