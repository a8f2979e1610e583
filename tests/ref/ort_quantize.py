"""onnxruntime's own INT8 quantiser, the peer of `stylecam calibrate`.

usage: ort_quantize.py MODEL OUT CALIB.f32 N,C,H,W entropy|percentile [PERCENTILE]

quantize_static in the QDQ format with the settings our Q/DQ graph uses:
per-channel symmetric INT8 weights, symmetric INT8 activations at the
inputs of Conv, Gemm and MatMul, calibrated on the same preprocessed tensors (raw
little-endian float32) one image at a time.
"""
import sys

import numpy as np
import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)

model, out, calib, shape, method = sys.argv[1:6]
percentile = float(sys.argv[6]) if len(sys.argv) > 6 else 99.99
x = np.fromfile(calib, dtype="<f4").reshape(tuple(int(d) for d in shape.split(",")))
graph = onnx.load(model).graph
weights = {t.name for t in graph.initializer}
name = next(i.name for i in graph.input if i.name not in weights)


class Images(CalibrationDataReader):
    def __init__(self):
        self.rest = iter(range(len(x)))

    def get_next(self):
        i = next(self.rest, None)
        return None if i is None else {name: x[i : i + 1]}


quantize_static(
    model,
    out,
    Images(),
    quant_format=QuantFormat.QDQ,
    per_channel=True,
    activation_type=QuantType.QInt8,
    weight_type=QuantType.QInt8,
    op_types_to_quantize=["Conv", "Gemm", "MatMul"],
    calibrate_method={
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }[method],
    extra_options={
        "ActivationSymmetric": True,
        "WeightSymmetric": True,
        "CalibPercentile": percentile,
        # As our graph: Q/DQ on the inputs of Conv/Gemm/MatMul, not on
        # their outputs (onnxruntime's default also quantises those).
        "OpTypesToExcludeOutputQuantization": ["Conv", "Gemm", "MatMul"],
    },
)
