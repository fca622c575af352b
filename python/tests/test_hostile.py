"""What the harsh-user review of the binding broke, each kept broken-proof: concurrent flushes
and closes, exits with a flushing thread, sinks and callbacks that call back, deployment
agents used after close, scikit-learn's NumPy labels, a dict changed mid-record, and
multiprocessing workers that never flush. Scenarios that used to hang run in a subprocess
with a timeout, so a regression fails instead of stalling the suite."""

import multiprocessing
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import modelwatch


def run(script, *args, timeout=60):
    """Runs `script` in a fresh interpreter; fails on a hang or a non-zero exit."""
    try:
        out = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(script), *args],
            capture_output=True, text=True, timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"hung for {timeout} s")
    assert out.returncode == 0, out.stderr
    return out.stdout


def total(data):
    rows = modelwatch.query("count(predictions)", since="2d", step="2d", data=data)
    return sum(r["value"] for r in rows)


def test_flush_close_and_stats_from_many_threads_at_once_never_deadlock(data):
    out = run(
        """
        import sys, threading, modelwatch
        agent = modelwatch.Agent("m", segments=["s"], features=["a"], data=sys.argv[1], interval=3600.0)
        made = [0] * 8
        def recorder(k):
            for i in range(20_000):
                agent.record("s", 0.001, 0.5, [float(i)])
                made[k] += 1
        def flusher():
            for _ in range(30):
                agent.flush()
                agent.stats()
        ts = [threading.Thread(target=recorder, args=(k,)) for k in range(6)]
        ts += [threading.Thread(target=flusher) for _ in range(3)]
        for t in ts: t.start()
        for t in ts[6:]: t.join()
        agent.close()                      # while recorders may still run
        for t in ts[:6]: t.join()
        print(sum(made), agent.stats()["after_close"])
        """,
        data,
    )
    made, after_close = map(int, out.split())
    assert total(data) + after_close == made


def test_the_interpreter_exits_while_a_daemon_thread_flushes(data):
    run(
        """
        import sys, threading, modelwatch
        agent = modelwatch.Agent("m", segments=["s"], data=sys.argv[1], interval=3600.0)
        def flush_forever():
            while True:
                agent.flush()
        threading.Thread(target=flush_forever, daemon=True).start()
        for i in range(5000):
            agent.record("s", 0.001, 0.5)
        """,
        data,
    )
    assert total(data) == 5000


def test_a_sink_that_flushes_or_closes_its_agent_is_told_and_nothing_hangs():
    out = run(
        """
        import threading, modelwatch
        said = []
        def sink(snapshot):
            for call in (agent.flush, agent.close):
                try:
                    call()
                except RuntimeError as e:
                    said.append(str(e))
        agent = modelwatch.Agent("m", segments=["s"], sink=sink, interval=3600.0)
        agent.record("s", 0.001, 0.5)
        agent.flush()
        t = threading.Thread(target=agent.flush); t.start(); t.join()
        agent.close()
        print(len(said)); print(said[0])
        """
    )
    n, message = out.splitlines()[:2]
    assert int(n) >= 2
    assert "inside the agent's sink" in message


def test_labels_as_numpy_ints_and_odd_record_values_are_counted_not_raised():
    snapshots = []
    agent = modelwatch.Agent("m", segments=["s"], features=["a"], sink=snapshots.append, interval=3600.0)
    predicted = np.array([1, 0, 1])  # what clf.predict returns
    agent.record("s", 0.001, 0.9, [1.0], predicted=predicted[0])
    agent.record("s", 0.001, 0.2, [1.0], predicted=np.bool_(False))
    agent.record("s", 0.001, 0.7, [1.0], predicted=1)
    agent.feedback("s", 0.9, np.int64(1))
    agent.record("s", "0.1", 0.5, [1.0])  # a latency that is no number: counted
    agent.record(None, 0.001, None, [1.0])  # no segment, no confidence: counted
    agent.record("\ud800", 0.001, 0.5, [1.0])  # a lone surrogate: `other`
    agent.log_metric("m", "x", ["not", "a", "dict"])
    agent.error(None, 3)
    with agent.timer("s") as t:
        t.confidence = "0.5"
        t.predicted = np.int64(0)
    agent.record_batch("s", np.full(3, 0.001), np.full(3, 0.5), np.ones((3, 1)), predicted)
    agent.record_batch("s", [0.001, 0.001], [0.5, 0.5], None, [np.bool_(True), None])
    agent.close()
    seg = {x["segment"]: x for snap in snapshots for x in snap["segments"]}
    assert seg["s"]["predictions"] + seg["other"]["predictions"] == 12
    assert seg["s"]["predicted_positive"] == 1 + 1 + 2 + 1
    assert seg["s"]["invalid"]["latency"] == 1
    assert seg["s"]["invalid"]["confidence"] == 1  # the timer's "0.5"
    assert seg["other"]["invalid"]["confidence"] == 1
    assert seg["s"]["feedback"] == 1
    assert agent.stats()["bad_values"] >= 1


def test_a_dict_row_changed_by_a_features_float_is_read_without_a_panic():
    snapshots = []
    agent = modelwatch.Agent("m", segments=["s"], features=["a", "b"], sink=snapshots.append, interval=3600.0)
    row = {}

    class Grows:
        def __float__(self):
            row.update({f"k{i}": i for i in range(100)})
            return 2.0

    row.update({"a": Grows(), "b": 3.0})
    agent.record("s", 0.001, 0.5, row)
    agent.close()
    f = {x["feature"]: x for snap in snapshots for x in snap["features"]}
    assert (f["a"]["min"], f["b"]["min"]) == (2.0, 3.0)
    assert agent.stats()["unknown_feature_names"] == 100


def test_record_batch_says_what_is_wrong_with_its_arrays():
    agent = modelwatch.Agent("m", features=["a", "b"], sink=print)
    with pytest.raises(ValueError, match="not C-contiguous"):
        agent.record_batch("s", np.zeros(4), np.zeros(4), np.zeros((4, 4))[:, ::2])
    with pytest.raises(ValueError, match="a 2-D array"):
        agent.record_batch("s", np.zeros((2, 2)), np.zeros(4))
    with pytest.raises(TypeError, match="not one string"):
        modelwatch.Agent("m", features="abc", sink=print)
    agent.close()


def test_multiprocessing_workers_deliver_their_last_interval_without_flushing(data):
    agent = modelwatch.Agent("m", segments=["s"], data=data, interval=3600.0)
    ctx = multiprocessing.get_context("fork")
    global _AGENT
    _AGENT = agent
    pool = ctx.Pool(3)
    made = sum(pool.map(_worker_records, [5000] * 6))
    pool.close()  # the workers end as multiprocessing ends them: os._exit after its finalizers
    pool.join()
    agent.close()
    assert total(data) == made == 30_000


_AGENT = None


def _worker_records(n):
    for i in range(n):
        _AGENT.record("s", 0.001, 0.5)
    return n
