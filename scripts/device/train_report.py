#!/usr/bin/env python3
"""The training device check's report (markdown, stdout) from its JSON
files in the folder given: tiny-gpu.json / tiny-cpu.json (the same seed on
either device), resnet50-b32.json / -b64.json (ours on the GPU),
memory-b32.txt / -b64.txt (nvidia-smi samples, MiB), torch.json (the peer).
Exits 1 when the GPU run does not match the CPU run within tolerance."""
import json
import os
import sys

d = sys.argv[1]


def load(name):
    try:
        return json.load(open(os.path.join(d, name)))
    except Exception as e:
        return {"error": f"{name}: {e}"}


ok = True
print("# Training device check (burn Vulkan backend)\n")
g, c = load("tiny-gpu.json"), load("tiny-cpu.json")
if "error" in g or "error" in c:
    print(f"tiny GPU vs CPU: did not run: {g.get('error') or c.get('error')}\n")
    ok = False
else:
    worst = max(abs(a - b) / max(abs(b), 0.1) for a, b in zip(g["losses"], c["losses"]))
    within = worst <= 0.03
    ok &= within
    print(f"## tiny_resnet50, same seed on {g['device']} and the CPU\n")
    print("| step | GPU loss | CPU loss |\n|---|---|---|")
    for i, (a, b) in enumerate(zip(g["losses"], c["losses"])):
        print(f"| {i} | {a:.5f} | {b:.5f} |")
    print(f"\nworst relative difference {worst:.4f} (tolerance 0.03): {'within' if within else 'OUTSIDE'}\n")
print("## ResNet50 224x224 training steps, images/s\n")
t = load("torch.json")
peer = {}
if "error" in t:
    print(f"PyTorch peer: {t['error']}\n")
else:
    for r in t["cases"]:
        peer[(r["mode"], r["batch"])] = r
    print(f"PyTorch {t['torch']} on {t['device']}.\n")
print("| batch | ours images/s | ours peak MiB (nvidia-smi) | torch eager | torch compile | ours / eager | torch peak MiB |")
print("|---|---|---|---|---|---|---|")
for b in [32, 64]:
    o = load(f"resnet50-b{b}.json")
    try:
        mem = max(int(x) for x in open(os.path.join(d, f"memory-b{b}.txt")).read().split() if x.isdigit())
    except Exception:
        mem = None
    e, k = peer.get(("eager", b), {}), peer.get(("compile", b), {})
    ours = o.get("images_per_s")
    ratio = f"{ours / e['images_per_s']:.2f}" if ours and e.get("images_per_s") else "-"
    f = lambda v: f"{v:.1f}" if isinstance(v, (int, float)) else "-"
    print(f"| {b} | {f(ours) if ours else o.get('error', '-')[:60]} | {mem or '-'} | {f(e.get('images_per_s'))} | "
          f"{f(k.get('images_per_s'))} | {ratio} | {f(e.get('peak_mib'))} |")
sys.exit(0 if ok else 1)
