"""Prints the folder of the installed `onnx` Python package."""
import os
import onnx

print(os.path.dirname(onnx.__file__))
