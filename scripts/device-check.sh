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
#   scripts/device-check.sh prepare-train / run-train
#                                     the same for GPU training (burn's
#                                     Vulkan backend, --features train-gpu):
#                                     device-check-train/ holds the binary
#                                     and Debian's Vulkan loader; run-train
#                                     compares a tiny run on GPU and CPU,
#                                     times ResNet50 224 training steps at
#                                     batch 32 and 64 next to PyTorch eager
#                                     and torch.compile, samples GPU memory;
#                                     report-train.md in $OUT
#
# With the device tool: run(command="scripts/device-check.sh run",
# carry=["device-check"], timeout_s=420), and
# run(command="scripts/device-check.sh run-train",
# carry=["device-check-train"], timeout_s=420) (each under 64 MiB). It needs the NVIDIA driver and an
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
prepare-train)
  set -e
  cargo build --features train-gpu --bin stylecam
  mkdir -p device-check-train
  # Stripped it is ~125 MB (burn, cubecl, wgpu): carried xz-compressed.
  strip -o target/stylecam-train-gpu target/debug/stylecam
  xz -T2 -6 -c target/stylecam-train-gpu > device-check-train/stylecam.xz
  (cd device-check-train && rm -f libvulkan1_*.deb && apt-get download -oAPT::Architecture=amd64 libvulkan1)
  du -sh device-check-train
  ;;
run-train)
  OUT=${OUT:-$(mktemp -d)}
  mkdir -p "$OUT"
  # Work files in W; $OUT gets three (a device call brings back at most 8).
  W=$(mktemp -d)
  [ -f device-check-train/stylecam.xz ] || { echo "no device-check-train/stylecam.xz: run 'scripts/device-check.sh prepare-train' first (and carry device-check-train)"; exit 2; }
  bin=$W/stylecam
  python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' device-check-train/stylecam.xz "$bin"
  chmod +x "$bin"
  if ! ldconfig -p | grep -q libvulkan.so.1; then
    for f in device-check-train/libvulkan1_*.deb; do dpkg -x "$f" /; done
    ldconfig
  fi
  for icd in /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json; do
    if [ -f "$icd" ]; then export VK_DRIVER_FILES=$icd; break; fi
  done
  echo "Vulkan ICD: ${VK_DRIVER_FILES:-none found (the loader searches its defaults)}"
  common=(bench train-steps --arch tiny_resnet50 --batch 8 --warmup 0 --steps 10 --seed 7 --classes 13)
  timeout 90 "$bin" "${common[@]}" --device gpu --json "$W/tiny-gpu.json" 2>&1 | tee "$W/tiny-gpu.log"
  timeout 90 "$bin" "${common[@]}" --device cpu --json "$W/tiny-cpu.json" 2>&1 | tee "$W/tiny-cpu.log"
  for b in 32 64; do
    ( while sleep 0.5; do nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits 2>/dev/null; done ) > "$W/memory-b$b.txt" &
    poll=$!
    timeout 120 "$bin" bench train-steps --arch resnet50 --batch "$b" --warmup 3 --steps 10 --device gpu \
      --json "$W/resnet50-b$b.json" 2>&1 | tee "$W/resnet50-b$b.log"
    kill "$poll" 2>/dev/null
  done
  PYTHONUNBUFFERED=1 timeout 150 python3 scripts/device/torch_train.py --out "$W/torch.json" 2>&1 | tee "$W/torch-train.log"
  python3 scripts/device/train_report.py "$W" | tee "$OUT/report-train.md"
  status=${PIPESTATUS[0]}
  tail -n +1 "$W"/*.log > "$OUT/train.log" 2>&1
  python3 -c 'import glob, json, os, sys; json.dump({os.path.basename(p): open(p).read() for p in sorted(glob.glob(sys.argv[1] + "/*.json") + glob.glob(sys.argv[1] + "/*.txt"))}, open(sys.argv[2], "w"))' "$W" "$OUT/train.json"
  exit "$status"
  ;;
*)
  echo "usage: $0 prepare|run|prepare-train|run-train"; exit 2
  ;;
esac
