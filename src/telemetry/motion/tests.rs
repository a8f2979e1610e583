use super::*;
use crate::telemetry::Metrics;

fn still(ms: u64) -> MotionSample {
    MotionSample {
        measured: true,
        cost: Duration::from_micros(ms * 1000),
        ..Default::default()
    }
}

#[test]
fn a_camera_that_never_reported_has_no_motion_object() {
    let m = Metrics::default();
    m.camera("till").captured("streaming");
    let snap = m.snapshot();
    assert_eq!(snap.cameras[0].motion, None);
    let json = serde_json::to_value(&snap.cameras[0]).unwrap();
    assert!(json.get("motion").is_none(), "{json}");
}

/// A short day: the first frame calibrates, a walker crosses (whole frame
/// once, then regions, one deferred), the lights go on (recalibration),
/// then nothing moves and the detector rests.
#[test]
fn frames_are_counted_by_what_motion_made_of_them_and_runs_by_what_was_looked_at() {
    let m = Metrics::default();
    let cam = m.camera("aisle");
    let mut day = vec![MotionSample {
        calibrating: true,
        detector_runs: 0,
        ..still(2)
    }];
    day.push(MotionSample {
        boxes: 1,
        fraction: 0.61,
        detector_runs: 1,
        whole: true,
        ..still(1)
    });
    for _ in 0..3 {
        day.push(MotionSample {
            boxes: 2,
            fraction: 0.02,
            detector_runs: 2,
            regions_deferred: 1,
            ..still(1)
        });
    }
    day.push(MotionSample {
        calibrating: true,
        recalibrated: true,
        fraction: 0.9,
        ..still(1)
    });
    day.push(MotionSample {
        calibrating: true,
        ..still(1)
    });
    for _ in 0..5 {
        day.push(still(1));
    }
    // Motion off for one frame (a reload): the detector runs whole.
    day.push(MotionSample {
        detector_runs: 1,
        whole: true,
        ..Default::default()
    });
    let mut cost = Duration::ZERO;
    for s in &day {
        cam.motion(s);
        if s.measured {
            cost += s.cost;
        }
    }
    let snap = m.snapshot().cameras[0].motion.clone().expect("motion");
    let measured = day.iter().filter(|s| s.measured).count() as u64;
    assert_eq!(
        snap.frames,
        MotionFrames {
            moving: 4,
            still: 5,
            calibrating: 3
        }
    );
    assert_eq!(
        snap.frames.moving + snap.frames.still + snap.frames.calibrating,
        measured
    );
    assert_eq!(snap.recalibrations, 1);
    assert_eq!(snap.detector.whole, 2);
    assert_eq!(snap.detector.regions, 3 * 2);
    let idle = day.iter().filter(|s| s.detector_runs == 0).count() as u64;
    assert_eq!(snap.detector.skipped_frames, idle);
    assert_eq!(snap.regions_deferred, 3);
    assert_eq!(snap.cost, cost);
    let mean = cost.as_secs_f64() * 1e3 / measured as f64;
    assert!(
        (snap.mean_ms - mean).abs() < 1e-3,
        "{} vs {mean}",
        snap.mean_ms
    );
    // Every measured frame cost 1–2 ms: the 99th percentile's bucket edge
    // lies within 2× of the slowest.
    assert!(
        (2.0..=4.1).contains(&snap.p99_ms),
        "p99 {} ms for frames of 1–2 ms",
        snap.p99_ms
    );
    // The latest frame had motion off.
    assert!(!snap.enabled && !snap.moving && !snap.calibrating);
    cam.motion(&MotionSample {
        boxes: 3,
        fraction: 0.123456,
        detector_runs: 2,
        ..still(1)
    });
    let now = m.snapshot().cameras[0].motion.clone().unwrap();
    assert!(now.enabled && now.moving && !now.calibrating);
    assert_eq!((now.boxes, now.fraction), (3, 0.1235));
}

#[test]
fn detector_runs_per_second_cover_the_last_ten_to_twenty_seconds() {
    let stats = MotionStats::default();
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    // 15 s at 10 fps: a region run on every other frame (5 runs/s).
    for i in 0..150u32 {
        let s = MotionSample {
            detector_runs: i % 2,
            ..still(1)
        };
        stats.record(&s, at(u64::from(i) * 100));
    }
    let rate = |ms| stats.snapshot_at(at(ms)).unwrap().detector.runs_per_s;
    let busy = rate(15_000);
    assert!((busy - 5.0).abs() < 0.1, "busy: {busy} runs/s");
    // Then 10 s with the detector resting: the rate falls to what the
    // window still holds, never to a stale figure.
    for i in 150..250u64 {
        stats.record(&still(1), at(i * 100));
    }
    let resting = rate(25_000);
    assert!(resting < busy / 2.0, "resting: {resting} runs/s");
    // No frames at all for a minute (the camera stopped): 0.
    assert_eq!(rate(85_000), 0.0);
}

#[test]
fn the_health_message_carries_the_motion_object_per_camera() {
    let m = Metrics::default();
    m.camera("door").captured("streaming");
    m.camera("aisle").motion(&MotionSample {
        boxes: 1,
        fraction: 0.05,
        detector_runs: 1,
        ..still(1)
    });
    let json = serde_json::to_value(m.snapshot().cameras).unwrap();
    let aisle = &json[0];
    assert_eq!(aisle["name"], "aisle");
    let motion = &aisle["motion"];
    for key in [
        "enabled",
        "moving",
        "boxes",
        "fraction",
        "calibrating",
        "frames",
        "recalibrations",
        "mean_ms",
        "p99_ms",
        "detector",
        "regions_deferred",
    ] {
        assert!(motion.get(key).is_some(), "no {key} in {motion}");
    }
    assert!(
        motion.get("cost").is_none(),
        "internal field leaked: {motion}"
    );
    assert_eq!(motion["detector"]["regions"], 1);
    assert!(
        json[1].get("motion").is_none(),
        "door is not in people mode"
    );
}
