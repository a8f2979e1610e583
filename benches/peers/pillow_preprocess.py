"""Peer for our CPU preprocessing: Pillow resize (BILINEAR) + centre crop +
mean/std normalisation to CHW float32, the usual torchvision-style path.

usage: pillow_preprocess.py IN.rgb W H OUT_SIZE ITERATIONS
Prints the mean milliseconds per frame.
"""
import sys
import time

import numpy as np
from PIL import Image

src, w, h, size, iters = sys.argv[1:6]
w, h, size, iters = int(w), int(h), int(size), int(iters)
raw = open(src, "rb").read()
mean = np.array([0.485, 0.456, 0.406], dtype=np.float32).reshape(3, 1, 1)
std = np.array([0.229, 0.224, 0.225], dtype=np.float32).reshape(3, 1, 1)


def preprocess():
    img = Image.frombytes("RGB", (w, h), raw)
    s = size / min(w, h)
    rw, rh = max(1, round(w * s)), max(1, round(h * s))
    img = img.resize((rw, rh), Image.BILINEAR)
    left, top = (rw - size) // 2, (rh - size) // 2
    img = img.crop((left, top, left + size, top + size))
    x = np.asarray(img, dtype=np.float32).transpose(2, 0, 1) / 255.0
    return (x - mean) / std


preprocess()
t = time.perf_counter()
for _ in range(iters):
    preprocess()
print((time.perf_counter() - t) / iters * 1000.0)
