#!/usr/bin/env python3
"""PyTorch peer for `stylecam gpu-check`'s throughput: the same work on the
same GPU in the same run. 1920x1080 YUYV / NV12 frames already on the GPU
(uint8) -> BT.601 limited-range RGB in float -> F.interpolate(bilinear,
antialias=True) to the shorter side -> centre crop -> (x/255 - mean)/std ->
FP32 or FP16, batch 1, 16, 64. Eager mode under inference_mode with cudnn
benchmark on, and torch.compile of the same function where it compiles in
time. Writes JSON (frames/s per case) to --out."""
import argparse
import json
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--seconds", type=float, default=0.3)
    ap.add_argument("--no-compile", action="store_true")
    a = ap.parse_args()
    try:
        import torch
        import torch.nn.functional as F
    except Exception as e:  # no torch here: say so in the report
        json.dump({"error": f"PyTorch is not importable: {e}"}, open(a.out, "w"))
        print(f"PyTorch is not importable: {e}")
        return 0
    if not torch.cuda.is_available():
        json.dump({"error": "torch.cuda.is_available() is False"}, open(a.out, "w"))
        print("no CUDA device for PyTorch")
        return 0
    torch.backends.cudnn.benchmark = True
    dev = torch.device("cuda")
    mean = torch.tensor([0.485, 0.456, 0.406], device=dev).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225], device=dev).view(1, 3, 1, 1)
    H, W = 1080, 1920

    def yuv_to_rgb(y, u, v):
        c = y - 16.0
        d = u - 128.0
        e = v - 128.0
        r = (298.0 * c + 409.0 * e + 128.0) / 256.0
        g = (298.0 * c - 100.0 * d - 208.0 * e + 128.0) / 256.0
        b = (298.0 * c + 516.0 * d + 128.0) / 256.0
        return torch.stack([r, g, b], dim=1).clamp_(0.0, 255.0)

    def make(fmt, size, half):
        rh = size
        rw = round(W * size / H)
        x0 = (rw - size) // 2

        def fn(frames):
            f = frames.float()
            if fmt == "yuyv":  # [B, H, W*2]
                y = f[:, :, 0::2]
                u = f[:, :, 1::4].repeat_interleave(2, dim=2)
                v = f[:, :, 3::4].repeat_interleave(2, dim=2)
            else:  # nv12: [B, H*3/2, W]
                y = f[:, :H, :]
                uv = f[:, H:, :]
                u = uv[:, :, 0::2].repeat_interleave(2, dim=1).repeat_interleave(2, dim=2)
                v = uv[:, :, 1::2].repeat_interleave(2, dim=1).repeat_interleave(2, dim=2)
            rgb = yuv_to_rgb(y, u, v)
            r = F.interpolate(rgb, size=(rh, rw), mode="bilinear", antialias=True, align_corners=False)
            r = r[:, :, :, x0:x0 + size]
            out = (r / 255.0 - mean) / std
            return out.half() if half else out

        return fn

    def timed(fn, x, seconds):
        fn(x)
        fn(x)
        torch.cuda.synchronize()
        n, t = 0, time.perf_counter()
        while n < 3 or time.perf_counter() - t < seconds:
            fn(x)
            n += 1
        torch.cuda.synchronize()
        return (time.perf_counter() - t) / n

    rows = []
    compile_ok = not a.no_compile
    with torch.inference_mode():
        for fmt in ["yuyv", "nv12"]:
            shape = (H, W * 2) if fmt == "yuyv" else (H * 3 // 2, W)
            for size in [224, 299]:
                for half in [False, True]:
                    for batch in [1, 16, 64]:
                        x = torch.randint(16, 236, (batch,) + shape, dtype=torch.uint8, device=dev)
                        fn = make(fmt, size, half)
                        eager = timed(fn, x, a.seconds)
                        row = {"format": fmt, "model": size, "precision": "fp16" if half else "fp32",
                               "batch": batch, "eager_frames_per_s": batch / eager}
                        if compile_ok:
                            try:
                                t0 = time.perf_counter()
                                cfn = torch.compile(fn, dynamic=False)
                                cfn(x)
                                row["compile_seconds"] = time.perf_counter() - t0
                                row["compiled_frames_per_s"] = batch / timed(cfn, x, a.seconds)
                                if row["compile_seconds"] > 20:
                                    compile_ok = False  # keep the run inside its time
                            except Exception as e:
                                row["compile_error"] = str(e)[:200]
                                compile_ok = False
                        rows.append(row)
                        print(json.dumps(row), flush=True)
    json.dump({"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "cases": rows},
              open(a.out, "w"), indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
