//! `/metrics` for people mode's motion and detector, per camera (the
//! counters of [`crate::telemetry::motion`]).

use super::{labels, Labels};
use crate::telemetry::CameraSnapshot;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// People mode, per camera: what motion found and what the detector
/// looked at (registered only once a camera has reported: the other modes'
/// scrapes stay as they were).
pub(super) fn series(r: &mut Registry, cameras: &[CameraSnapshot]) {
    let with_motion: Vec<_> = cameras
        .iter()
        .filter_map(|c| c.motion.as_ref().map(|m| (c.name.as_str(), m)))
        .collect();
    if with_motion.is_empty() {
        return;
    }
    let frames = Family::<Labels, Counter>::default();
    let seconds = Family::<Labels, Counter<f64, AtomicU64>>::default();
    let recalibrations = Family::<Labels, Counter>::default();
    let fraction = Family::<Labels, Gauge<f64, AtomicU64>>::default();
    let calibrating = Family::<Labels, Gauge>::default();
    let runs = Family::<Labels, Counter>::default();
    let skipped = Family::<Labels, Counter>::default();
    let deferred = Family::<Labels, Counter>::default();
    for (camera, m) in with_motion {
        let cam = labels(&[("camera", camera)]);
        for (state, n) in [
            ("moving", m.frames.moving),
            ("still", m.frames.still),
            ("calibrating", m.frames.calibrating),
        ] {
            frames
                .get_or_create(&labels(&[("camera", camera), ("state", state)]))
                .inc_by(n);
        }
        seconds.get_or_create(&cam).inc_by(m.cost.as_secs_f64());
        recalibrations.get_or_create(&cam).inc_by(m.recalibrations);
        fraction.get_or_create(&cam).set(m.fraction);
        calibrating
            .get_or_create(&cam)
            .set(i64::from(m.calibrating));
        for (look, n) in [("whole", m.detector.whole), ("region", m.detector.regions)] {
            runs.get_or_create(&labels(&[("camera", camera), ("look", look)]))
                .inc_by(n);
        }
        skipped
            .get_or_create(&cam)
            .inc_by(m.detector.skipped_frames);
        deferred.get_or_create(&cam).inc_by(m.regions_deferred);
    }
    r.register(
        "motion_frames",
        "People mode: frames motion ran on, by what it found: moving (a moving area), still (none), calibrating (relearning the background after the first frame or a sudden global change: nothing reported)",
        frames,
    );
    r.register(
        "motion_seconds",
        "People mode: time motion took (the grey image included), summed over its frames",
        seconds,
    );
    r.register(
        "motion_recalibrations",
        "People mode: sudden global changes (lights switched on) after which motion relearnt the background",
        recalibrations,
    );
    r.register(
        "motion_fraction",
        "People mode: share of the latest frame that moved (masked pixels left out)",
        fraction,
    );
    r.register(
        "motion_calibrating",
        "People mode: 1 while motion relearns the background",
        calibrating,
    );
    r.register(
        "people_detector_runs",
        "People mode: person detector runs, by what it looked at: the whole frame, or one square region (one run per region)",
        runs,
    );
    r.register(
        "people_detector_skipped_frames",
        "People mode: frames the person detector did not run on (nothing moved and no tracked person due, or over detect_fps)",
        skipped,
    );
    r.register(
        "people_regions_deferred",
        "People mode: regions left for a later frame (over max_regions)",
        deferred,
    );
}

#[cfg(test)]
mod tests {
    use crate::telemetry::prometheus::render;
    use crate::telemetry::Metrics;
    use std::time::Duration;

    /// Motion's series appear per people-mode camera, with values that add
    /// up to what was reported; a scrape without one has none of them.
    #[test]
    fn motion_and_detector_series_per_people_camera() {
        use crate::telemetry::motion::MotionSample;
        let m = Metrics::default();
        m.camera("till").captured("streaming");
        assert!(
            !render(&m).contains("motion"),
            "motion series without motion"
        );
        let aisle = m.camera("aisle");
        let frame = |boxes, runs, whole, deferred| MotionSample {
            measured: true,
            boxes,
            fraction: 0.25,
            cost: Duration::from_micros(500),
            detector_runs: runs,
            whole,
            regions_deferred: deferred,
            ..Default::default()
        };
        let day = [
            MotionSample {
                calibrating: true,
                ..frame(0, 0, false, 0)
            },
            frame(2, 2, false, 0),
            frame(6, 4, false, 2),
            frame(1, 1, true, 0),
            frame(0, 0, false, 0),
            MotionSample {
                calibrating: true,
                recalibrated: true,
                ..frame(0, 0, false, 0)
            },
        ];
        for s in &day {
            aisle.motion(s);
        }
        let text = render(&m);
        let count = |f: &dyn Fn(&MotionSample) -> bool| day.iter().filter(|s| f(s)).count();
        let regions: u32 = day
            .iter()
            .filter(|s| !s.whole)
            .map(|s| s.detector_runs)
            .sum();
        let deferred: u32 = day.iter().map(|s| s.regions_deferred).sum();
        for want in [
            format!(
                "stylecam_motion_frames_total{{camera=\"aisle\",state=\"moving\"}} {}",
                count(&|s| s.boxes > 0)
            ),
            format!(
                "stylecam_motion_frames_total{{camera=\"aisle\",state=\"still\"}} {}",
                count(&|s| s.boxes == 0 && !s.calibrating)
            ),
            format!(
                "stylecam_motion_frames_total{{camera=\"aisle\",state=\"calibrating\"}} {}",
                count(&|s| s.calibrating)
            ),
            format!(
                "stylecam_motion_seconds_total{{camera=\"aisle\"}} {}",
                Duration::from_micros(500 * day.len() as u64).as_secs_f64()
            ),
            "stylecam_motion_recalibrations_total{camera=\"aisle\"} 1".into(),
            "stylecam_motion_fraction{camera=\"aisle\"} 0.25".into(),
            "stylecam_motion_calibrating{camera=\"aisle\"} 1".into(),
            "stylecam_people_detector_runs_total{camera=\"aisle\",look=\"whole\"} 1".into(),
            format!(
                "stylecam_people_detector_runs_total{{camera=\"aisle\",look=\"region\"}} {regions}"
            ),
            format!(
                "stylecam_people_detector_skipped_frames_total{{camera=\"aisle\"}} {}",
                count(&|s| s.detector_runs == 0)
            ),
            format!("stylecam_people_regions_deferred_total{{camera=\"aisle\"}} {deferred}"),
        ] {
            assert!(text.contains(&want), "missing {want:?} in\n{text}");
        }
        assert!(
            !text.contains("camera=\"till\",state=\"moving\""),
            "till is not in people mode"
        );
    }
}
