#!/usr/bin/env python3
"""PyTorch peer for `stylecam bench train-steps --arch resnet50` on the same
GPU in the same run: ResNet50 (torchvision's when importable, else the same
bottleneck layout defined here), 224x224 inputs, 13-class multi-label BCE,
AdamW, batch 32 and 64; eager and torch.compile; images/s and peak GPU
memory. Writes JSON to --out."""
import argparse
import json
import sys
import time


def resnet50(nn, classes):
    try:
        import torchvision
        return torchvision.models.resnet50(num_classes=classes), "torchvision"
    except Exception:
        pass

    class Bottleneck(nn.Module):
        def __init__(self, cin, mid, stride):
            super().__init__()
            cout = mid * 4
            self.body = nn.Sequential(
                nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(inplace=True),
                nn.Conv2d(mid, mid, 3, stride, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(inplace=True),
                nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout))
            self.skip = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                         if stride != 1 or cin != cout else nn.Identity())

        def forward(self, x):
            return (self.body(x) + self.skip(x)).relu()

    layers = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1)]
    cin = 64
    for mid, n, stride in [(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)]:
        for i in range(n):
            layers.append(Bottleneck(cin, mid, stride if i == 0 else 1))
            cin = mid * 4
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, classes)]
    return nn.Sequential(*layers), "defined here"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--no-compile", action="store_true")
    a = ap.parse_args()
    try:
        import torch
        import torch.nn as nn
    except Exception as e:
        json.dump({"error": f"PyTorch is not importable: {e}"}, open(a.out, "w"))
        print(f"PyTorch is not importable: {e}")
        return 0
    if not torch.cuda.is_available():
        json.dump({"error": "torch.cuda.is_available() is False"}, open(a.out, "w"))
        return 0
    torch.backends.cudnn.benchmark = True
    dev = torch.device("cuda")
    rows = []
    for mode in ["eager"] + ([] if a.no_compile else ["compile"]):
        for batch in [32, 64]:
            torch.manual_seed(1)
            model, source = resnet50(nn, 13)
            model = model.to(dev).train()
            opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
            loss_fn = nn.BCEWithLogitsLoss()
            step_model = torch.compile(model) if mode == "compile" else model
            x = torch.randn(batch, 3, 224, 224, device=dev)
            y = (torch.rand(batch, 13, device=dev) < 0.3).float()
            torch.cuda.reset_peak_memory_stats()

            def step():
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(step_model(x), y)
                loss.backward()
                opt.step()
                return loss

            try:
                t0 = time.perf_counter()
                for _ in range(a.warmup):
                    step()
                torch.cuda.synchronize()
                warm = time.perf_counter() - t0
                t = time.perf_counter()
                for _ in range(a.steps):
                    step()
                torch.cuda.synchronize()
                dt = time.perf_counter() - t
                row = {"mode": mode, "batch": batch, "model": source, "images_per_s": batch * a.steps / dt,
                       "warmup_seconds": warm, "peak_mib": torch.cuda.max_memory_allocated() / 2**20}
            except Exception as e:
                row = {"mode": mode, "batch": batch, "error": str(e)[:300]}
            rows.append(row)
            print(json.dumps(row), flush=True)
    json.dump({"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "cases": rows},
              open(a.out, "w"), indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
