"""Reference values for tests/drift.rs from scipy and numpy, on the raw samples and on the
binned shares and statistics the Rust side computed. Reads a JSON file, prints JSON."""
import json
import sys

import numpy as np
from scipy import stats
from scipy.spatial import distance

d = json.load(open(sys.argv[1]))
out = {"numeric": {}, "categorical": {}, "formula": {}}


def smooth(counts):
    counts = np.asarray(counts, dtype=float)
    p = counts / max(counts.sum(), 1.0)
    p[counts == 0] = 1e-4  # Evidently's smoothing of empty bins
    return p


for name, (ref, cur) in d["numeric"].items():
    ref, cur = np.asarray(ref, dtype=float), np.asarray(cur, dtype=float)
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, 11))[1:-1])
    bins = np.concatenate([[-np.inf], edges, [np.inf]])
    p, q = smooth(np.histogram(ref, bins)[0]), smooth(np.histogram(cur, bins)[0])
    ks = stats.ks_2samp(ref, cur, method="asymp")
    out["numeric"][name] = {
        "psi": float(np.sum((q - p) * np.log(q / p))),
        "js": float(distance.jensenshannon(p, q)),
        "hellinger": float(np.sqrt(np.sum((np.sqrt(p / p.sum()) - np.sqrt(q / q.sum())) ** 2) / 2)),
        "ks": float(ks.statistic),
        "ks_p": float(ks.pvalue),
        "wasserstein_norm": float(stats.wasserstein_distance(ref, cur) / np.std(ref)),
        "mean": [float(np.mean(ref)), float(np.mean(cur))],
        "median": [float(np.median(ref)), float(np.median(cur))],
        "std": [float(np.std(ref)), float(np.std(cur))],
    }

for name, (ref, cur) in d["categorical"].items():
    keys = sorted(set(ref) | set(cur))
    r = np.array([ref.get(k, 0) for k in keys], dtype=float)
    c = np.array([cur.get(k, 0) for k in keys], dtype=float)
    table = np.vstack([r, c])
    chi = stats.chi2_contingency(table[:, table.sum(axis=0) > 0], correction=False)
    out["categorical"][name] = {
        "chi2": float(chi.statistic),
        "chi2_p": float(chi.pvalue),
        "js": float(distance.jensenshannon(smooth(r), smooth(c))),
        "psi": float(np.sum((smooth(c) - smooth(r)) * np.log(smooth(c) / smooth(r)))),
        "hellinger": float(
            np.sqrt(np.sum((np.sqrt(smooth(r) / smooth(r).sum()) - np.sqrt(smooth(c) / smooth(c).sum())) ** 2) / 2)
        ),
    }

# The formulas on exactly the Rust side's inputs: bin shares, D and counts, chi2 and df.
for name, f in d["formula"].items():
    p, q = np.asarray(f["p"]), np.asarray(f["q"])
    en = f["n"] * f["m"] / (f["n"] + f["m"])
    out["formula"][name] = {
        "psi": float(np.sum((q - p) * np.log(q / p))),
        "js": float(distance.jensenshannon(p, q)),
        "hellinger": float(np.sqrt(np.sum((np.sqrt(p / p.sum()) - np.sqrt(q / q.sum())) ** 2) / 2)),
        "ks_p": float(stats.kstwobign.sf(np.sqrt(en) * f["d"])),
        "wasserstein": float(stats.wasserstein_distance(f["values"], f["values"], f["r_weights"], f["c_weights"])),
    }
for name, f in d.get("chi2", {}).items():
    out.setdefault("chi2", {})[name] = float(stats.chi2.sf(f["x"], f["df"]))

json.dump(out, sys.stdout)
