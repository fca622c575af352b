"""examples/python/pii_scorer.py, the demo's scenario from Python: what it records, the CLI
reads back, and the drift it injects is found."""

import os
import re
import shlex
import subprocess
import sys

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "python", "pii_scorer.py")


def test_the_python_demo_records_what_the_cli_reads(data, cli):
    out = subprocess.run(
        [sys.executable, EXAMPLE, "--data", data, "--predictions", "9000", "--per-second", "0"],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout
    made = int(re.search(r"recorded (\d+) predictions", out).group(1))
    assert made > 1000
    counted = cli.json("query", "count(predictions) by (variant)", "--data", data, "--since", "2d", "--step", "2d")
    by_variant = {s["tags"]["variant"]: sum(p[1] for p in s["points"]) for s in counted}
    assert sum(by_variant.values()) == made
    assert 0.05 < by_variant["canary"] / made < 0.15  # the 10 % canary
    # The drift command it prints finds the new phone-number format.
    drift = next(line for line in out.splitlines() if "modelwatch drift" in line)
    args = shlex.split(drift.strip())[1:]
    doc = cli.json(*args)
    verdicts = {f["feature"]: f["verdict"] for f in doc["feature_verdicts"]}
    assert verdicts["digit_ratio"] == "drift"
    assert verdicts["regex_match"] == "drift"
    assert verdicts["language"] != "drift"
