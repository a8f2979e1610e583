//! Every fuzz corpus input and every input that once crashed a target
//! (`fuzz/corpus/<target>/`, `fuzz/regressions/<target>/`) through its
//! target's entry point (`stylecam::fuzzing`), as the fuzzer calls it: an
//! ordinary test of seconds, where `scripts/fuzz.sh` runs the campaigns.
//! Each input must return within a few seconds.

use crate::common::repo;
use std::time::{Duration, Instant};

#[test]
fn every_corpus_and_regression_input_returns() {
    let mut total = 0;
    for (name, target) in stylecam::fuzzing::TARGETS {
        let mut inputs = vec![];
        for dir in ["fuzz/corpus", "fuzz/regressions"] {
            let dir = repo().join(dir).join(name);
            if let Ok(entries) = std::fs::read_dir(&dir) {
                inputs.extend(entries.flatten().map(|e| e.path()).filter(|p| p.is_file()));
            }
        }
        assert!(!inputs.is_empty(), "no corpus for the fuzz target {name}");
        inputs.sort();
        let t = Instant::now();
        for path in &inputs {
            let data = std::fs::read(path).unwrap();
            let one = Instant::now();
            target(&data);
            assert!(
                one.elapsed() < Duration::from_secs(10),
                "{name}: {} took {:?}",
                path.display(),
                one.elapsed()
            );
        }
        eprintln!(
            "fuzz target {name}: {} inputs in {:.2} s",
            inputs.len(),
            t.elapsed().as_secs_f64()
        );
        total += inputs.len();
    }
    eprintln!("{total} fuzz inputs replayed");
}
