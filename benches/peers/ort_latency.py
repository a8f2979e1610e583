"""Peer for our CPU backend: onnxruntime latency per frame at a batch size.

usage: ort_latency.py MODEL BATCH SIZE ITERATIONS
Prints the milliseconds per frame: the best of 5 rounds of ITERATIONS runs
(as the Rust side measures its backends).
"""
import sys
import time

import numpy as np
import onnxruntime as ort

model, batch, size, iters = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
x = np.random.default_rng(0).standard_normal((batch, 3, size, size)).astype(np.float32)
name = sess.get_inputs()[0].name
sess.run(None, {name: x})
best = float("inf")
for _ in range(5):
    t = time.perf_counter()
    for _ in range(iters):
        sess.run(None, {name: x})
    best = min(best, (time.perf_counter() - t) / iters / batch * 1000.0)
print(best)
