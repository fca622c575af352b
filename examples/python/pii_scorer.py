"""The demo's scenario from Python: a PII-detection scorer with a 10 % canary records every
prediction through modelwatch's hook, labels arrive for 5 % of them by prediction time, and
two thirds in phone numbers change format. The CLI then reads the store it wrote.

    pip install ./python numpy          # once
    python examples/python/pii_scorer.py --data ./py-demo-data
    modelwatch query 'p99(latency) by (variant)' --data ./py-demo-data --since 5m --step 1m

It runs in real time (--predictions at --per-second, six seconds by default), since the
agent stamps each prediction with the clock; `modelwatch demo` simulates days instead.
"""

import argparse
import math
import time

import numpy as np

import modelwatch

SEGMENTS = {"email": 3.5, "phone": 4.0, "ssn": 3.0, "credit_card": 5.0, "name": 4.5, "address": 6.0}
FEATURES = ["token_length", "digit_ratio", "alpha_ratio", "context_score", "regex_match", "doc_length",
            ("language", ["en", "de", "fr", "es"]), ("script", ["latin", "cyrillic", "cjk"])]
DIGITS = {"phone": 0.75, "ssn": 0.8, "credit_card": 0.8}


def features(rng, segment, drifted):
    digits = DIGITS.get(segment, 0.05)
    if drifted and segment == "phone":
        digits = 0.45  # the new format: fewer digits, and the regex stops matching
    regex = rng.random() < (0.1 if drifted and segment == "phone" else 0.85)
    return [
        max(1.0, round(rng.normal(12 if segment == "phone" else 18, 3))),
        float(np.clip(rng.normal(digits, 0.08), 0, 1)),
        float(np.clip(rng.normal(1 - digits, 0.08), 0, 1)),
        float(np.clip(rng.normal(0.7, 0.15), 0, 1)),
        float(regex),
        max(50.0, round(rng.normal(2400 if drifted else 1200, 360))),
        str(rng.choice(["en", "de", "fr", "es"])),
        "latin" if rng.random() < 0.9 else "cyrillic",
    ]


def score(row):
    """A stand-in for the model: a logistic function of the regex, the context and digits."""
    z = -2.0 + 3.0 * row[4] + 2.5 * row[3] + 0.5 * row[1]
    return 1.0 / (1.0 + math.exp(-z))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="./py-demo-data")
    ap.add_argument("--predictions", type=int, default=24_000)
    ap.add_argument("--per-second", type=int, default=4000, help="traffic pace; 0: as fast as it goes")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    common = dict(segments=list(SEGMENTS), features=FEATURES, error_kinds=["timeout"], interval=1.0, data=args.data)
    control = modelwatch.Agent("pii-confidence", version="1.4.0", variant="control", **common)
    canary = modelwatch.Agent("pii-confidence", version="1.5.0-rc1", variant="canary", **common)
    control.model_loaded()
    canary.model_loaded()

    start = time.time()
    drift_at = None
    made = 0
    while made < args.predictions:
        if drift_at is None and made >= args.predictions * 2 // 3:
            # The new phone format starts on a whole second, an interval boundary, so that
            # the ranges printed below split the intervals cleanly.
            time.sleep(math.ceil(time.time()) - time.time() + 0.01)
            drift_at = math.floor(time.time())
        drifted = drift_at is not None
        tick = time.time()
        for _ in range(100):
            segment = str(rng.choice(list(SEGMENTS)))
            agent, slower = (canary, 1.15) if rng.random() < 0.1 else (control, 1.0)
            row = features(rng, segment, drifted)
            if rng.random() < 0.002:
                agent.error(segment, "timeout")
                continue
            confidence = score(row)
            latency = SEGMENTS[segment] / 1e3 * slower * math.exp(rng.normal(0, 0.35))
            agent.record(segment, latency, confidence, row, predicted=confidence >= 0.5)
            made += 1
            if rng.random() < 0.05:  # a reviewer's label, for the prediction made just now
                truth = rng.random() < (0.3 if drifted and segment == "phone" else 0.85)
                agent.feedback(segment, confidence, bool(truth), predicted_at=time.time())
        if args.per_second > 0:
            time.sleep(max(0.0, 100 / args.per_second - (time.time() - tick)))
    if drift_at is None:  # fewer predictions than a drift needs
        drift_at = math.floor(time.time())
    control.close()
    canary.close()

    ms = lambda t: int(t * 1000)
    ref, cur = f"{ms(math.floor(start))}..{ms(drift_at)}", f"{ms(drift_at)}..{ms(math.floor(time.time()) + 1)}"
    print(f"recorded {made} predictions into {args.data}; phone numbers changed format at {ms(drift_at)}")
    print("read them with the CLI:")
    print(f"  modelwatch query 'count(predictions) by (variant)' --data {args.data} --since 5m --step 5m")
    print(f"  modelwatch query 'p99(latency) by (variant)' --data {args.data} --since 5m --step 5m")
    print(f"  modelwatch drift --data {args.data} --reference {ref} --range {cur} --segment phone")
    print(f"  modelwatch quality --data {args.data} --since 5m --by segment")


if __name__ == "__main__":
    main()
