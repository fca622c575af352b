"""scikit-learn's confusion counts, precision, recall, F1 and ROC AUC for tests/quality.rs:
per segment and overall, on the confidences rounded down to modelwatch's 1,000 bins (the
stored resolution) and on the raw confidences. Reads JSON, prints JSON (a figure scikit-learn
leaves undefined, such as AUC with one class, is null)."""
import json
import sys

import numpy as np
from sklearn.metrics import confusion_matrix, f1_score, precision_score, recall_score, roc_auc_score

d = json.load(open(sys.argv[1]))
scores = np.asarray(d["scores"], dtype=float)
labels = np.asarray(d["labels"], dtype=int)
segments = np.asarray(d["segments"])
binned = np.minimum(np.floor(scores * 1000), 999) / 1000
out = {}
for name in sorted(set(segments)) + ["all"]:
    m = np.ones(len(scores), dtype=bool) if name == "all" else segments == name
    y, s, b = labels[m], scores[m], binned[m]
    pred = (s >= d["threshold"]).astype(int)
    tn, fp, fn, tp = confusion_matrix(y, pred, labels=[0, 1]).ravel()
    both = len(set(y)) == 2
    out[name] = {
        "n": int(m.sum()),
        "tp": int(tp),
        "fp": int(fp),
        "fn": int(fn),
        "tn": int(tn),
        "precision": float(precision_score(y, pred, zero_division=0)),
        "recall": float(recall_score(y, pred, zero_division=0)),
        "f1": float(f1_score(y, pred, zero_division=0)),
        "auc_binned": float(roc_auc_score(y, b)) if both else None,
        "auc_raw": float(roc_auc_score(y, s)) if both else None,
    }
json.dump(out, sys.stdout)
