"""The Python hook's cost per call, beside its peers in the same run (BENCHMARKS.md,
"Python hook"). Run by `scripts/bench-python`, which builds the binding in release mode
into a venv with prometheus_client and whylogs.

Each figure is the best of --repeat runs of --calls calls: nanoseconds per call, wall time
over calls made. With threads, every thread makes --calls calls and the figure is the wall
time over all calls (Python threads share the GIL, so this is the cost the process pays).
"""

import argparse
import os
import platform
import sys
import threading
import time

import numpy as np

import modelwatch
from modelwatch import _modelwatch

FEATURES = 16


def timed(fn, calls, threads, repeat):
    best = float("inf")
    for _ in range(repeat):
        barrier = threading.Barrier(threads + 1)
        done = []

        def work():
            barrier.wait()
            fn(calls)
            done.append(time.perf_counter())

        ts = [threading.Thread(target=work) for _ in range(threads)]
        for t in ts:
            t.start()
        barrier.wait()
        start = time.perf_counter()
        for t in ts:
            t.join()
        best = min(best, (max(done) - start) / (calls * threads) * 1e9)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, nargs="*", default=[1, 4])
    args = ap.parse_args()

    names = [f"f{i}" for i in range(FEATURES)]
    agent = modelwatch.Agent("bench", segments=["all"], features=names, sink=lambda s: None, interval=3600.0)
    row_list = [float(i) * 0.5 for i in range(FEATURES)]
    row_np = np.array(row_list)
    row_dict = dict(zip(names, row_list))

    def mw_list(n):
        rec, row = agent.record, row_list
        for i in range(n):
            rec("all", 0.001, 0.5, row)

    def mw_numpy(n):
        rec, row = agent.record, row_np
        for i in range(n):
            rec("all", 0.001, 0.5, row)

    def mw_dict(n):
        rec, row = agent.record, row_dict
        for i in range(n):
            rec("all", 0.001, 0.5, row)

    def mw_release(n):
        rec, row = agent._record_releasing_gil, row_list
        for i in range(n):
            rec("all", 0.001, 0.5, row)

    batch = 100_000
    lat_b = np.full(batch, 0.001)
    conf_b = np.full(batch, 0.5)
    feat_b = np.tile(row_np, (batch, 1))

    def mw_batch(n):
        for _ in range(max(1, n // batch)):
            agent.record_batch("all", lat_b, conf_b, feat_b)

    rows = []
    try:
        import prometheus_client as pc

        registry = pc.CollectorRegistry()
        hist = pc.Histogram("latency_seconds", "latency", registry=registry)
        feature_hists = [pc.Histogram(f"feature_{i}", "f", registry=registry) for i in range(FEATURES)]
        conf_hist = pc.Histogram("confidence", "c", registry=registry)

        def prom_one(n):
            obs = hist.observe
            for i in range(n):
                obs(0.001)

        def prom_prediction(n):
            obs, conf, fh, row = hist.observe, conf_hist.observe, feature_hists, row_list
            for i in range(n):
                obs(0.001)
                conf(0.5)
                for h, v in zip(fh, row):
                    h.observe(v)

        prom = [("prometheus_client: one Histogram.observe", prom_one),
                ("prometheus_client: a prediction as 18 observes (latency, confidence, 16 features)", prom_prediction)]
        from importlib.metadata import version

        prom_version = version("prometheus_client")
    except ImportError:
        sys.exit("bench_hook: prometheus_client is not installed (scripts/bench-python installs it)")
    try:
        import whylogs
        from whylogs.core import DatasetProfile

        profile = DatasetProfile()

        def whylogs_row(n):
            track = profile.track
            for i in range(n):
                track(row=row_dict)

        why = [("whylogs: DatasetProfile.track of one 16-feature row", whylogs_row)]
        why_version = whylogs.__version__
    except ImportError:
        sys.exit("bench_hook: whylogs is not installed (scripts/bench-python installs it)")

    cases = [
        ("modelwatch: record, 16 features as a list", mw_list, args.calls),
        ("modelwatch: record, 16 features as a NumPy array", mw_numpy, args.calls),
        ("modelwatch: record, 16 features as a dict", mw_dict, args.calls),
        ("modelwatch: record releasing the GIL, 16 features as a list", mw_release, args.calls),
        ("modelwatch: record_batch, per prediction (batches of 100,000)", mw_batch, max(args.calls, batch)),
        *[(n, f, args.calls) for n, f in prom],
        *[(n, f, max(1, args.calls // 100)) for n, f in why],
    ]
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores; Python {platform.python_version()}; "
          f"prometheus_client {prom_version}; whylogs {why_version}; numpy {np.__version__}")
    header = "| call | " + " | ".join(f"ns/call, {t} thread{'s' if t > 1 else ''}" for t in args.threads) + " |"
    print(header)
    print("|---|" + "---:|" * len(args.threads))
    for name, fn, calls in cases:
        figs = [timed(fn, calls, t, args.repeat) for t in args.threads]
        print(f"| {name} | " + " | ".join(f"{f:,.0f}" for f in figs) + " |")
    rust = [min(_modelwatch._bench_rust_record(args.calls, t, FEATURES) for _ in range(args.repeat)) for t in args.threads]
    print("| Rust: Handle::record, 16 features, same build, on record_batch's data (per call as each thread sees it) | "
          + " | ".join(f"{f:,.0f}" for f in rust) + " |")
    agent.close()


if __name__ == "__main__":
    main()
