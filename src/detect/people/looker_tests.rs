//! Where the detector looks: [`Looker::wanted`] on synthetic motion and
//! tracks (no detector needed).

use super::*;
use crate::detect::motion::Moved;
use crate::detect::track::{Tracker, TrackerConfig};

fn looker(motion: bool) -> Looker {
    let config = MotionConfig {
        enabled: motion,
        ..MotionConfig::default()
    };
    Looker {
        motion: motion.then(|| Motion::new(&config)),
        planner: Planner::new((300, 300), 4, 0.6),
        masks: vec![],
        still: HashMap::new(),
        whole_next: true,
        clock_ms: 0,
    }
}

fn moved(boxes: Vec<BoxF>, calibrating: bool) -> Moved {
    Moved {
        boxes,
        fraction: 0.01,
        calibrating,
        recalibrated: false,
    }
}

fn person(x: f32) -> Detection {
    Detection {
        bbox: BoxF::new(x, 100.0, x + 40.0, 200.0),
        score: 0.9,
        class: 1,
    }
}

fn boxes(w: Option<Wanted>) -> Option<Vec<BoxF>> {
    match w {
        None => None,
        Some(Wanted::Whole) => panic!("the whole frame, not boxes"),
        Some(Wanted::Boxes(b)) => Some(b),
    }
}

#[test]
fn with_motion_off_the_detector_always_sees_the_whole_frame() {
    let mut l = looker(false);
    let config = PeopleConfig::default();
    for _ in 0..3 {
        assert!(matches!(l.wanted(None, &[], &config), Some(Wanted::Whole)));
    }
}

#[test]
fn idle_means_no_detector_run_after_a_first_look_at_everything_and_calibrating_means_whole() {
    let mut l = looker(true);
    let config = PeopleConfig::default();
    let still = moved(vec![], false);
    // The first detector frame looks at the whole frame (someone may stand
    // still in view from the start)...
    assert!(matches!(
        l.wanted(Some(&still), &[], &config),
        Some(Wanted::Whole)
    ));
    // ...then nothing moves and nobody is tracked: nothing to look at.
    for _ in 0..10 {
        l.clock_ms += 200;
        assert!(l.wanted(Some(&still), &[], &config).is_none());
    }
    // Motion: its box is looked at.
    let b = BoxF::new(10.0, 20.0, 60.0, 90.0);
    assert_eq!(
        boxes(l.wanted(Some(&moved(vec![b], false)), &[], &config)),
        Some(vec![b])
    );
    // While motion recalibrates (the lights went on) it is blind: the
    // whole frame (at detect_fps), not its boxes.
    assert!(matches!(
        l.wanted(Some(&moved(vec![b], true)), &[], &config),
        Some(Wanted::Whole)
    ));
}

#[test]
fn a_person_standing_still_is_looked_at_every_stationary_interval() {
    let mut l = looker(true);
    l.whole_next = false;
    let config = PeopleConfig {
        stationary_interval_ms: 2000,
        ..PeopleConfig::default()
    };
    let mut tracker = Tracker::new(TrackerConfig {
        min_hits: 1,
        ..TrackerConfig::default()
    });
    let nothing = moved(vec![], false);
    let mut looks = vec![];
    // One person, not moving, for 10 s at 5 detector frames a second.
    for frame in 0..50u64 {
        l.clock_ms = frame * 200;
        let wanted = boxes(l.wanted(Some(&nothing), tracker.tracks(), &config));
        let looked = wanted.is_some() || frame == 0;
        if looked {
            looks.push(frame);
            tracker.update(&[person(100.0)], 200);
            l.looked(tracker.tracks(), None);
        }
    }
    // Every detector frame until they have stood still 3 s (frame 15),
    // then every 2 s after the last look (frame 14): 24, 34, 44.
    let want: Vec<u64> = (0..=14).chain([24, 34, 44]).collect();
    assert_eq!(looks, want);
    // They move: motion sees it, and once the detector has seen them
    // elsewhere they are looked at on every detector frame again (for 3 s),
    // motion or not.
    l.clock_ms = 50 * 200;
    let stir = moved(vec![BoxF::new(120.0, 100.0, 170.0, 200.0)], false);
    assert!(boxes(l.wanted(Some(&stir), tracker.tracks(), &config)).is_some());
    tracker.update(&[person(130.0)], 200);
    l.looked(tracker.tracks(), None);
    for frame in 51..60u64 {
        l.clock_ms = frame * 200;
        let wanted = boxes(l.wanted(Some(&nothing), tracker.tracks(), &config));
        assert_eq!(wanted.map(|b| b.len()), Some(1), "frame {frame}");
        tracker.update(&[person(130.0)], 200);
        l.looked(tracker.tracks(), None);
    }
}

#[test]
fn a_person_the_run_did_not_look_at_is_not_counted_as_looked_at() {
    let mut l = looker(true);
    let mut tracker = Tracker::new(TrackerConfig {
        min_hits: 1,
        ..TrackerConfig::default()
    });
    tracker.update(&[person(100.0), person(600.0)], 0);
    l.looked(tracker.tracks(), None);
    l.clock_ms = 5000;
    let left_only = [BoxF::new(0.0, 0.0, 300.0, 300.0)];
    l.looked(tracker.tracks(), Some(&left_only));
    let at: Vec<u64> = tracker
        .tracks()
        .iter()
        .map(|t| l.still[&t.id].looked_ms)
        .collect();
    assert_eq!(at, [5000, 0]);
}
