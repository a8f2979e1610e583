#!/usr/bin/env python3
"""Motion with OpenCV: the steps of src/detect/motion.rs done with cv2, the
peer of tests/motion_peer.rs (box agreement) and benches/motion.rs (cost).

Per frame: grey image at --rows rows (cv2.resize INTER_AREA), contrast
stretched between the 4th and 96th percentile (remembered over frames with
weight 1/32, reset at a recalibration; cv2.LUT), GaussianBlur 3x3,
|grey - average| > threshold (absdiff on the average rounded with
convertScaleAbs, threshold), dilate 3x3, findContours (external) ->
boundingRect of contours of at least --contour-area pixels, the average
followed with accumulateWeighted (0.2 while calibrating). Lightning: more
than --lightning of the image moving resets the average and the contrast
(calibrating until 3 calm frames; given up after 50, as ours).

The area of a contour is the number of pixels it encloses (cv2.contourArea
of the outline through pixel centres plus half its perimeter plus one,
Pick's theorem), which is what ours counts (8-connected component pixels).

Input: --frames DIR of JPEGs (the first --count, sorted), or --grey FILE of
raw grey images (--width x --rows each, back to back) standing for
--frame-size WxH frames. Prints one JSON object: per-frame boxes (frame
pixels), calibrating flags and ms per frame of each stage (median of the
frames; one thread).
"""

import argparse
import json
import os
import sys
import time

import cv2
import numpy as np

LO, HI = 0.04, 0.96
CONTRAST_MEMORY = 1.0 / 32.0
CALIBRATING_ALPHA = 0.2
SETTLE_FRAMES = 3
GIVE_UP_FRAMES = 50


class Motion:
    def __init__(self, a):
        self.a = a
        self.avg = None
        self.contrast = None
        self.calibrating = True
        self.calibrating_frames = 0
        self.calm_frames = 0
        self.armed = True
        self.kernel = np.ones((3, 3), np.uint8)

    def prepare(self, grey, reset):
        if not self.a.improve_contrast:
            return cv2.GaussianBlur(grey, (3, 3), 0)
        flat = grey.reshape(-1)
        n = flat.size
        klo, khi = int(LO * (n - 1)), int(HI * (n - 1))
        part = np.partition(flat, (klo, khi))
        lo, hi = float(part[klo]), float(part[khi])
        if self.contrast is None or reset:
            self.contrast = (lo, hi)
        else:
            l, h = self.contrast
            l = np.float32(l) + (np.float32(lo) - np.float32(l)) * np.float32(CONTRAST_MEMORY)
            h = np.float32(h) + (np.float32(hi) - np.float32(h)) * np.float32(CONTRAST_MEMORY)
            self.contrast = (float(l), float(h))
        l, h = self.contrast
        v = np.arange(256, dtype=np.float64)
        span = h - l
        if span < 1.0:
            lut = v.astype(np.uint8)
        else:
            lut = np.clip(np.floor((v - l) * 255.0 / span + 0.5), 0, 255).astype(np.uint8)
        return cv2.GaussianBlur(cv2.LUT(grey, lut), (3, 3), 0)

    def update(self, grey):
        """Boxes (grey-image pixels, x0 y0 x1 y1), calibrating."""
        a = self.a
        if self.avg is None or self.avg.shape != grey.shape:
            self.__init__(a)
            blurred = self.prepare(grey, True)
            self.avg = blurred.astype(np.float32)
            return [], True
        blurred = self.prepare(grey, False)
        delta = cv2.absdiff(blurred, cv2.convertScaleAbs(self.avg))
        moving = cv2.threshold(delta, a.threshold, 255, cv2.THRESH_BINARY)[1]
        dilated = cv2.dilate(moving, self.kernel, iterations=1)
        fraction = cv2.countNonZero(dilated) / dilated.size
        calm = fraction < min(a.lightning / 2.0, 0.1)
        self.calm_frames = self.calm_frames + 1 if calm else 0
        if self.armed and fraction > a.lightning:
            if not self.calibrating:
                self.calibrating = True
                self.calibrating_frames = 0
            self.calibrating_frames += 1
            self.calm_frames = 0
            if self.calibrating_frames < GIVE_UP_FRAMES:
                self.avg = self.prepare(grey, True).astype(np.float32)
                return [], True
            self.calibrating = False
            self.armed = False
        elif self.calibrating:
            self.calibrating_frames += 1
            if self.calm_frames >= SETTLE_FRAMES:
                self.calibrating = False
            elif self.calibrating_frames >= GIVE_UP_FRAMES:
                self.calibrating = False
                self.armed = False
        elif not self.armed and self.calm_frames >= SETTLE_FRAMES:
            self.armed = True
        alpha = CALIBRATING_ALPHA if self.calibrating else a.alpha
        cv2.accumulateWeighted(blurred, self.avg, alpha)
        if self.calibrating:
            return [], True
        contours, _ = cv2.findContours(dilated, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        boxes = []
        for c in contours:
            area = cv2.contourArea(c) + len(c) / 2.0 + 1.0
            if area >= a.contour_area:
                x, y, w, h = cv2.boundingRect(c)
                boxes.append((x, y, x + w, y + h))
        return boxes, False


def median_ms(times):
    return float(np.median(times) * 1e3) if times else None


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--frames")
    p.add_argument("--count", type=int, default=300)
    p.add_argument("--grey")
    p.add_argument("--width", type=int)
    p.add_argument("--rows", type=int, default=100)
    p.add_argument("--frame-size")
    p.add_argument("--threshold", type=int, default=30)
    p.add_argument("--contour-area", type=int, default=10)
    p.add_argument("--alpha", type=float, default=0.01)
    p.add_argument("--lightning", type=float, default=0.8)
    p.add_argument("--no-contrast", dest="improve_contrast", action="store_false")
    a = p.parse_args()
    cv2.setNumThreads(1)

    out = {"opencv": cv2.__version__}
    greys, size = [], None
    if a.grey:
        fw, fh = (int(v) for v in a.frame_size.split("x"))
        raw = np.fromfile(a.grey, np.uint8)
        n = raw.size // (a.width * a.rows)
        greys = list(raw[: n * a.width * a.rows].reshape(n, a.rows, a.width))
        size = (fw, fh)
    elif a.frames:
        names = sorted(f for f in os.listdir(a.frames) if f.endswith(".jpg"))[: a.count]
        blobs = [np.fromfile(os.path.join(a.frames, f), np.uint8) for f in names]
        t_full, t_reduced, t_resize_full, t_resize_reduced = [], [], [], []
        for b in blobs:
            t0 = time.perf_counter()
            full = cv2.imdecode(b, cv2.IMREAD_GRAYSCALE)
            t1 = time.perf_counter()
            reduced = cv2.imdecode(b, cv2.IMREAD_REDUCED_GRAYSCALE_4)
            t2 = time.perf_counter()
            fh, fw = full.shape
            rows = min(a.rows, fh)
            width = max(1, (fw * rows + fh // 2) // fh)
            g = cv2.resize(full, (width, rows), interpolation=cv2.INTER_AREA)
            t3 = time.perf_counter()
            cv2.resize(reduced, (width, rows), interpolation=cv2.INTER_AREA)
            t4 = time.perf_counter()
            t_full.append(t1 - t0)
            t_reduced.append(t2 - t1)
            t_resize_full.append(t3 - t2)
            t_resize_reduced.append(t4 - t3)
            greys.append(g)
            size = (fw, fh)
        out["ms_decode_full_grey"] = median_ms(t_full)
        out["ms_decode_reduced_grey"] = median_ms(t_reduced)
        out["ms_resize_full"] = median_ms(t_resize_full)
        out["ms_resize_reduced"] = median_ms(t_resize_reduced)
    else:
        sys.exit("give --frames DIR or --grey FILE --width W --rows H --frame-size WxH")

    m = Motion(a)
    boxes, calibrating, t_steps = [], [], []
    for g in greys:
        t0 = time.perf_counter()
        b, cal = m.update(g)
        t_steps.append(time.perf_counter() - t0)
        sx, sy = size[0] / g.shape[1], size[1] / g.shape[0]
        boxes.append([[x0 * sx, y0 * sy, x1 * sx, y1 * sy] for x0, y0, x1, y1 in b])
        calibrating.append(cal)
    out["ms_steps"] = median_ms(t_steps)
    out["frames"] = len(greys)
    out["boxes"] = boxes
    out["calibrating"] = calibrating
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
