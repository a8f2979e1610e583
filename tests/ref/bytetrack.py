"""The peer tracker: ByteTrack from the PyPI `supervision` package, run on the
same detections as ours.

usage: bytetrack.py VIDEO_JSON MIN_SCORE
  VIDEO_JSON  ssdlite.py's video.json (per frame: normalised yxyx boxes and
              scores of TensorFlow's detector)
  MIN_SCORE   detections below it are not given to the tracker
Prints JSON: {"tracks": {id: [frame index, ...]}} for tracks ByteTrack
reported (confirmed after 3 consecutive frames, lost after 15 frames = 1.5 s
at 10 fps, like ours).
"""
import json
import sys

import numpy as np
import supervision as sv


def main():
    video = json.load(open(sys.argv[1]))
    min_score = float(sys.argv[2])
    w, h, fps = video["width"], video["height"], video["fps"]
    tracker = sv.ByteTrack(
        track_activation_threshold=0.5,
        lost_track_buffer=15,
        minimum_matching_threshold=0.8,
        frame_rate=fps,
        minimum_consecutive_frames=3,
    )
    tracks = {}
    for i, name in enumerate(sorted(video["frames"])):
        dets = [d for d in video["frames"][name] if d["score"] >= min_score]
        if dets:
            xyxy = np.array([[d["box"][1] * w, d["box"][0] * h, d["box"][3] * w, d["box"][2] * h] for d in dets], dtype=np.float32)
            conf = np.array([d["score"] for d in dets], dtype=np.float32)
        else:
            xyxy = np.zeros((0, 4), dtype=np.float32)
            conf = np.zeros((0,), dtype=np.float32)
        d = sv.Detections(xyxy=xyxy, confidence=conf, class_id=np.zeros(len(dets), dtype=int))
        out = tracker.update_with_detections(d)
        for tid in out.tracker_id:
            tracks.setdefault(str(int(tid)), []).append(i)
    print(json.dumps({"tracks": tracks}))


if __name__ == "__main__":
    main()
