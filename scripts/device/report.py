#!/usr/bin/env python3
"""Combines `stylecam gpu-check`'s JSON and the PyTorch peer's into a
markdown report (stdout). Either may be missing or hold an error."""
import json
import sys


def load(path):
    try:
        return json.load(open(path))
    except Exception as e:
        return {"error": f"{path}: {e}"}


ours, torch = load(sys.argv[1]), load(sys.argv[2])
print("# GPU preprocessing device check\n")
if "error" in ours:
    print(f"stylecam gpu-check did not run to the end: {ours['error']}\n")
else:
    print(f"Device: {ours['device']}; DRAM peak (from attributes) {ours['dram_peak_gb_s']:.0f} GB/s; "
          f"kernels ready in {ours['open_seconds']:.2f} s.\n")
    acc = {}
    for r in ours["accuracy"]:
        k = (r["format"], r["precision"])
        m = acc.setdefault(k, [0.0, 0.0, True])
        m[0] = max(m[0], r["max_grey"])
        m[1] = max(m[1], r["mean_grey"])
        m[2] = m[2] and r["ok"]
    tol = ours["tolerance_grey_levels"]
    print(f"## Accuracy against the CPU reference (grey levels; tolerance fp32 {tol['fp32_max']}, fp16 {tol['fp16_max']})\n")
    print("| format | precision | max | worst mean | within |")
    print("|---|---|---|---|---|")
    for (f, p), (mx, mn, ok) in sorted(acc.items()):
        print(f"| {f} | {p} | {mx:.4f} | {mn:.5f} | {'yes' if ok else 'NO'} |")
    print()
    prep = ours.get("prepare", [])
    if prep:
        bad = [r for r in prep if not r["ok"]]
        print(f"## prepare(), as the daemon calls it (device and host slots, odd strides, bad frames)\n")
        print(f"{len(prep)} cases, {len(bad)} failed.\n")
        for r in bad:
            print(f"- FAILED: {r['format']} {r['case']} into a {r['slot']} slot: expected {r['expected']}, got {r['result']}")
        print()
    crops = ours.get("crops", [])
    if crops:
        bad = [r for r in crops if not r["ok"]]
        worst = max((r.get("max_grey", 0.0) for r in crops), default=0.0)
        print("## prepare_crops(), people mode (many boxes of one frame in one launch)\n")
        print(f"{len(crops)} cases, {len(bad)} failed; worst max difference {worst:.4f} grey levels.\n")
        for r in bad:
            print(f"- FAILED: {r['format']} crop {r['crop']} ({r.get('slot', '')} {r.get('precision', '')}): {r.get('result', r.get('max_grey'))}")
        print()
if "error" in torch:
    print(f"PyTorch peer: {torch['error']}\n")
    peer = {}
else:
    print(f"PyTorch {torch['torch']} on {torch['device']}.\n")
    peer = {(c["format"].lower(), c["model"], c["precision"], c["batch"]): c for c in torch["cases"]}
if "error" not in ours:
    print("## Throughput, 1920x1080 -> model size\n")
    print("GB/s counts the bytes the kernels read (the crop, not the whole frame) and write; "
          "ours and the peer both synchronise once per timed loop.\n")
    print("| format | model | prec | batch | ours frames/s | GB/s | of DRAM | torch eager f/s | torch compiled f/s | ours / best torch | pinned f/s | of copy limit |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in ours["throughput"]:
        d, p = r["device_resident"], r["from_pinned_host"]
        c = peer.get((r["format"].lower(), r["model"], r["precision"], r["batch"]), {})
        e = c.get("eager_frames_per_s")
        k = c.get("compiled_frames_per_s")
        best = max([v for v in [e, k] if v] or [0])
        ratio = f"{d['frames_per_s'] / best:.2f}" if best else "-"
        fmt = lambda v: f"{v:.0f}" if v else "-"
        print(f"| {r['format']} | {r['model']} | {r['precision']} | {r['batch']} | {d['frames_per_s']:.0f} | "
              f"{d['gb_s']:.0f} | {100 * d['of_dram_peak']:.0f}% | {fmt(e)} | {fmt(k)} | {ratio} | "
              f"{p['frames_per_s']:.0f} | {100 * p['of_copy_limit']:.0f}% |")
