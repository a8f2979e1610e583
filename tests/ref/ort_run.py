"""Runs an ONNX model with onnxruntime (the reference for our CPU backend).

usage: ort_run.py MODEL INPUT.f32 N,C,H,W OUTPUT.f32
Input and output are raw little-endian float32.
"""
import sys

import numpy as np
import onnxruntime as ort

model, inp, shape, out = sys.argv[1:5]
shape = tuple(int(d) for d in shape.split(","))
x = np.fromfile(inp, dtype="<f4").reshape(shape)
sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
name = sess.get_inputs()[0].name
y = sess.run(None, {name: x})[0]
y.astype("<f4").tofile(out)
