//! `stylecam soak` for a few seconds: it runs the daemon with synthetic
//! cameras, samples it from /proc and reports. (The 30-minute run's figures
//! are in docs/benchmarks.md.)

use crate::common::*;

#[test]
fn a_short_soak_samples_the_daemon_and_reports_flat_fds_and_threads() {
    let out = stylecam()
        .args([
            "soak",
            "--cameras",
            "3",
            "--minutes",
            "0.2",
            "--interval",
            "1",
            "--warmup",
            "0.05",
        ])
        .output()
        .unwrap();
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    let samples = text
        .lines()
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() == 4 && f.iter().all(|x| x.parse::<f64>().is_ok())
        })
        .count();
    assert!(samples >= 8, "a sample a second for 12 s:\n{text}");
    for want in [
        "soak summary",
        "RSS     first",
        "growth after warm-up",
        "fds     first",
        "threads first",
        "daemon exit: exit status: 0",
    ] {
        assert!(text.contains(want), "missing {want:?}:\n{text}");
    }
    let flat = |what: &str| {
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(what))
            .unwrap();
        line.contains("slope +0.000/min")
    };
    assert!(flat("fds") && flat("threads"), "{text}");
}
