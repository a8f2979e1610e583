#!/usr/bin/env bash
# A fuzzing campaign of one target, or of all one after another:
#
#   scripts/fuzz.sh TARGET [SECONDS] [JOBS]     e.g. scripts/fuzz.sh mjpeg 1800
#   scripts/fuzz.sh all [SECONDS] [JOBS]
#
# Needs the nightly toolchain and cargo-fuzz (cargo install cargo-fuzz). The
# corpus grows in fuzz/work/TARGET (git-ignored, kept between campaigns,
# seeded from the committed fuzz/corpus/TARGET), is minimised with cmin at
# the end, and its 300 smallest inputs (under 64 KB) are copied into fuzz/corpus/TARGET
# (committed, so the replay stays seconds and the repository small). A crash
# lands in fuzz/artifacts/TARGET: copy it to fuzz/regressions/TARGET once
# fixed (tests/fuzz_replay.rs replays both committed folders in every test
# run). Prints one line per target for docs/fuzzing.md: executions,
# coverage (libFuzzer's `cov`) and the outcome.
set -uo pipefail
cd "$(dirname "$0")/../fuzz"
targets=(config bundle_manifest onnx labels mjpeg frames calibration engine_manifest)
[ "${1:-}" = all ] && set -- "${targets[*]}" "${@:2}"
seconds=${2:-1800}
jobs=${3:-1}
for t in $1; do
  mkdir -p "corpus/$t" "work/$t" "artifacts/$t"
  cp -n "corpus/$t"/* "work/$t"/ 2>/dev/null
  log=$(mktemp)
  cargo +nightly fuzz run -O "$t" "work/$t" -j "$jobs" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -max_len=262144 \
    -artifact_prefix="artifacts/$t/" >"$log" 2>&1
  rc=$?
  # libFuzzer's closing line; its status lines (`#N`) as a fallback (a
  # dictionary entry can also contain `#00`).
  execs=$(grep -oE 'Done [0-9]+ runs' "$log" | tail -1 | awk '{print $2}')
  [ -n "$execs" ] || execs=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#')
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | awk '{print $2}')
  crashes=$(find "artifacts/$t" -type f | wc -l)
  cargo +nightly fuzz cmin -O "$t" "work/$t" >/dev/null 2>&1 || true
  find "work/$t" -type f -size -64k -printf '%s %f\n' | sort -n | head -300 \
    | while read -r _ f; do cp -n "work/$t/$f" "corpus/$t/$f"; done
  echo "$t: ${seconds} s, ${execs:-0} executions, cov ${cov:-?}, corpus $(ls "work/$t" | wc -l) files ($(ls "corpus/$t" | wc -l) kept), exit $rc, artifacts $crashes"
  [ "$rc" -ne 0 ] && tail -40 "$log"
done
