"""The readers give what the CLI prints for the same store and window: query as records,
pandas and Arrow; drift and quality as the CLI's JSON documents."""

import math
import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import modelwatch


@pytest.fixture
def store(data):
    """Two seconds of predictions a second apart (the second with shifted features), with
    labels; returns (data, t0, t1, t2) in epoch ms: reference [t0, t1), current [t1, t2)."""
    agent = modelwatch.Agent(
        "m", segments=["a", "b"], features=["x", ("k", ["p", "q"])], data=data, interval=1.0
    )
    rng = np.random.default_rng(5)
    t0 = math.floor(time.time()) * 1000
    for i in range(2000):
        c = float(rng.random())
        agent.record("a" if i % 3 else "b", float(rng.uniform(1e-4, 1e-2)), c, [float(rng.normal()), "p"])
        agent.feedback("a" if i % 3 else "b", c, bool(rng.random() < c))
    time.sleep(max(0.0, (t0 + 1000) / 1000 - time.time()) + 0.05)
    t1 = t0 + 1000
    for i in range(2000):
        c = float(rng.random())
        agent.record("a" if i % 3 else "b", float(rng.uniform(1e-4, 1e-2)), c, [float(rng.normal(3.0)), "q"])
    agent.close()
    t2 = math.floor(time.time()) * 1000 + 1000
    return data, t0, t1, t2


def test_query_records_pandas_and_arrow_equal_the_cli(store, cli):
    data, t0, _, t2 = store
    expr = "quantile(0.9, latency) by (segment)"
    window = dict(start=str(t0), end=str(t2), step="1s", data=data)
    records = modelwatch.query(expr, **window)
    frame = modelwatch.query(expr, format="pandas", **window)
    table = modelwatch.query(expr, format="arrow", **window)
    assert len(records) >= 4  # two segments, two seconds
    assert list(frame.columns) == ["time", "segment", "value_ns"]
    assert table.column_names == ["time", "segment", "value_ns"]
    assert table.schema.field("time").type == pa.timestamp("ms", tz="UTC")
    assert [r["value_ns"] for r in records] == frame["value_ns"].tolist() == table.column("value_ns").to_pylist()
    assert [r["time"] for r in records] == [t.to_pydatetime() for t in frame["time"]]
    printed = cli.json("query", expr, "--data", data, "--from", str(t0), "--to", str(t2), "--step", "1s")
    want = sorted(
        (p[0], s["tags"]["segment"], p[1]) for s in printed for p in s["points"]
    )
    got = sorted((int(r["time"].timestamp() * 1000), r["segment"], r["value_ns"]) for r in records)
    assert got == want
    assert isinstance(frame, pd.DataFrame)


def test_drift_is_the_clis_document(store, cli):
    data, t0, t1, t2 = store
    doc = modelwatch.drift(f"{t0}..{t1}", start=str(t1), end=str(t2), data=data)
    printed = cli.json("drift", "--data", data, "--reference", f"{t0}..{t1}", "--from", str(t1), "--to", str(t2))
    assert doc == printed
    assert doc["dataset_drift"] is True  # x moved by three standard deviations, k from p to q


def test_quality_is_the_clis_document(store, cli):
    data, t0, _, t2 = store
    doc = modelwatch.quality(start=str(t0), end=str(t2), data=data, by=["segment"])
    printed = cli.json("quality", "--data", data, "--from", str(t0), "--to", str(t2), "--by", "segment")
    assert doc == printed
    assert sum(g["realised"]["n"] for g in doc["groups"]) == 2000


def test_reader_errors_name_what_is_wrong(store, tmp_path):
    data, t0, _, t2 = store
    with pytest.raises(ValueError, match="bad query"):
        modelwatch.query("quantile(2, latency", data=data)
    with pytest.raises(ValueError, match="format"):
        modelwatch.query("count(predictions)", data=data, format="excel")
    with pytest.raises(ValueError, match="since"):
        modelwatch.query("count(predictions)", data=data, since="forever")
    with pytest.raises(ValueError, match="before or when it starts"):
        modelwatch.query("count(predictions)", data=data, start=str(t2), end=str(t0))
    with pytest.raises(ValueError, match="not a time between 1970 and 2500"):
        modelwatch.query("count(predictions)", data=data, start=float("nan"))
    with pytest.raises(RuntimeError, match="no such data directory"):
        modelwatch.query("count(predictions)", data=str(tmp_path / "none"))
    with pytest.raises(ValueError, match="filter by model, version, variant or segment"):
        modelwatch.drift("1d", data=data, filters={"colour": "red"})
    with pytest.raises(ValueError, match="threshold"):
        modelwatch.quality(data=data, threshold=float("nan"))
    # An empty window is no data, not an error.
    assert modelwatch.query("count(predictions)", data=data, start="2001-01-01T00:00:00Z", end="2001-01-02T00:00:00Z") == []
