"""scikit-learn's IsolationForest on exactly the split `medsec defender evaluate` used.

Usage: defender_wustl.py CSV SPLIT_DIR SEEDS
Features: the same honest columns as medsec (identifiers, Dir, Flgs and labels dropped), raw
values as in the dataset README's baseline. Prints a Markdown row per variant and the
per-event scoring time, batched and one event at a time.
"""
import csv
import sys
import time

import numpy as np
from sklearn.ensemble import IsolationForest
from sklearn.metrics import precision_recall_curve, roc_auc_score

DROP = {"Dir", "Flgs", "SrcAddr", "DstAddr", "Sport", "Dport", "SrcMac", "DstMac",
        "Packet_num", "Attack Category", "Label"}

path, split_dir, seeds = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(path, newline="") as f:
    rows = list(csv.reader(f))
header, body = rows[0], rows[1:]
cols = [i for i, h in enumerate(header) if h.strip() not in DROP]
X = np.array([[float(r[i]) for i in cols] for r in body])
cat = np.array([r[header.index("Attack Category")].strip() for r in body])
y = (cat != "normal").astype(int)
classes = sorted(set(cat) - {"normal"})

aucs, f1s, recalls, fprs, batch_us, single = [], [], {c: [] for c in classes}, [], [], []
for seed in range(seeds):
    train = np.loadtxt(f"{split_dir}/seed-{seed}.train", dtype=int)
    mask = np.zeros(len(y), bool)
    mask[train] = True
    model = IsolationForest(n_estimators=200, max_samples=256, random_state=seed).fit(X[mask])
    t = time.perf_counter()
    s = -model.score_samples(X[~mask])
    batch_us.append((time.perf_counter() - t) / (~mask).sum() * 1e6)
    yt, ct = y[~mask], cat[~mask]
    aucs.append(roc_auc_score(yt, s))
    p, r, _ = precision_recall_curve(yt, s)
    f1s.append(np.max(2 * p * r / np.maximum(p + r, 1e-12)))
    normal = np.sort(s[yt == 0])
    thr = normal[len(normal) - 1 - int(np.floor(0.01 * len(normal)))]
    fprs.append((s[yt == 0] > thr).mean())
    for c in classes:
        recalls[c].append((s[ct == c] > thr).mean())
    if seed == 0:
        for row in X[~mask][:1000]:
            t = time.perf_counter()
            model.score_samples(row.reshape(1, -1))
            single.append((time.perf_counter() - t) * 1e6)

cells = " | ".join(f"{np.mean(recalls[c]):.3f}" for c in classes)
print(f"| scikit-learn IsolationForest (200 trees, raw features) | {np.mean(aucs):.3f} ± {np.std(aucs):.3f} "
      f"| {np.mean(f1s):.3f} | {cells} | {np.mean(fprs):.4f} |")
single = np.sort(single)
print(f"\nscikit-learn {__import__('sklearn').__version__} scoring: batched {np.mean(batch_us):.1f} µs per event; "
      f"one event at a time p50 {single[len(single) // 2]:.0f} µs, p99 {single[int(len(single) * 0.99)]:.0f} µs")
