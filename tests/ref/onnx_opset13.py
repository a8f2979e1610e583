"""Converts an ONNX model to opset 13 with onnx's version converter (what an
admin does with an older graph before INT8 calibration).

usage: onnx_opset13.py IN.onnx OUT.onnx
"""
import sys

import onnx
from onnx import version_converter

onnx.save(version_converter.convert_version(onnx.load(sys.argv[1]), 13), sys.argv[2])
