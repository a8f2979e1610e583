"""Prints where the PyPI wheels put TensorRT's libraries, one `name=dir`
per line: `rtx` (onnxruntime-ep-nv-tensorrt-rtx-cu13: libtensorrt_rtx.so.1
and its ONNX parser) and `lean` (tensorrt-lean-cu13-libs:
libnvinfer_lean.so.11). Missing packages are left out."""
import importlib.util
import os

for name, module in [("rtx", "onnxruntime_ep_nv_tensorrt_rtx"), ("lean", "tensorrt_lean_libs")]:
    spec = importlib.util.find_spec(module)
    if spec is None:
        continue
    locations = list(spec.submodule_search_locations or [])
    if not locations and spec.origin:
        locations = [os.path.dirname(spec.origin)]
    if locations:
        print(f"{name}={locations[0]}")
