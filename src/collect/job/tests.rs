//! The job's state files: a restart's run marked stopped, run ids, pruning.

use super::runs::*;
use super::*;

fn state(id: &str, outcome: Outcome) -> RunState {
    RunState {
        id: id.into(),
        started_at: "2026-12-07T21:00:00Z".into(),
        ended_at: None,
        outcome,
        log: vec!["a line".into()],
    }
}

#[test]
fn a_run_left_running_by_a_restart_is_marked_stopped() {
    let dir = tempfile::tempdir().unwrap();
    for (id, o) in [
        ("20261207T210000Z", Outcome::Running),
        (
            "20261207T210100Z",
            Outcome::Failed {
                error: "no labels".into(),
            },
        ),
    ] {
        std::fs::create_dir_all(runs_dir(dir.path()).join(id)).unwrap();
        write_state(dir.path(), &state(id, o)).unwrap();
    }
    assert_eq!(recover(dir.path()), vec!["20261207T210000Z".to_string()]);
    let s = read_state(dir.path(), "20261207T210000Z").unwrap();
    assert_eq!(
        s.outcome,
        Outcome::Stopped {
            reason: RESTARTED.into()
        }
    );
    assert!(s.ended_at.is_some());
    assert!(recover(dir.path()).is_empty());
    let latest = latest(dir.path()).unwrap();
    assert_eq!(latest.run.id, "20261207T210100Z");
    assert_eq!(latest.run.outcome.name(), "failed");
}

#[test]
fn only_a_finished_run_of_a_plain_id_gives_a_bundle() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(runs_dir(dir.path()).join("20261207T210000Z")).unwrap();
    write_state(dir.path(), &state("20261207T210000Z", Outcome::Running)).unwrap();
    assert!(matches!(
        finished_bundle(dir.path(), "20261207T210000Z"),
        Err(JobError::NotFinished {
            state: "running",
            ..
        })
    ));
    for bad in ["../x", "", "a/b", "20261207T210000Z/.."] {
        assert!(matches!(
            finished_bundle(dir.path(), bad),
            Err(JobError::NoRun(_))
        ));
    }
}

#[test]
fn ids_of_one_second_sort_by_their_count_and_old_runs_are_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let runs = runs_dir(dir.path());
    let ids = [
        "20261207T210000Z",
        "20261207T210000Z-2",
        "20261207T210000Z-10",
        "20261207T210100Z",
        "20261207T210200Z",
        "20261207T210300Z",
    ];
    for id in ids {
        std::fs::create_dir_all(runs.join(id)).unwrap();
        write_state(dir.path(), &state(id, Outcome::Running)).unwrap();
    }
    assert_eq!(run_ids(&runs), ids);
    prune(&runs);
    assert_eq!(run_ids(&runs), &ids[2..]);
}
