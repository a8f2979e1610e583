"""Store-day streams made from OpenCV's vtest.avi (issue 36): what a store
camera sees most of the day (an empty aisle, its sensor noise, the light
drifting and once switched on) with busy stretches of real walkers.

usage:
  store_day.py DIR [--vtest PATH]
      DIR/plate.png          the clean background: the per-pixel temporal
                             median of all 795 frames (the walkers removed)
      DIR/noise.json         the sensor noise estimated from the still parts
                             of the video, per channel and brightness band
      DIR/day/NNNNN.jpg      2400 frames (240 s at 10 fps), 30% busy
      DIR/short/NNNNN.jpg    232 frames: 5 s idle, 13.2 s busy, 5 s idle
      DIR/light/NNNNN.jpg    600 frames idle: slow drift, lights on at 30 s
      DIR/screen/NNNNN.jpg   300 busy frames with a screen (42% of the
                             frame) showing fresh random content every frame
      DIR/<name>.json        each stream's manifest: fps, frames, segments
                             [{kind, start, end (exclusive), vtest_start}],
                             light_change_at, the drift and light formulas
      DIR/walkway.json       the walkway at 100% busy: vtest.avi itself, the
                             frames tests/ref/ssdlite.py writes to
                             ../ssdlite-v1/video (a manifest only)
      DIR/.complete          written last: the directory is whole
Frames are JPEG (quality 90), named so that a `files` camera plays them in
order. Deterministic: fixed seeds, one generator per frame. docs/store-day.md
explains each stream, the noise estimate and the sizes.
"""
import argparse
import json
import math
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np

VTEST = os.environ.get("VTEST_AVI", "/usr/share/doc/opencv-doc/examples/data/vtest.avi")
FPS = 10
QUALITY = 90
SEED = 36
# Slow drift: a gain of +-3% over a 300 s period (at most ~4.5 grey levels a
# minute at the video's mean brightness), on every frame of every stream.
DRIFT_AMPLITUDE, DRIFT_PERIOD_S = 0.03, 300.0
# Lights switched on: v' = v * 1.25 + 12 (a brightness and contrast step,
# +36% at the video's mean grey of ~112), from light_change_at on.
LIGHT_GAIN, LIGHT_OFFSET = 1.25, 12.0
# A still pixel: within NEAR grey levels of the plate in >= STILL_SHARE of
# the frames; its residuals within NEAR are its noise.
NEAR, STILL_SHARE = 10, 0.95
BAND = 32
# The all-motion camera's screen: the lower 42% of the frame (the lawn,
# where fewest of vtest's walkers are), random colour cells of 32 px.
SCREEN = (0.0, 0.58, 1.0, 1.0)
SCREEN_CELL = 32


def read_video(path):
    cap = cv2.VideoCapture(path)
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    if len(frames) != 795 or frames[0].shape != (576, 768, 3):
        sys.exit(f"{path}: expected OpenCV's vtest.avi (795 frames of 768x576), got "
                 f"{len(frames)} frames (apt install opencv-doc, or set VTEST_AVI)")
    return np.stack(frames)


def plate_of(video, pool):
    """Per-pixel temporal median (795 frames: the middle value, exact)."""
    n, h, w, c = video.shape
    plate = np.empty((h, w, c), np.uint8)

    def rows(y):
        # Each pixel's frames contiguous, then partitioned at the middle.
        series = video[:, y:y + 16].reshape(n, -1).T.copy()
        plate[y:y + 16] = np.partition(series, n // 2, axis=1)[:, n // 2].reshape(-1, w, c)

    list(pool.map(rows, range(0, h, 16)))
    return plate


def estimate_noise(video, plate):
    """Noise at still pixels: per brightness band of the plate and per
    channel, the deviation of each frame from the plate (what is used), the
    channels' correlation, and the frame-to-frame part for comparison."""
    grey = np.stack([cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) for f in video])
    plate_grey = cv2.cvtColor(plate, cv2.COLOR_BGR2GRAY)
    near_count = np.zeros(plate_grey.shape, np.int32)
    for g in grey:
        near_count += cv2.absdiff(g, plate_grey) <= NEAR
    still = near_count >= STILL_SHARE * len(grey)
    residuals, steps, luma = [], [], []
    for i in range(1, len(video), 15):
        near = still & (cv2.absdiff(grey[i], plate_grey) <= NEAR)
        residuals.append(video[i][near].astype(np.int16) - plate[near])
        luma.append(plate_grey[near])
        both = near & (cv2.absdiff(grey[i - 1], plate_grey) <= NEAR)
        steps.append(video[i][both].astype(np.int16) - video[i - 1][both])
    r = np.concatenate(residuals).astype(np.float32)
    lum = np.concatenate(luma)
    d = np.concatenate(steps).astype(np.float32)
    bands = []
    for lo in range(0, 256, BAND):
        sel = (lum >= lo) & (lum < lo + BAND)
        if sel.sum() < 5000:
            continue
        bands.append({"from": lo, "to": lo + BAND, "centre": lo + BAND / 2,
                      "samples": int(sel.sum()),
                      "sigma_bgr": [round(float(x), 3) for x in r[sel].std(axis=0)]})
    corr = np.corrcoef(r.T)
    rho = float((corr[0, 1] + corr[0, 2] + corr[1, 2]) / 3)
    return {
        "method": f"still pixels: grey within {NEAR} levels of the plate in >= {STILL_SHARE:.0%} "
                  f"of the frames; residual = frame - plate where within {NEAR} (every 15th frame), "
                  f"std per channel per {BAND}-level band of the plate's grey",
        "still_pixel_share": round(float(still.mean()), 4),
        "sigma_bgr": [round(float(x), 3) for x in r.std(axis=0)],
        "bands": bands,
        "channel_correlation": round(rho, 3),
        "frame_to_frame_sigma_bgr": [round(float(x), 3) for x in d.std(axis=0) / math.sqrt(2)],
        "frame_to_frame_unchanged_share": round(float((d == 0).mean()), 3),
        "note": "the idle frames use sigma (the deviation from the plate, band by band); "
                "vtest's codec repeats most still blocks from frame to frame, so its "
                "frame-to-frame noise is smaller (frame_to_frame_sigma_bgr): the idle frames are "
                "noisier frame to frame than vtest itself, the harder case for motion",
    }


def drift(frame):
    return 1.0 + DRIFT_AMPLITUDE * math.sin(2 * math.pi * (frame / FPS) / DRIFT_PERIOD_S)


class Maker:
    def __init__(self, video, plate, noise):
        self.video, self.plate = video, plate.astype(np.float32)
        centres = [b["centre"] for b in noise["bands"]]
        grey = cv2.cvtColor(plate, cv2.COLOR_BGR2GRAY).astype(np.float32)
        self.sigma = np.stack(
            [np.interp(grey, centres, [b["sigma_bgr"][c] for b in noise["bands"]])
             for c in range(3)], axis=2).astype(np.float32)
        rho = noise["channel_correlation"]
        self.shared, self.own = math.sqrt(rho), math.sqrt(1 - rho)
        self.noise_check = []

    def idle(self, seed):
        """The plate plus fresh noise: a part shared by the channels (their
        measured correlation) and a part of each, scaled by the band's sigma.
        OpenCV's generator (4x faster than numpy's), seeded per frame on
        the thread that draws, so the frames do not depend on scheduling."""
        h, w, _ = self.plate.shape
        shared = np.empty((h, w), np.float32)
        own = np.empty((h, w * 3), np.float32)
        cv2.setRNGSeed(seed)
        cv2.randn(shared, 0.0, 1.0)
        cv2.randn(own, 0.0, 1.0)
        z = own.reshape(h, w, 3)
        z *= self.own
        z += shared[..., None] * self.shared
        z *= self.sigma
        z += self.plate
        return np.maximum(z, 0.0, out=z)

    def frame(self, stream, i, seg, light_at, screen):
        seed = (SEED * 16 + stream) * 100_000 + i
        if seg["kind"] == "idle":
            v = self.idle(seed)
        else:
            v = self.video[seg["vtest_start"] + i - seg["start"]]
        a, b = drift(i), 0.0
        if light_at is not None and i >= light_at:
            a, b = a * LIGHT_GAIN, LIGHT_OFFSET
        # round(v * a + b), saturated to 0..255 (v >= 0, so the abs is none).
        out = cv2.convertScaleAbs(v, alpha=a, beta=b)
        if screen:
            rng = np.random.default_rng([SEED, stream, i])
            h, w, _ = out.shape
            x0, y0, x1, y1 = (int(round(SCREEN[0] * w)), int(round(SCREEN[1] * h)),
                              int(round(SCREEN[2] * w)), int(round(SCREEN[3] * h)))
            cells = rng.integers(0, 256, ((y1 - y0 + SCREEN_CELL - 1) // SCREEN_CELL,
                                          (x1 - x0 + SCREEN_CELL - 1) // SCREEN_CELL, 3), np.uint8)
            big = cells.repeat(SCREEN_CELL, 0).repeat(SCREEN_CELL, 1)
            out[y0:y1, x0:x1] = big[:y1 - y0, :x1 - x0]
        return out


def manifest(name, n, segments, light_at, screen=False):
    m = {
        "name": name,
        "frames_dir": name,
        "pattern": "%05d.jpg",
        "fps": FPS, "width": 768, "height": 576, "frames": n,
        "jpeg_quality": QUALITY,
        "segments": segments,
        "busy_fraction": round(sum(s["end"] - s["start"] for s in segments if s["kind"] == "busy") / n, 4),
        "light_change_at": light_at,
        "drift": {"formula": "v' = v * (1 + a * sin(2 * pi * t / period_s)), t = frame / fps",
                  "a": DRIFT_AMPLITUDE, "period_s": DRIFT_PERIOD_S},
        "light": {"formula": "from light_change_at on: v' = v * gain + offset (after the drift)",
                  "gain": LIGHT_GAIN, "offset": LIGHT_OFFSET},
        "idle": "plate.png + fresh Gaussian noise per frame (noise.json)",
        "busy": "vtest.avi frames vtest_start + (frame - start)",
        "seed": SEED,
    }
    if screen:
        m["screen"] = {"box": SCREEN, "cell_px": SCREEN_CELL,
                       "content": "uniform random colour per cell, fresh every frame, not lit by the drift"}
    return m


def segments_of(parts):
    """[(kind, length, vtest_start)] -> segments with frame indices."""
    out, at = [], 0
    for kind, length, vtest_start in parts:
        s = {"kind": kind, "start": at, "end": at + length}
        if kind == "busy":
            s["vtest_start"] = vtest_start
        out.append(s)
        at += length
    return out, at


STREAMS = [
    # 2400 frames, 720 busy (30%): four idle stretches of 420 around vtest
    # 0-239, 280-519 and 555-794; the lights go on in the middle of the
    # third idle stretch.
    ("day", [("idle", 420, None), ("busy", 240, 0), ("idle", 420, None), ("busy", 240, 280),
             ("idle", 420, None), ("busy", 240, 555), ("idle", 420, None)], 1320 + 210, False),
    # vtest 460-591: no one detected at either cut (score >= 0.5 in
    # ssdlite-v1/video.json), people walking in and out between.
    ("short", [("idle", 50, None), ("busy", 132, 460), ("idle", 50, None)], None, False),
    ("light", [("idle", 600, None)], 300, False),
    ("screen", [("busy", 300, 0)], None, True),
]


def make(out, vtest):
    t0 = time.time()
    os.makedirs(out, exist_ok=True)
    video = read_video(vtest)
    sizes = {}
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        plate = plate_of(video, pool)
        cv2.imwrite(os.path.join(out, "plate.png"), plate)
        noise = estimate_noise(video, plate)
        print(f"plate and noise: {time.time() - t0:.1f} s", file=sys.stderr)
        maker = Maker(video, plate, noise)
        for k, (name, parts, light_at, screen) in enumerate(STREAMS):
            segments, n = segments_of(parts)
            folder = os.path.join(out, name)
            os.makedirs(folder, exist_ok=True)

            def one(i, k=k, segments=segments, light_at=light_at, screen=screen, folder=folder):
                seg = next(s for s in segments if s["start"] <= i < s["end"])
                img = maker.frame(k, i, seg, light_at, screen)
                ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, QUALITY])
                assert ok
                with open(os.path.join(folder, f"{i:05d}.jpg"), "wb") as f:
                    f.write(buf.tobytes())
                return len(buf)

            total = sum(pool.map(one, range(n)))
            with open(os.path.join(out, f"{name}.json"), "w") as f:
                json.dump(manifest(name, n, segments, light_at, screen), f, indent=1)
            sizes[name] = {"frames": n, "bytes": total}
            print(f"{name}: {n} frames, {total / 1e6:.1f} MB, {time.time() - t0:.1f} s", file=sys.stderr)
    # What the idle frames hold after JPEG: the noise measured back on the
    # light stream's first idle frames (before the drift has moved much).
    got = []
    for i in range(0, 20):
        img = cv2.imread(os.path.join(out, "light", f"{i:05d}.jpg")).astype(np.float32)
        got.append(img / drift(i) - plate)
    noise["after_jpeg_sigma_bgr"] = [round(float(x), 3) for x in np.stack(got).reshape(-1, 3).std(axis=0)]
    with open(os.path.join(out, "noise.json"), "w") as f:
        json.dump(noise, f, indent=1)
    walkway = {
        "name": "walkway",
        "frames_dir": "../ssdlite-v1/video",
        "pattern": "%04d.jpg",
        "fps": FPS, "width": 768, "height": 576, "frames": 795,
        "jpeg_quality": 95,
        "segments": [{"kind": "busy", "start": 0, "end": 795, "vtest_start": 0}],
        "busy_fraction": 1.0,
        "light_change_at": None,
        "drift": None,
        "light": None,
        "busy": "vtest.avi itself, every frame (written by tests/ref/ssdlite.py prepare)",
    }
    with open(os.path.join(out, "walkway.json"), "w") as f:
        json.dump(walkway, f, indent=1)
    with open(os.path.join(out, "sizes.json"), "w") as f:
        json.dump({"streams": sizes, "seconds": round(time.time() - t0, 1)}, f, indent=1)
    with open(os.path.join(out, ".complete"), "w") as f:
        f.write("made by tests/ref/store_day.py\n")
    print(json.dumps({"streams": sizes, "noise": noise["sigma_bgr"],
                      "after_jpeg": noise["after_jpeg_sigma_bgr"],
                      "seconds": round(time.time() - t0, 1)}))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dir")
    p.add_argument("--vtest", default=VTEST)
    a = p.parse_args()
    if os.path.exists(os.path.join(a.dir, ".complete")):
        sys.exit(f"{a.dir} is already complete; remove it to make it again")
    make(a.dir, a.vtest)


if __name__ == "__main__":
    main()
