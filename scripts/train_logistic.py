#!/usr/bin/env python3
"""A training command for modelwatch's external-command trainer: scikit-learn's
LogisticRegression on the labelled examples.

Usage (modelwatch appends the three paths; see docs/decisions/0008-trainer-interface.md):

    train_logistic.py TRAIN.parquet HOLDOUT.parquet OUT_DIR

Reads both files in the labelled-examples wide layout (feature names in the footer key
`modelwatch.features`), replaces missing or infinite values by the training mean of their
feature (as the in-process trainer does), fits with C from `MODELWATCH_C` (default 1.0) and
writes into OUT_DIR:

- model.json: the linear model modelwatch scores natively (kind, features, coef,
  intercept, impute);
- metadata.json: the settings, the solver's iterations and hold-out figures;
- holdout_proba.json: scikit-learn's predict_proba of the positive class on each hold-out
  row, in file order (what the tests compare modelwatch's scores against).
"""
import json
import math
import os
import sys

import numpy as np
import pyarrow.parquet as pq
import sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, roc_auc_score

FIXED = ["prediction_id", "predicted_at", "label_time", "segment", "confidence", "label"]


def load(path):
    table = pq.read_table(path)
    meta = table.schema.metadata or {}
    if b"modelwatch.features" in meta:
        features = json.loads(meta[b"modelwatch.features"])
    else:
        features = [c for c in table.column_names if c not in FIXED]
    columns = [table.column(f).to_numpy(zero_copy_only=False).astype(np.float64) for f in features]
    x = np.column_stack(columns) if columns else np.empty((table.num_rows, 0))
    y = np.asarray(table.column("label").to_pylist(), dtype=np.int64)
    return features, x, y


def impute(x, means):
    x = x.copy()
    bad = ~np.isfinite(x)
    x[bad] = np.take(means, np.nonzero(bad)[1])
    return x


def main():
    if len(sys.argv) != 4:
        sys.exit(f"usage: {sys.argv[0]} TRAIN.parquet HOLDOUT.parquet OUT_DIR")
    train_path, holdout_path, out_dir = sys.argv[1:]
    features, x, y = load(train_path)
    holdout_features, hx, hy = load(holdout_path)
    if holdout_features != features:
        sys.exit(f"{holdout_path}: features {holdout_features} differ from training's {features}")
    finite = np.where(np.isfinite(x), x, np.nan)
    counts = np.isfinite(x).sum(axis=0)
    means = np.where(counts > 0, np.nansum(finite, axis=0) / np.maximum(counts, 1), 0.0)
    x, hx = impute(x, means), impute(hx, means)

    c = float(os.environ.get("MODELWATCH_C", "1.0"))
    model = LogisticRegression(C=c, tol=1e-10, max_iter=10000).fit(x, y)
    print(f"fitted {len(y)} rows, {len(features)} features, C={c}, {int(model.n_iter_[0])} iterations")

    proba = model.predict_proba(hx)[:, 1] if len(hy) else np.empty(0)
    holdout = {"rows": int(len(hy))}
    if len(set(hy.tolist())) == 2:
        holdout["roc_auc"] = float(roc_auc_score(hy, proba))
        holdout["log_loss"] = float(log_loss(hy, proba))

    def dump(name, value):
        with open(os.path.join(out_dir, name), "w") as f:
            json.dump(value, f, allow_nan=False)
            f.write("\n")

    dump("model.json", {
        "kind": "linear",
        "features": features,
        "coef": [float(v) for v in model.coef_[0]],
        "intercept": float(model.intercept_[0]),
        "impute": [float(v) for v in means],
    })
    dump("metadata.json", {
        "trainer": "scikit-learn LogisticRegression",
        "sklearn_version": sklearn.__version__,
        "C": c,
        "n_iter": int(model.n_iter_[0]),
        "train_rows": int(len(y)),
        "holdout": holdout,
    })
    dump("holdout_proba.json", [float(p) for p in proba])
    assert all(math.isfinite(p) for p in proba)


if __name__ == "__main__":
    main()
