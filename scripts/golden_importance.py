#!/usr/bin/env python3
"""The goldens of modelwatch's permutation importance: scikit-learn's
`sklearn.inspection.permutation_importance` on a fixed data set and a fixed logistic
regression, with the permutations scikit-learn used, for tests/importance.rs.

Usage (run by hand to regenerate; the output is committed):

    golden_importance.py            # writes tests/importance/golden.json
    golden_importance.py --check    # regenerates in memory, fails if the file differs
                                    # (data and permutations to the bit, figures to 1e-12)

The data: 2,000 rows, 6 features (x1 correlated with x0, x5 ignored by the model), two
segments (x2 matters only in segment "b", through an interaction in the true labels),
about 30 % positives, from numpy's seed 17. The model is a LogisticRegression whose
`coef_`, `intercept_` and `classes_` are set to fixed values, not fitted, so modelwatch's
LinearModel with the same numbers is the same model.

scikit-learn draws one seed from `random_state` and gives every column a fresh
RandomState of it, which shuffles an index array in place once per repeat and takes the
column through it again each time, so repeat r applies the composition of the first r
shuffles. The script reproduces those permutations (as "row i takes the original value of
row p[i]"), checks that scoring by hand through them gives scikit-learn's importances
exactly, and writes them with the figures.

Every float is written as a JSON string of Python's repr: the Rust side parses it with
the standard library, which rounds correctly (serde_json's own parser may be an ULP off).
"""
import json
import os
import sys

import numpy as np
import sklearn
from sklearn.inspection import permutation_importance
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import check_scoring

SEED = 17
ROWS = 2000
REPEATS = 5
FEATURES = ["x0", "x1", "x2", "x3", "x4", "x5"]
COEF = [1.2, -0.7, 0.5, 0.9, 0.3, 0.0]
INTERCEPT = -1.1
SCORINGS = ["roc_auc", "neg_log_loss", "accuracy"]
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "importance", "golden.json")


def data():
    rng = np.random.RandomState(SEED)
    x0 = rng.normal(size=ROWS)
    x1 = 0.8 * x0 + 0.6 * rng.normal(size=ROWS)
    x2 = rng.normal(size=ROWS)
    x3 = rng.uniform(-1.5, 1.5, size=ROWS)
    x4 = rng.normal(size=ROWS)
    x5 = rng.normal(size=ROWS)
    segment = np.where(rng.uniform(size=ROWS) < 0.5, "a", "b")
    X = np.column_stack([x0, x1, x2, x3, x4, x5])
    logit = -1.1 + 1.2 * x0 - 0.7 * x1 + 0.9 * x3 + 0.3 * x4 + np.where(segment == "b", 1.0, 0.0) * x2
    y = (rng.uniform(size=ROWS) < 1.0 / (1.0 + np.exp(-logit))).astype(int)
    return X, y, segment


def model():
    m = LogisticRegression()
    m.coef_ = np.array([COEF])
    m.intercept_ = np.array([INTERCEPT])
    m.classes_ = np.array([0, 1])
    m.n_features_in_ = len(FEATURES)
    return m


def sklearn_permutations(n):
    """The permutations `_calculate_permutation_scores` applies to every column."""
    seed = np.random.RandomState(SEED).randint(np.iinfo(np.int32).max + 1)
    rs = np.random.RandomState(seed)
    shuffling = np.arange(n)
    applied = np.arange(n)
    perms = []
    for _ in range(REPEATS):
        rs.shuffle(shuffling)
        applied = applied[shuffling]
        perms.append(applied.copy())
    return perms


def golden():
    X, y, segment = data()
    m = model()
    perms = sklearn_permutations(len(y))
    results = {}
    for scoring in SCORINGS:
        r = permutation_importance(m, X, y, scoring=scoring, n_repeats=REPEATS, random_state=SEED, n_jobs=1)
        scorer = check_scoring(m, scoring=scoring)
        baseline = scorer(m, X, y)
        by_hand = np.empty((X.shape[1], REPEATS))
        for j in range(X.shape[1]):
            for k, p in enumerate(perms):
                Xp = X.copy()
                Xp[:, j] = X[p, j]
                by_hand[j, k] = baseline - scorer(m, Xp, y)
        assert np.array_equal(by_hand, r.importances), (scoring, by_hand - r.importances)
        assert np.array_equal(by_hand.mean(axis=1), r.importances_mean), scoring
        assert np.array_equal(by_hand.std(axis=1), r.importances_std), scoring
        results[scoring] = {
            "baseline": repr(float(baseline)),
            "importances_mean": [repr(float(v)) for v in r.importances_mean],
            "importances_std": [repr(float(v)) for v in r.importances_std],
            "importances": [[repr(float(v)) for v in row] for row in r.importances],
        }
    assert 0.25 < y.mean() < 0.35, y.mean()
    return {
        "generator": "scripts/golden_importance.py",
        "versions": {"sklearn": sklearn.__version__, "numpy": np.__version__},
        "seed": SEED,
        "repeats": REPEATS,
        "features": FEATURES,
        "coef": [repr(float(c)) for c in COEF],
        "intercept": repr(float(INTERCEPT)),
        "segments": [str(s) for s in segment],
        "labels": [bool(v) for v in y],
        "rows": [[repr(float(v)) for v in row] for row in X],
        "permutations": [[int(i) for i in p] for p in perms],
        "results": results,
    }


def differences(now, committed):
    """What differs between a fresh golden and the committed one: the data and the
    permutations must be the same to the bit (numpy's RandomState is frozen); the figures
    within 1e-12 (another BLAS or numpy may sum in another order); the versions may differ."""
    out = []
    for key in now:
        if key in ("versions", "results"):
            continue
        if now[key] != committed.get(key):
            out.append(key)
    for scoring, r in now["results"].items():
        c = committed.get("results", {}).get(scoring, {})
        for field in ("baseline", "importances_mean", "importances_std", "importances"):
            a = np.array(r[field], dtype=float)
            b = np.array(c.get(field, []), dtype=float)
            if a.shape != b.shape or not np.all(np.abs(a - b) <= 1e-12):
                out.append(f"results.{scoring}.{field}")
    return out


def main():
    g = golden()
    text = json.dumps(g, separators=(",", ":")) + "\n"
    if "--check" in sys.argv[1:]:
        with open(OUT) as f:
            committed = json.load(f)
        diff = differences(g, committed)
        if diff:
            sys.exit(
                f"{OUT} differs from what scikit-learn {sklearn.__version__} gives now in {', '.join(diff)} "
                f"(made with {committed.get('versions')}): regenerate it and review the diff"
            )
        print(f"golden matches (made with {committed.get('versions')}, checked with {g['versions']})")
    else:
        with open(OUT, "w") as f:
            f.write(text)
        print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
