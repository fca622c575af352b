"""Reads a modelwatch data directory with pyarrow and DuckDB, without modelwatch's code.

Usage: python read_tables.py DATA_DIR STORAGE_FORMAT_MD
Prints one JSON object: per table the rows pyarrow reads (the files every writer slot's
manifest lists: the authoritative way), and DuckDB's answers to a few SQL questions over
the Hive partitions of every slot (the glob), two of them the SQL examples of
docs/storage-format.md as printed there.
"""
import glob as globbing
import json
import sys

import re

import duckdb
import pyarrow.dataset as ds

data = sys.argv[1]
docs = open(sys.argv[2]).read()


def documented(first_line):
    """The SQL block of the docs that starts with `first_line`, on this data directory."""
    blocks = re.findall(r"```sql\n(.*?)```", docs, re.S)
    [block] = [b for b in blocks if b.startswith(first_line)]
    return block.replace("'modelwatch-data/", f"'{data}/")

out = {"pyarrow": {}, "duckdb": {}}

manifests = [json.load(open(m)) for m in sorted(globbing.glob(f"{data}/writers/*/manifest.json"))]
for table in ["distributions", "scalars", "events"]:
    files = [f"{data}/{f['path']}" for m in manifests for f in m["files"] if f["table"] == table.capitalize()]
    # Only `key=value` path segments are partition keys: `writers/w0/` is skipped.
    dataset = ds.dataset(files, format="parquet", partitioning="hive")
    t = dataset.to_table()
    out["pyarrow"][table] = {"rows": t.num_rows, "columns": t.column_names}

con = duckdb.connect()
glob = lambda table: f"read_parquet('{data}/writers/*/{table}/**/*.parquet', hive_partitioning = true)"
out["duckdb"]["predictions_raw"] = con.execute(
    f"SELECT sum(value) FROM {glob('scalars')} WHERE metric = 'predictions' AND resolution = 'raw'"
).fetchone()[0]
out["duckdb"]["predictions_by_segment"] = dict(
    con.execute(
        f"SELECT segment, sum(value) FROM {glob('scalars')} "
        "WHERE metric = 'predictions' AND resolution = 'raw' GROUP BY segment ORDER BY segment"
    ).fetchall()
)
out["duckdb"]["latency_count_raw"] = con.execute(
    f"SELECT sum(count) FROM {glob('distributions')} WHERE metric = 'latency_ns' AND resolution = 'raw'"
).fetchone()[0]
out["duckdb"]["p95_ms_by_variant"] = dict(
    con.execute(documented("-- p95 latency per variant over the raw rows")).fetchall()
)
out["duckdb"]["mean_ms_by_variant_hour"] = [
    # Epoch milliseconds: independent of the session's time zone.
    [v, round(t.timestamp() * 1000), m] for v, t, m in con.execute(documented("-- Mean latency per variant and hour")).fetchall()
]
# The lossless buckets: their counts add up to the count column, row by row.
out["duckdb"]["bucket_mismatches"] = con.execute(
    f"SELECT count(*) FROM (SELECT count, list_sum(list_transform(buckets, lambda b: b.count)) AS s "
    f"FROM {glob('distributions')}) WHERE count <> coalesce(s, 0)"
).fetchone()[0]
out["duckdb"]["dates"] = [
    str(r[0]) for r in con.execute(f"SELECT DISTINCT date FROM {glob('scalars')} ORDER BY 1").fetchall()
]
out["duckdb"]["events"] = con.execute(f"SELECT count(*) FROM {glob('events')}").fetchone()[0]
print(json.dumps(out, default=float))
