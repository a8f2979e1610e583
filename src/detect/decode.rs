//! A detector's outputs → [`Detection`]s in frame pixels, with NMS.

use super::input::Geometry;
use super::spec::{BoxOrder, DetectorSpec, OutputFormat};
use super::{BoxF, Detection};

pub use crate::infer::graph::Tensor;

/// Decodes the graph's outputs in `spec.output`'s format, keeps
/// `spec.classes` at or above `spec.score_threshold`, maps boxes back to
/// frame pixels through `geometry`, and runs NMS where the format has
/// none. Best score first, at most `spec.max_detections`.
pub fn decode(
    spec: &DetectorSpec,
    outputs: &[Tensor],
    geometry: &Geometry,
) -> Result<Vec<Detection>, String> {
    decode_down_to(spec, outputs, geometry, spec.score_threshold)
}

/// [`decode`], keeping detections at or above `min_score` instead of the
/// spec's threshold (the tracker's low-score detections).
pub fn decode_down_to(
    spec: &DetectorSpec,
    outputs: &[Tensor],
    geometry: &Geometry,
    min_score: f32,
) -> Result<Vec<Detection>, String> {
    let mut found = match spec.output {
        OutputFormat::BoxesScores => boxes_scores(spec, outputs, geometry, min_score)?,
        OutputFormat::Nms => post_nms(spec, outputs, geometry, min_score)?,
        OutputFormat::Yolov8 => yolov8(spec, outputs, geometry, min_score)?,
    };
    if spec.output != OutputFormat::Nms {
        found = nms(found, spec.nms_iou);
    } else {
        found.sort_by(|a, b| b.score.total_cmp(&a.score));
    }
    found.truncate(spec.max_detections);
    Ok(found)
}

fn shape_error(spec: &DetectorSpec, outputs: &[Tensor], want: &str) -> String {
    let got: Vec<String> = outputs.iter().map(|t| format!("{:?}", t.shape)).collect();
    format!(
        "detector.output = {:?} expects {want}; the graph returns [{}]. Fix: set detector.output to the format the graph has ({})",
        format!("{:?}", spec.output).to_lowercase(),
        got.join(", "),
        OutputFormat::ALL
    )
}

/// A normalised box in `order` → frame pixels.
fn normalised_box(spec: &DetectorSpec, b: &[f32], g: &Geometry) -> BoxF {
    let (x0, y0, x1, y1) = match spec.box_order {
        BoxOrder::Yxyx => (b[1], b[0], b[3], b[2]),
        BoxOrder::Xyxy => (b[0], b[1], b[2], b[3]),
    };
    let (w, h) = (spec.width as f32, spec.height as f32);
    g.to_frame(BoxF::new(x0 * w, y0 * h, x1 * w, y1 * h))
}

fn boxes_scores(
    spec: &DetectorSpec,
    outputs: &[Tensor],
    g: &Geometry,
    min_score: f32,
) -> Result<Vec<Detection>, String> {
    let want = "two outputs, boxes [1,N,4] and scores [1,N,K]";
    let [boxes, scores] = outputs else {
        return Err(shape_error(spec, outputs, want));
    };
    let n = boxes.data.len() / 4;
    let ok = boxes.data.len() == n * 4
        && n > 0
        && boxes.shape.last() == Some(&4)
        && scores.data.len() % n == 0
        && scores.shape.get(1) == Some(&n);
    if !ok {
        return Err(shape_error(spec, outputs, want));
    }
    let k = scores.data.len() / n;
    check_classes(spec, k)?;
    let mut out = vec![];
    for i in 0..n {
        for &c in &spec.classes {
            let score = scores.data[i * k + c as usize];
            if score >= min_score {
                out.push(Detection {
                    bbox: normalised_box(spec, &boxes.data[i * 4..i * 4 + 4], g),
                    score,
                    class: c,
                });
            }
        }
    }
    Ok(out)
}

fn post_nms(
    spec: &DetectorSpec,
    outputs: &[Tensor],
    g: &Geometry,
    min_score: f32,
) -> Result<Vec<Detection>, String> {
    let want = "boxes [1,N,4], scores [1,N], classes [1,N] and optionally a count [1]";
    let (boxes, scores, classes, count) = match outputs {
        [b, s, c] => (b, s, c, None),
        [b, s, c, n] => (b, s, c, Some(n)),
        _ => return Err(shape_error(spec, outputs, want)),
    };
    let n = scores.data.len();
    if boxes.data.len() != n * 4 || classes.data.len() != n {
        return Err(shape_error(spec, outputs, want));
    }
    let valid = count
        .and_then(|c| c.data.first())
        .map_or(n, |&c| (c.max(0.0) as usize).min(n));
    let mut out = vec![];
    for i in 0..valid {
        let class = classes.data[i];
        let score = scores.data[i];
        if class >= 0.0 && spec.classes.contains(&(class as u32)) && score >= min_score {
            out.push(Detection {
                bbox: normalised_box(spec, &boxes.data[i * 4..i * 4 + 4], g),
                score,
                class: class as u32,
            });
        }
    }
    Ok(out)
}

fn yolov8(
    spec: &DetectorSpec,
    outputs: &[Tensor],
    g: &Geometry,
    min_score: f32,
) -> Result<Vec<Detection>, String> {
    let want = "one output [1,4+K,N]";
    let [t] = outputs else {
        return Err(shape_error(spec, outputs, want));
    };
    let (rows, n) = match t.shape.as_slice() {
        [1, rows, n] | [rows, n] if *rows > 4 => (*rows, *n),
        _ => return Err(shape_error(spec, outputs, want)),
    };
    if t.data.len() != rows * n {
        return Err(shape_error(spec, outputs, want));
    }
    // YOLOv8 scores a candidate per cell of its stride-8, 16 and 32 grids,
    // far more than its 4 + K rows. An export transposed to [1, N, 4+K]
    // holds the same numbers in the other order, read here as garbage
    // boxes: the candidates must be the longer axis, and a square output
    // cannot be told either way.
    if rows >= n {
        let (w, h) = (spec.width as usize, spec.height as usize);
        let grid: usize = [8, 16, 32]
            .iter()
            .map(|s| w.div_ceil(*s) * h.div_ceil(*s))
            .sum();
        return Err(format!(
            "detector.output = \"yolov8\" expects one output [1, 4+K, N] with the N candidates ({grid} at {w}x{h}) on the last, longer axis; the graph returns {:?}, which {}. Fix: export the head as [1, 4+K, N] (Ultralytics' `yolo export format=onnx` does), or end the graph with a Transpose to it",
            t.shape,
            if rows == n { "could be either way round" } else { "looks transposed" }
        ));
    }
    let k = rows - 4;
    check_classes(spec, k)?;
    let at = |r: usize, i: usize| t.data[r * n + i];
    let mut out = vec![];
    for i in 0..n {
        for &c in &spec.classes {
            let score = at(4 + c as usize, i);
            if score >= min_score {
                let (cx, cy, w, h) = (at(0, i), at(1, i), at(2, i), at(3, i));
                out.push(Detection {
                    bbox: g.to_frame(BoxF::new(
                        cx - w / 2.0,
                        cy - h / 2.0,
                        cx + w / 2.0,
                        cy + h / 2.0,
                    )),
                    score,
                    class: c,
                });
            }
        }
    }
    Ok(out)
}

fn check_classes(spec: &DetectorSpec, k: usize) -> Result<(), String> {
    match spec.classes.iter().find(|&&c| c as usize >= k) {
        Some(c) => Err(format!(
            "detector.classes names class {c} but the graph scores {k} classes (0..{k}). Fix: list indices below {k}"
        )),
        None => Ok(()),
    }
}

/// Greedy non-maximum suppression per class: best score first, a box is
/// dropped when it overlaps a kept box of its class by more than `iou`.
pub fn nms(mut found: Vec<Detection>, iou: f32) -> Vec<Detection> {
    found.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept: Vec<Detection> = Vec::with_capacity(found.len().min(64));
    for d in found {
        if !kept
            .iter()
            .any(|k| k.class == d.class && k.bbox.iou(&d.bbox) > iou)
        {
            kept.push(d);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::spec::{Fit, Layout};

    fn spec(output: OutputFormat) -> DetectorSpec {
        let mut s = DetectorSpec::ssdlite("d.onnx", "00");
        s.output = output;
        s
    }

    fn det(x0: f32, score: f32, class: u32) -> Detection {
        Detection {
            bbox: BoxF::new(x0, 0.0, x0 + 10.0, 10.0),
            score,
            class,
        }
    }

    #[test]
    fn nms_keeps_the_best_of_overlapping_boxes_per_class() {
        let kept = nms(
            vec![
                det(0.0, 0.6, 1),
                det(1.0, 0.9, 1),
                det(1.0, 0.5, 2),
                det(30.0, 0.7, 1),
            ],
            0.5,
        );
        let got: Vec<(f32, u32)> = kept.iter().map(|d| (d.score, d.class)).collect();
        assert_eq!(got, [(0.9, 1), (0.7, 1), (0.5, 2)]);
    }

    #[test]
    fn boxes_scores_maps_normalised_yxyx_to_frame_pixels() {
        let s = spec(OutputFormat::BoxesScores);
        let g = Geometry::new(&s, 600, 400);
        let boxes = Tensor {
            shape: vec![1, 2, 4],
            data: vec![0.1, 0.2, 0.5, 0.4, 0.0, 0.0, 1.0, 1.0],
        };
        let scores = Tensor {
            shape: vec![1, 2, 2],
            data: vec![0.1, 0.8, 0.9, 0.2],
        };
        let d = decode(&s, &[boxes, scores], &g).unwrap();
        assert_eq!(d.len(), 1, "only the person column counts: {d:?}");
        let b = d[0].bbox;
        for (got, want) in [(b.x0, 120.0), (b.y0, 40.0), (b.x1, 240.0), (b.y1, 200.0)] {
            assert!((got - want).abs() < 1e-3, "{b:?}");
        }
    }

    #[test]
    fn yolov8_layout_through_a_letterbox() {
        let mut s = spec(OutputFormat::Yolov8);
        s.width = 640;
        s.height = 640;
        s.layout = Layout::Nchw;
        s.fit = Fit::Letterbox;
        s.classes = vec![0];
        // A 1280x720 frame: scale 0.5, 140 rows of padding above.
        let g = Geometry::new(&s, 1280, 720);
        // Candidates in columns, 4+2 rows: a person at input (320, 320)
        // 100x200, a second class that is not kept, and six empty ones
        // (the candidates outnumber the rows, as in every YOLOv8 head).
        let rows: [[f32; 2]; 6] = [
            [320.0, 100.0], // cx
            [320.0, 100.0], // cy
            [100.0, 10.0],  // w
            [200.0, 10.0],  // h
            [0.9, 0.1],     // class 0
            [0.0, 0.95],    // class 1
        ];
        let t = Tensor {
            shape: vec![1, 6, 8],
            data: rows
                .iter()
                .flat_map(|r| [r[0], r[1], 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
                .collect(),
        };
        let d = decode(&s, &[t], &g).unwrap();
        assert_eq!(d.len(), 1);
        let b = d[0].bbox;
        // Frame x = (input x - 0) / 0.5, y = (input y - 140) / 0.5.
        for (got, want) in [(b.x0, 540.0), (b.x1, 740.0), (b.y0, 160.0), (b.y1, 560.0)] {
            assert!((got - want).abs() < 1e-3, "{b:?}");
        }
    }

    /// YOLOv8's head is [1, 4+K, N]; the same numbers transposed to
    /// [1, N, 4+K] (another exporter's habit) would be read as 8396 classes
    /// of 84 candidates: refused, and so is a square [1, M, M], whose axes
    /// cannot be told apart.
    #[test]
    fn a_transposed_or_ambiguous_yolov8_output_is_refused() {
        let mut s = spec(OutputFormat::Yolov8);
        s.width = 640;
        s.height = 640;
        s.classes = vec![0];
        let g = Geometry::new(&s, 640, 640);
        let out = |rows: usize, n: usize| Tensor {
            shape: vec![1, rows, n],
            data: vec![0.5; rows * n],
        };
        decode(&s, &[out(84, 8400)], &g).unwrap();
        for (rows, n) in [(8400, 84), (6, 6)] {
            let e = decode(&s, &[out(rows, n)], &g)
                .err()
                .unwrap_or_else(|| panic!("a [1, {rows}, {n}] YOLOv8 output was accepted"));
            assert!(
                e.contains(&format!("[1, {rows}, {n}]"))
                    && e.contains("8400 at 640x640")
                    && e.contains("Fix:"),
                "{e}"
            );
        }
    }

    #[test]
    fn post_nms_honours_the_count_and_the_kept_classes() {
        let s = spec(OutputFormat::Nms);
        let g = Geometry::new(&s, 100, 100);
        let outs = [
            Tensor {
                shape: vec![1, 3, 4],
                data: [0.0, 0.0, 0.5, 0.5].repeat(3),
            },
            Tensor {
                shape: vec![1, 3],
                data: vec![0.9, 0.8, 0.7],
            },
            Tensor {
                shape: vec![1, 3],
                data: vec![1.0, 3.0, 1.0],
            },
            Tensor {
                shape: vec![1],
                data: vec![2.0],
            },
        ];
        let d = decode(&s, &outs, &g).unwrap();
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].score, 0.9);
    }

    #[test]
    fn a_wrong_layout_is_an_error_naming_the_key() {
        let s = spec(OutputFormat::BoxesScores);
        let g = Geometry::new(&s, 100, 100);
        let e = decode(
            &s,
            &[Tensor {
                shape: vec![1, 84, 8400],
                data: vec![0.0; 84 * 8400],
            }],
            &g,
        )
        .unwrap_err();
        assert!(e.contains("detector.output") && e.contains("yolov8"), "{e}");
        let mut y = spec(OutputFormat::Yolov8);
        y.classes = vec![90];
        let e = decode(
            &y,
            &[Tensor {
                shape: vec![1, 6, 8],
                data: vec![0.0; 48],
            }],
            &g,
        )
        .unwrap_err();
        assert!(e.contains("detector.classes"), "{e}");
    }
}
