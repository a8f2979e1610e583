//! Motion against OpenCV: our `Luma::of` + `Motion::update` on 300 real
//! vtest.avi frames (MJPEG, 768×576 → 133×100) and tests/ref/motion_peer.py
//! doing the same steps with cv2 on the same grey images. Boxes are
//! matched per frame at IoU ≥ 0.5.

use crate::common::*;
use crate::people::ssdlite_data;
use std::path::Path;
use stylecam::capture::{Frame, PixelFormat};
use stylecam::config::MotionConfig;
use stylecam::detect::motion::{Luma, Motion};
use stylecam::detect::BoxF;

/// Frames of the walkway video, in order, as MJPEG camera frames.
pub fn vtest_frames(dir: &Path, count: usize) -> Vec<Frame> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .collect();
    names.sort();
    names
        .iter()
        .take(count)
        .enumerate()
        .map(|(i, p)| {
            let mut f = Frame::still(
                "vtest",
                PixelFormat::Mjpeg,
                768,
                576,
                std::fs::read(p).unwrap(),
            );
            f.seq = i as u64;
            f
        })
        .collect()
}

/// Greedy one-to-one matches at IoU ≥ 0.5: (matched, ours only, theirs only).
fn matches(ours: &[BoxF], theirs: &[BoxF]) -> (usize, usize, usize) {
    let mut pairs: Vec<(f32, usize, usize)> = ours
        .iter()
        .enumerate()
        .flat_map(|(i, a)| {
            theirs
                .iter()
                .enumerate()
                .map(move |(j, b)| (a.iou(b), i, j))
        })
        .filter(|p| p.0 >= 0.5)
        .collect();
    pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (mut used_a, mut used_b) = (vec![false; ours.len()], vec![false; theirs.len()]);
    let mut n = 0;
    for (_, i, j) in pairs {
        if !used_a[i] && !used_b[j] {
            used_a[i] = true;
            used_b[j] = true;
            n += 1;
        }
    }
    (n, ours.len() - n, theirs.len() - n)
}

#[test]
fn motion_boxes_agree_with_opencv_on_vtest() {
    if !available(
        "python3 with cv2 and numpy (pip install opencv-python-headless)",
        python_has("cv2, numpy"),
    ) {
        return;
    }
    let Some(data) = ssdlite_data() else { return };
    let frames = vtest_frames(&data.join("video"), 300);
    assert_eq!(frames.len(), 300);
    let config = MotionConfig::default();
    let mut motion = Motion::new(&config);
    let (mut raw, mut ours, mut calibrating) = (vec![], vec![], vec![]);
    let mut size = (0, 0);
    for f in &frames {
        let l = Luma::of(f, config.frame_height, &[]).unwrap();
        size = (l.width, l.height);
        raw.extend_from_slice(&l.data);
        let m = motion.update(&l);
        ours.push(m.boxes);
        calibrating.push(m.calibrating);
    }
    assert_eq!(size, (133, 100));
    let dir = tempfile::tempdir().unwrap();
    let grey = dir.path().join("grey.raw");
    std::fs::write(&grey, &raw).unwrap();
    let out = python(
        "motion_peer.py",
        &[
            "--grey",
            grey.to_str().unwrap(),
            "--width",
            "133",
            "--rows",
            "100",
            "--frame-size",
            "768x576",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let theirs: Vec<Vec<BoxF>> = v["boxes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            f.as_array()
                .unwrap()
                .iter()
                .map(|b| {
                    let c: Vec<f32> = b
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|x| x.as_f64().unwrap() as f32)
                        .collect();
                    BoxF::new(c[0], c[1], c[2], c[3])
                })
                .collect()
        })
        .collect();
    let their_cal: Vec<bool> = v["calibrating"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_bool().unwrap())
        .collect();
    assert_eq!(theirs.len(), 300);
    assert_eq!(calibrating, their_cal, "calibrating frames differ");
    // Ours drops a box that lies inside another (the planner would cover
    // it anyway); OpenCV's external contours drop only those in holes.
    let inside = |x: &BoxF, o: &BoxF| x.x0 >= o.x0 && x.y0 >= o.y0 && x.x1 <= o.x1 && x.y1 <= o.y1;
    let mut contained = 0;
    let theirs: Vec<Vec<BoxF>> = theirs
        .iter()
        .map(|b| {
            let kept: Vec<BoxF> = b
                .iter()
                .enumerate()
                .filter(|(i, x)| !b.iter().enumerate().any(|(j, o)| j != *i && inside(x, o)))
                .map(|(_, x)| *x)
                .collect();
            contained += b.len() - kept.len();
            kept
        })
        .collect();
    let (mut matched, mut only_ours, mut only_theirs, mut same_frames) = (0, 0, 0, 0);
    let mut worst_iou = 1.0f32;
    for (a, b) in ours.iter().zip(&theirs) {
        let (m, oa, ob) = matches(a, b);
        matched += m;
        only_ours += oa;
        only_theirs += ob;
        same_frames += (oa == 0 && ob == 0) as usize;
        for x in a {
            if let Some(best) = b.iter().map(|y| x.iou(y)).max_by(f32::total_cmp) {
                worst_iou = worst_iou.min(best);
            }
        }
    }
    let total_ours: usize = ours.iter().map(Vec::len).sum();
    let total_theirs: usize = theirs.iter().map(Vec::len).sum();
    eprintln!(
        "motion vs OpenCV on 300 vtest frames: ours {total_ours} boxes, OpenCV {total_theirs} (and {contained} inside another of its boxes, left out); matched {matched} at IoU >= 0.5, ours only {only_ours}, OpenCV only {only_theirs}; frames with the same boxes {same_frames}/300; worst best-IoU of our boxes {worst_iou:.3}"
    );
    // vtest's walkway always has people moving.
    assert!(total_ours >= 600, "{total_ours} boxes");
    // Measured: every box matched, 300/300 frames the same. The steps are
    // the same but the running average is rounded differently (ours
    // a + (b − a)·α, OpenCV's a·(1 − α) + b·α, both f32), which can flip a
    // pixel at the threshold now and then: up to 1% of boxes may differ.
    let allowed = total_ours.max(total_theirs) / 100;
    assert!(
        only_ours <= allowed && only_theirs <= allowed,
        "ours only {only_ours}, OpenCV only {only_theirs} (at most {allowed} each)"
    );
}
