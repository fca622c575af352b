"""The peer of benches/drift.rs: Evidently's data-drift report over the raw rows the
benchmark wrote (Parquet), timed without the file reads. Prints JSON."""
import json
import sys
import time

import pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset

ref = pd.read_parquet(sys.argv[1])
cur = pd.read_parquet(sys.argv[2])
times = []
for _ in range(int(sys.argv[3]) if len(sys.argv) > 3 else 1):
    started = time.perf_counter()
    result = Report([DataDriftPreset()]).run(current_data=cur, reference_data=ref)
    times.append(time.perf_counter() - started)
count = result.dict()["metrics"][0]["value"]
json.dump({"seconds": sorted(times)[len(times) // 2], "drifted": count["count"], "rows": [len(ref), len(cur)],
           "columns": ref.shape[1]}, sys.stdout)
