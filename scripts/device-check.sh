#!/usr/bin/env bash
# GPU checks of the CUDA preprocessing, in one go (README, "GPU checks").
#
#   scripts/device-check.sh prepare   here: builds what the GPU machine needs
#                                     into device-check/ (git-ignored; the
#                                     stripped binary, ~35 MB, under the
#                                     64 MiB a device call carries)
#   scripts/device-check.sh run       there (or on any box with an NVIDIA
#                                     GPU): every kernel against the CPU
#                                     reference, throughput, a PyTorch peer;
#                                     report in $OUT (report.md + JSON)
#
# With the device tool: run(command="scripts/device-check.sh run",
# carry=["device-check"], timeout_s=420). It needs the NVIDIA driver and an
# NVRTC (a Python environment's nvidia-cuda-nvrtc wheel, or NVRTC_LIBRARY);
# PyTorch is optional (the peer columns stay empty without it). At most about
# 5 minutes: gpu-check ~2 min, the peer ~2 min.
set -uo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
prepare)
  set -e
  cargo build --release --features cuda --bin stylecam
  mkdir -p device-check
  strip -o device-check/stylecam target/release/stylecam
  du -sh device-check
  ;;
run)
  OUT=${OUT:-$(mktemp -d)}
  mkdir -p "$OUT"
  bin=device-check/stylecam
  [ -x "$bin" ] || { echo "no $bin: run 'scripts/device-check.sh prepare' first (and carry device-check)"; exit 2; }
  { nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.memory --format=csv 2>&1 || echo "nvidia-smi: not here"; } | tee "$OUT/nvidia-smi.csv"
  nvrtc=${NVRTC_LIBRARY:-$(python3 - <<'PY' 2>/dev/null
import glob, os, sys
for p in sys.path:
    for lib in sorted(glob.glob(os.path.join(p, "nvidia", "*", "lib", "libnvrtc.so.*")), reverse=True):
        if "builtins" not in lib and "alt" not in lib:
            print(lib); raise SystemExit
PY
)}
  echo "NVRTC: ${nvrtc:-not found in the Python environment (the binary looks in the usual places)}"
  args=(gpu-check --photos tests/data/photos --kernel-cache "$OUT/kernel-cache" --out "$OUT/gpu-check.json")
  [ -n "$nvrtc" ] && args+=(--nvrtc "$nvrtc")
  timeout 180 "$bin" "${args[@]}" 2>&1 | tee "$OUT/gpu-check.log"
  ours=${PIPESTATUS[0]}
  if [ ! -s "$OUT/gpu-check.json" ]; then
    python3 -c 'import json,sys; json.dump({"error": sys.argv[1]}, open(sys.argv[2], "w"))' \
      "exit $ours: $(tail -n 1 "$OUT/gpu-check.log")" "$OUT/gpu-check.json"
  fi
  rm -rf "$OUT/kernel-cache"
  PYTHONUNBUFFERED=1 timeout 150 python3 scripts/device/torch_preprocess.py --out "$OUT/torch.json" 2>&1 | tee "$OUT/torch.log"
  [ -s "$OUT/torch.json" ] || echo '{"error": "the PyTorch peer did not finish (see torch.log)"}' > "$OUT/torch.json"
  python3 scripts/device/report.py "$OUT/gpu-check.json" "$OUT/torch.json" | tee "$OUT/report.md"
  exit "$ours"
  ;;
*)
  echo "usage: $0 prepare|run"; exit 2
  ;;
esac
