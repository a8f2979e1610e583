#!/usr/bin/env python3
"""The committed labels of vtest.avi's people (tests/data/vtest-people) for
crops the box collected from vtest.avi's frames.

    scripts/vtest_labels.py apply --collect DIR --labels tests/data/vtest-people \
        --out labels.csv [--margin 0.1] [--min-iou 0.5] [--frames 5] [--split train]

Each crop's sidecar (`<stem>.json` beside `<stem>.png` in DIR) gives the
frame (`seq`: for a files camera playing the extracted frames
`0000.jpg`… in order, the frame's number) and the crop's box (`box`, the
person's box grown by the people stage's margin and clipped to the frame).
It is matched to the labelled person whose view (views.csv) at the labelled
frame nearest to `seq`, at most --frames away, grown by the same margin and
clipped, overlaps the crop's box with the highest IoU, at least --min-iou.
Crops of people nobody labelled (or of no person: a false detection) are
left out. The CSV written is the layout `stylecam train` reads:
`image,<class ids…>` with 0/1 values. Standard library only.
"""
import argparse
import csv
import json
import os
import sys
from collections import defaultdict


def load(labels_dir):
    with open(os.path.join(labels_dir, "people.csv"), newline="") as f:
        rows = list(csv.reader(f))
    header = rows[0]
    classes = header[5:]
    people = {r[0]: {"split": r[2], "labels": [int(v) for v in r[5:]]} for r in rows[1:]}
    views = defaultdict(list)  # person -> [(frame, x0, y0, x1, y1)]
    with open(os.path.join(labels_dir, "views.csv"), newline="") as f:
        for r in csv.DictReader(f):
            x, y, w, h = (float(r[k]) for k in ("x", "y", "w", "h"))
            views[r["person"]].append((int(r["frame"]), x, y, x + w, y + h))
    return classes, people, views


def grown(box, margin, fw, fh):
    x0, y0, x1, y1 = box
    dx, dy = (x1 - x0) * margin, (y1 - y0) * margin
    return (max(0.0, x0 - dx), max(0.0, y0 - dy), min(fw, x1 + dx), min(fh, y1 + dy))


def iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def match(sidecar, views, people, args):
    """(person, iou) of the best-overlapping labelled person, or None."""
    seq = sidecar.get("seq")
    if seq is None:
        return None
    fw, fh = sidecar["frame"]
    x, y, w, h = sidecar["box"]
    crop = (x, y, x + w, y + h)
    best = None
    for person, vs in views.items():
        if args.split and people[person]["split"] != args.split:
            continue
        near = min(vs, key=lambda v: abs(v[0] - seq))
        if abs(near[0] - seq) > args.frames:
            continue
        o = iou(crop, grown(near[1:], args.margin, fw, fh))
        if o >= args.min_iou and (best is None or o > best[1]):
            best = (person, o)
    return best


def apply(args):
    classes, people, views = load(args.labels)
    if not os.path.isdir(args.collect):
        sys.exit(f"{args.collect}: no such folder (give --collect the collect.dir the daemon wrote)")
    rows, matched, unmatched, no_seq = [], defaultdict(int), 0, 0
    for name in sorted(os.listdir(args.collect)):
        if not name.endswith(".json"):
            continue
        stem = name[: -len(".json")]
        if not os.path.isfile(os.path.join(args.collect, stem + ".png")):
            continue
        try:
            with open(os.path.join(args.collect, name)) as f:
                sidecar = json.load(f)
        except (OSError, ValueError) as e:
            print(f"skipping {name}: {e}", file=sys.stderr)
            continue
        if "seq" not in sidecar:
            no_seq += 1
            continue
        m = match(sidecar, views, people, args)
        if m is None:
            unmatched += 1
            continue
        person = m[0]
        matched[person] += 1
        rows.append([sidecar.get("image", stem + ".png")] + people[person]["labels"])
    if no_seq:
        print(f"{no_seq} sidecar(s) without seq (collected by an older stylecam): left out")
    tmp = args.out + ".tmp"
    with open(tmp, "w", newline="") as f:
        out = csv.writer(f, lineterminator="\n")
        out.writerow(["image"] + classes)
        out.writerows(rows)
    os.replace(tmp, args.out)
    print(
        f"{args.out}: {len(rows)} crop(s) of {len(matched)} labelled people; "
        f"{unmatched} crop(s) matched nobody (unlabelled people, false detections): left out"
    )
    for i, c in enumerate(classes):
        crops = sum(r[1 + i] for r in rows)
        ppl = sum(1 for p in matched if people[p]["labels"][i])
        print(f"  {c:14} {crops:4} crop(s) positive of {len(rows)}, {ppl} of {len(matched)} people")
    if not rows:
        sys.exit(
            "no crop matched a labelled person: were the crops collected from vtest.avi's frames "
            "played in order from 0000.jpg (seq = frame), with people.margin as --margin?"
        )


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("apply", help="write labels.csv for the collected crops")
    a.add_argument("--collect", required=True, help="the collect folder (PNG + JSON sidecars)")
    a.add_argument("--labels", required=True, help="tests/data/vtest-people")
    a.add_argument("--out", required=True, help="the labels CSV to write")
    a.add_argument("--margin", type=float, default=0.1, help="people.margin the crops were cut with")
    a.add_argument("--min-iou", type=float, default=0.5)
    a.add_argument("--frames", type=int, default=5, help="at most this far from a labelled view")
    a.add_argument("--split", default="", help="only people of this split (train or test)")
    args = p.parse_args()
    if args.cmd == "apply":
        apply(args)


if __name__ == "__main__":
    main()
