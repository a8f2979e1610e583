#!/usr/bin/env bash
# A fuzzing campaign of one target, or of all one after another:
#
#   scripts/fuzz.sh TARGET [SECONDS] [JOBS]     e.g. scripts/fuzz.sh mjpeg 1800
#   scripts/fuzz.sh all [SECONDS] [JOBS]
#
# Needs the nightly toolchain and cargo-fuzz (cargo install cargo-fuzz). The
# corpus grows in fuzz/corpus/TARGET (minimised at the end with cmin, so it
# stays small enough to commit); a crash lands in fuzz/artifacts/TARGET: copy
# it to fuzz/regressions/TARGET once fixed (tests/fuzz_replay.rs replays both
# folders in every test run). Prints one line per target for docs/fuzzing.md:
# executions, coverage (libFuzzer's `cov`) and the outcome.
set -uo pipefail
cd "$(dirname "$0")/../fuzz"
targets=(config bundle_manifest onnx labels mjpeg frames calibration engine_manifest)
[ "${1:-}" = all ] && set -- "${targets[*]}" "${@:2}"
seconds=${2:-1800}
jobs=${3:-1}
for t in $1; do
  mkdir -p "corpus/$t" "artifacts/$t"
  log=$(mktemp)
  cargo +nightly fuzz run "$t" "corpus/$t" -j "$jobs" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -max_len=262144 \
    -artifact_prefix="artifacts/$t/" >"$log" 2>&1
  rc=$?
  execs=$(grep -oE '#[0-9]+' "$log" | tail -1 | tr -d '#')
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | awk '{print $2}')
  crashes=$(find "artifacts/$t" -type f | wc -l)
  cargo +nightly fuzz cmin "$t" "corpus/$t" >/dev/null 2>&1 || true
  echo "$t: ${seconds} s, ${execs:-0} executions, cov ${cov:-?}, corpus $(ls "corpus/$t" | wc -l) files, exit $rc, artifacts $crashes"
  [ "$rc" -ne 0 ] && tail -40 "$log"
done
