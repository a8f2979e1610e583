//! The far, small people: does the detector find more of them in squares
//! at its own resolution than in the whole frame squeezed to its input?
//! On sampled frames, the whole frame once (`detect_down_to`) against
//! squares of the detector's input side laid side by side over the top of
//! the frame (`detect_regions`, what the planner makes around motion
//! there); detections at the detector's threshold whose centre lies in
//! the far band are counted.

use crate::compare::FAR_TOP;
use crate::setup::Stream;
use stylecam::detect::{BoxF, Detection, Detector};

pub struct Far {
    pub frames: usize,
    pub whole: usize,
    pub regions: usize,
    /// Median height (px) of the far detections, whole frame and regions.
    pub whole_height: f32,
    pub regions_height: f32,
    pub squares: Vec<BoxF>,
}

/// Squares of side `side` over the frame's top, spread evenly across its width.
pub fn top_squares(width: u32, height: u32, side: u32) -> Vec<BoxF> {
    let side = side.min(width).min(height) as f32;
    let (w, n) = (width as f32, (width as f32 / side).ceil().max(1.0) as usize);
    let step = if n > 1 {
        (w - side) / (n - 1) as f32
    } else {
        0.0
    };
    (0..n)
        .map(|i| {
            let x = i as f32 * step;
            BoxF::new(x, 0.0, x + side, side)
        })
        .collect()
}

pub fn probe(stream: &Stream, detector: &mut Detector, every: usize) -> Far {
    let spec = detector.spec().clone();
    let high = spec.score_threshold;
    let side = spec.width.max(spec.height);
    let squares = top_squares(stream.width, stream.height, side);
    let band = FAR_TOP * stream.height as f32;
    let far = |d: &[Detection]| -> Vec<f32> {
        d.iter()
            .filter(|d| d.score >= high && d.bbox.centre().1 < band)
            .map(|d| d.bbox.height())
            .collect()
    };
    let (mut hw, mut hr, mut frames) = (vec![], vec![], 0);
    for f in stream.frames.iter().step_by(every.max(1)) {
        let (rgb, w, h) = stylecam::preprocess::to_rgb8(f).unwrap();
        let whole = detector.detect_down_to(&rgb, w, h, high).unwrap();
        let regions = detector.detect_regions(&rgb, w, h, &squares, high).unwrap();
        hw.extend(far(&whole));
        hr.extend(far(&regions));
        frames += 1;
    }
    let median = |mut v: Vec<f32>| {
        v.sort_by(f32::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f32::NAN)
    };
    Far {
        frames,
        whole: hw.len(),
        regions: hr.len(),
        whole_height: median(hw),
        regions_height: median(hr),
        squares,
    }
}
