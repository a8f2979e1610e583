//! The planner's rules, the border-cut de-duplication, and the tracker's
//! `update_looked` (a track the run did not look at is not missed) on
//! synthetic boxes; the detector on real video is tests/regions_detect.rs.

use super::*;
use crate::detect::track::{Tracker, TrackerConfig};

/// SSDLite's input.
const INPUT: (u32, u32) = (300, 300);

fn person(x: f32, y: f32, w: f32, h: f32) -> BoxF {
    BoxF::new(x, y, x + w, y + h)
}

fn contains(outer: &BoxF, inner: &BoxF) -> bool {
    outer.x0 <= inner.x0 && outer.y0 <= inner.y0 && outer.x1 >= inner.x1 && outer.y1 >= inner.y1
}

fn regions(p: &Planned) -> &[BoxF] {
    match &p.plan {
        Plan::Regions(r) => r,
        Plan::Whole => panic!("whole frame: {p:?}"),
    }
}

fn inside_frame(r: &BoxF, w: f32, h: f32) -> bool {
    r.x0 >= 0.0 && r.y0 >= 0.0 && r.x1 <= w && r.y1 <= h
}

#[test]
fn nothing_wanted_is_no_region() {
    let mut p = Planner::new(INPUT, 4, 0.6);
    let got = p.plan(&[], 768, 576);
    assert_eq!(got.plan, Plan::Regions(vec![]));
    assert_eq!(got.deferred, 0);
}

#[test]
fn a_person_at_the_frame_edge_gets_a_full_square_shifted_inside() {
    let mut p = Planner::new(INPUT, 4, 0.6);
    // At the right edge, near the top.
    let b = person(740.0, 10.0, 28.0, 70.0);
    let got = p.plan(&[b], 768, 576);
    let r = regions(&got);
    assert_eq!(r.len(), 1);
    let s = r[0];
    assert_eq!((s.width(), s.height()), (300.0, 300.0), "{s:?}");
    assert!(inside_frame(&s, 768.0, 576.0), "{s:?}");
    assert!(contains(&s, &b), "{s:?} holds {b:?}");
    assert_eq!((s.x1, s.y0), (768.0, 0.0), "shifted, not cut");
    // In the middle: centred on the box.
    let b = person(370.0, 250.0, 30.0, 80.0);
    let s = regions(&p.plan(&[b], 768, 576))[0];
    assert_eq!(s.centre(), b.centre());
    // A tall person near the camera: the square is the margin over the
    // box's longer side.
    let b = person(300.0, 60.0, 120.0, 400.0);
    let s = regions(&p.plan(&[b], 1280, 720))[0];
    assert_eq!(s.width(), (400.0 * MARGIN).ceil());
    assert!(contains(&s, &b));
}

#[test]
fn two_nearby_people_share_one_region_and_far_apart_stay_two() {
    let mut p = Planner::new(INPUT, 4, 0.6);
    let (a, b) = (
        person(200.0, 200.0, 30.0, 80.0),
        person(280.0, 220.0, 30.0, 80.0),
    );
    let r = regions(&p.plan(&[a, b], 768, 576)).to_vec();
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(contains(&r[0], &a) && contains(&r[0], &b), "{r:?}");
    // One run that reads no more pixels than the two would.
    assert!(r[0].area() <= 2.0 * 300.0 * 300.0, "{r:?}");
    let c = person(600.0, 400.0, 30.0, 80.0);
    let r = regions(&p.plan(&[a, c], 768, 576)).to_vec();
    assert_eq!(r.len(), 2, "{r:?}");
    assert!(r
        .iter()
        .all(|s| s.width() == 300.0 && inside_frame(s, 768.0, 576.0)));
    // Two squares overlapping a little stay two (the border-cut boxes are
    // dropped by the detector instead).
    let d = person(400.0, 200.0, 30.0, 80.0);
    let r = regions(&p.plan(&[a, d], 768, 576)).to_vec();
    assert_eq!(r.len(), 2, "{r:?}");
    assert!(r[0].iou(&r[1]) > 0.0);
    // Merging is repeated: a chain of close people ends as one square.
    let chain: Vec<BoxF> = (0..4)
        .map(|i| person(100.0 + 40.0 * i as f32, 100.0, 30.0, 80.0))
        .collect();
    let r = regions(&p.plan(&chain, 1280, 720)).to_vec();
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(chain.iter().all(|b| contains(&r[0], b)));
}

#[test]
fn regions_covering_most_of_the_frame_or_too_big_become_the_whole_frame() {
    let mut p = Planner::new(INPUT, 4, 0.6);
    // Four people in the four corners: 4 × 300² = 360 000 px of 442 368.
    let corners = [
        person(10.0, 10.0, 30.0, 80.0),
        person(720.0, 10.0, 30.0, 80.0),
        person(10.0, 480.0, 30.0, 80.0),
        person(720.0, 480.0, 30.0, 80.0),
    ];
    assert_eq!(p.plan(&corners, 768, 576).plan, Plan::Whole);
    // Two of them: 180 000 px, under 60 %.
    assert_eq!(regions(&p.plan(&corners[..2], 768, 576)).len(), 2);
    // At whole_frame_at = 0.9 the four stay regions.
    let mut lax = Planner::new(INPUT, 4, 0.9);
    assert_eq!(regions(&lax.plan(&corners, 768, 576)).len(), 4);
    // A person as tall as the frame, or a frame smaller than the input.
    let tall = person(300.0, 50.0, 100.0, 500.0);
    assert_eq!(p.plan(&[tall], 768, 576).plan, Plan::Whole);
    assert_eq!(
        p.plan(&[person(10.0, 10.0, 20.0, 40.0)], 320, 240).plan,
        Plan::Whole
    );
}

#[test]
fn a_crowd_over_max_regions_is_spread_over_frames_and_counted() {
    let (w, h) = (4000u32, 3000u32);
    for (n, max) in [(8usize, 3u32), (9, 3), (5, 4), (7, 1)] {
        let mut p = Planner::new(INPUT, max, 0.95);
        // People far apart on a grid: each its own square.
        let crowd: Vec<BoxF> = (0..n)
            .map(|i| {
                person(
                    100.0 + 900.0 * (i % 4) as f32,
                    100.0 + 800.0 * (i / 4) as f32,
                    30.0,
                    80.0,
                )
            })
            .collect();
        let calls = n.div_ceil(max as usize);
        let mut seen = vec![false; n];
        for _ in 0..calls {
            let got = p.plan(&crowd, w, h);
            let r = regions(&got);
            assert_eq!(r.len(), max as usize);
            assert_eq!(got.deferred, n - max as usize);
            for (i, b) in crowd.iter().enumerate() {
                seen[i] |= r.iter().any(|s| contains(s, b));
            }
        }
        assert!(
            seen.iter().all(|&s| s),
            "{n} people, {max} a call: {seen:?}"
        );
    }
}

#[test]
fn union_area_and_coverage_by_hand() {
    let a = BoxF::new(0.0, 0.0, 10.0, 10.0);
    let b = BoxF::new(5.0, 5.0, 15.0, 15.0);
    assert_eq!(union_area(&[a, b]), 175.0);
    assert_eq!(union_area(&[a, a]), 100.0);
    assert_eq!(union_area(&[]), 0.0);
    let t = BoxF::new(8.0, 0.0, 12.0, 10.0);
    assert!((covered(&t, &[a]) - 0.5).abs() < 1e-6);
    assert!((covered(&t, &[a, b]) - 0.75).abs() < 1e-6);
    assert_eq!(covered(&t, &[]), 0.0);
}

fn det(b: BoxF, score: f32) -> Detection {
    Detection {
        bbox: b,
        score,
        class: 1,
    }
}

#[test]
fn a_box_cut_by_an_inner_region_border_is_dropped_when_another_region_holds_it() {
    let (w, h) = (800, 600);
    // Region 0 ends at x = 300 inside the frame; region 1 holds x 250..550.
    let rs = [
        BoxF::new(0.0, 0.0, 300.0, 300.0),
        BoxF::new(250.0, 0.0, 550.0, 300.0),
    ];
    let whole = person(270.0, 100.0, 50.0, 120.0);
    let cut = BoxF::new(271.0, 102.0, 300.0, 219.0);
    assert!(cut_by(&cut, &rs[0], 800.0, 600.0));
    assert!(!cut_by(&whole, &rs[1], 800.0, 600.0));
    // A box at the frame's edge is not cut by the region.
    let at_edge = person(0.0, 0.0, 40.0, 90.0);
    assert!(!cut_by(&at_edge, &rs[0], 800.0, 600.0));
    let kept = drop_cut(
        vec![
            (det(cut, 0.8), 0),
            (det(whole, 0.6), 1),
            (det(at_edge, 0.9), 0),
        ],
        &rs,
        w,
        h,
    );
    let boxes: Vec<BoxF> = kept.iter().map(|d| d.bbox).collect();
    assert_eq!(boxes, [whole, at_edge]);
    // Nothing else holds it: the part is kept.
    let kept = drop_cut(vec![(det(cut, 0.8), 0)], &rs, w, h);
    assert_eq!(kept.len(), 1);
    // Another class holding it does not count.
    let other = Detection {
        class: 2,
        ..det(whole, 0.6)
    };
    assert_eq!(
        drop_cut(vec![(det(cut, 0.8), 0), (other, 1)], &rs, w, h).len(),
        2
    );
}

/// One walker, 4 px a frame to the right.
fn walker(x: f32) -> Detection {
    det(person(x, 100.0, 20.0, 50.0), 0.9)
}

#[test]
fn a_track_the_run_did_not_look_at_is_not_missed() {
    let c = TrackerConfig::default();
    let mut t = Tracker::new(c);
    for f in 0..5 {
        t.update_looked(&[walker(10.0 + 4.0 * f as f32), walker(600.0)], 100, None);
    }
    assert_eq!(t.tracks().iter().filter(|t| t.confirmed).count(), 2);
    // Twice max_missed_ms of region runs that look only at the walker.
    let steps = 2 * c.max_missed_ms / 100;
    for f in 5..5 + steps {
        let x = 10.0 + 4.0 * f as f32;
        let looked = [BoxF::new(0.0, 0.0, x + 150.0, 300.0)];
        let u = t.update_looked(&[walker(x)], 100, Some(&looked));
        assert!(u.ended.is_empty(), "frame {f}: {:?}", u.ended);
    }
    let far = t.tracks().iter().find(|t| t.bbox.x0 > 400.0).expect("kept");
    assert_eq!(far.missed_ms, 0);
    assert!(far.age_ms >= steps * 100);
    // A run that looks at it and finds nothing misses it as before.
    let all = [BoxF::new(0.0, 0.0, 800.0, 600.0)];
    let mut ended = 0;
    for _ in 0..steps {
        ended += t.update_looked(&[], 100, Some(&all)).ended.len();
    }
    assert_eq!(ended, 2);
}

#[test]
fn looked_none_is_update() {
    let mut a = Tracker::new(TrackerConfig::default());
    let mut b = Tracker::new(TrackerConfig::default());
    for f in 0..30 {
        let d: Vec<Detection> = if (10..14).contains(&f) || f > 24 {
            vec![]
        } else {
            vec![walker(10.0 + 4.0 * f as f32)]
        };
        let (ua, ub) = (a.update(&d, 100), b.update_looked(&d, 100, None));
        assert_eq!(
            (ua.confirmed.len(), ua.ended.len()),
            (ub.confirmed.len(), ub.ended.len())
        );
        let strip = |t: &[crate::detect::track::Track]| -> Vec<(BoxF, u64, u32)> {
            t.iter().map(|t| (t.bbox, t.missed_ms, t.hits)).collect()
        };
        assert_eq!(strip(a.tracks()), strip(b.tracks()), "frame {f}");
    }
}

#[test]
fn a_smaller_minimum_side_gives_smaller_squares_still_over_the_box() {
    let mut p = Planner::new(INPUT, 4, 0.6).with_min_side(150);
    let b = person(700.0, 100.0, 30.0, 60.0);
    let s = regions(&p.plan(&[b], 768, 576))[0];
    assert_eq!((s.width(), s.height()), (150.0, 150.0));
    assert!(contains(&s, &b) && inside_frame(&s, 768.0, 576.0), "{s:?}");
    // A tall box still gets the margin over its longer side.
    let b = person(300.0, 100.0, 60.0, 200.0);
    let s = regions(&p.plan(&[b], 768, 576))[0];
    assert_eq!(s.width(), (200.0 * MARGIN).ceil());
}

#[test]
fn a_track_partly_in_a_looked_square_takes_its_detection_instead_of_a_second_track() {
    let mut t = Tracker::new(TrackerConfig::default());
    for _ in 0..4 {
        t.update_looked(&[walker(280.0)], 100, None);
    }
    assert_eq!(t.tracks().len(), 1);
    // The square holds 9 of the track's 20 px width: less than half.
    let looked = [BoxF::new(0.0, 0.0, 289.0, 300.0)];
    let u = t.update_looked(&[walker(281.0)], 100, Some(&looked));
    assert_eq!(t.tracks().len(), 1, "{:?}", t.tracks());
    assert_eq!(u.assigned, [Some(t.tracks()[0].id)]);
}

/// `whole_frame_at = 0` (the default): whatever needs looking at, the
/// detector sees the whole frame; nothing wanted, nothing.
#[test]
fn whole_frame_at_zero_always_plans_the_whole_frame() {
    let mut p = Planner::new((300, 300), 4, 0.0);
    let small = [BoxF::new(10.0, 10.0, 30.0, 60.0)];
    assert_eq!(p.plan(&small, 1280, 720).plan, Plan::Whole);
    let none = p.plan(&[], 1280, 720);
    assert_eq!((none.plan, none.deferred), (Plan::Regions(vec![]), 0));
}
