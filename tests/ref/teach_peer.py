"""The standard linear probe on frozen features: scikit-learn's
LogisticRegression, one binary model per class (one-vs-rest), C chosen per
class on the validation people from a grid. The peer of stylecam's quick
trainer (issue 37): the same features, the same person splits.

    python3 teach_peer.py DIR

DIR holds what benches/teach.rs and tests/teach_vtest.rs write:
  features.f32  N x D little-endian float32, row i = crop i of index.csv
  index.csv     image,person,split,<class id>... (split: train|val|test, labels 0/1)
and gets:
  peer_val.csv, peer_test.csv  image,<class id>... probabilities of the
                               validation and test crops
  peer.json                    {"seconds": fit+predict wall time,
                                "c": [C per class], "dim": D}
"""

import csv
import json
import sys
import time

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, log_loss
from sklearn.preprocessing import StandardScaler

GRID = [0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0]


def main(d):
    with open(f"{d}/index.csv", newline="") as f:
        rows = list(csv.reader(f))
    header, rows = rows[0], rows[1:]
    classes = header[3:]
    n = len(rows)
    x = np.fromfile(f"{d}/features.f32", dtype="<f4")
    if n == 0 or x.size % n:
        sys.exit(f"{d}/features.f32: {x.size} floats is not a whole number of rows for {n} crops in index.csv")
    x = x.reshape(n, -1).astype(np.float64)
    split = np.array([r[2] for r in rows])
    y = np.array([[float(v) >= 0.5 for v in r[3:]] for r in rows], dtype=int)
    tr, va, te = split == "train", split == "val", split == "test"
    for name, m in (("train", tr), ("val", va), ("test", te)):
        if not m.any():
            sys.exit(f"{d}/index.csv: no {name} crops (column split must hold train, val and test)")

    t0 = time.perf_counter()
    scaler = StandardScaler().fit(x[tr])
    xs = scaler.transform(x)
    pv = np.zeros((va.sum(), len(classes)))
    pt = np.zeros((te.sum(), len(classes)))
    chosen = []
    for c in range(len(classes)):
        yt, yv = y[tr, c], y[va, c]
        if yt.min() == yt.max():
            # One value in training: the prior is all a probe can say.
            pv[:, c] = pt[:, c] = float(yt[0])
            chosen.append(None)
            continue
        best = None
        for C in GRID:
            m = LogisticRegression(C=C, max_iter=5000).fit(xs[tr], yt)
            p = m.predict_proba(xs[va])[:, 1]
            if yv.min() != yv.max():
                score = average_precision_score(yv, p)
            else:
                score = -log_loss(yv, p, labels=[0, 1])
            if best is None or score > best[0] + 1e-12:
                best = (score, C, m)
        _, C, m = best
        chosen.append(C)
        pv[:, c] = m.predict_proba(xs[va])[:, 1]
        pt[:, c] = m.predict_proba(xs[te])[:, 1]
    seconds = time.perf_counter() - t0

    images = np.array([r[0] for r in rows])
    for name, m, p in (("peer_val.csv", va, pv), ("peer_test.csv", te, pt)):
        with open(f"{d}/{name}", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["image"] + classes)
            for img, row in zip(images[m], p):
                w.writerow([img] + [f"{v:.6f}" for v in row])
    with open(f"{d}/peer.json", "w") as f:
        json.dump({"seconds": seconds, "c": chosen, "dim": x.shape[1]}, f)
    print(f"peer: {n} crops, {x.shape[1]} features, C per class {chosen}, {seconds:.2f} s")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
