"""modelwatch.Agent from Python: every prediction counted, the same numbers as NumPy and
scikit-learn, nothing flushed lost to SIGKILL, forked workers, odd values counted, clear errors."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
from sklearn.metrics import precision_score

import modelwatch

FEATURES = [f"f{i}" for i in range(16)]


def total(data, expr="count(predictions)"):
    """Sum of every point of a query over the last two days (windows of two days)."""
    rows = modelwatch.query(expr, since="2d", step="2d", data=data)
    return sum(r["value"] for r in rows)


def whole(data, expr, start):
    """A query's one value over everything recorded since `start` (one window of ten years)."""
    rows = modelwatch.query(expr, start=start, end=time.time() + 60, step="3650d", data=data)
    assert len(rows) == 1, rows
    return rows[0]


def test_eight_threads_record_every_prediction_and_numpy_quantiles(data, cli):
    threads, per_thread = 8, 100_000
    start = time.time() - 60
    agent = modelwatch.Agent("scorer", segments=["all"], features=FEATURES, data=data, interval=3600.0)
    rng = np.random.default_rng(7)
    # Latencies over three decades (50 µs .. 50 ms), one array per thread.
    latencies = [np.exp(rng.uniform(np.log(5e-5), np.log(5e-2), per_thread)) for _ in range(threads)]
    features = rng.normal(size=(per_thread, 16))
    rows = [list(r) for r in features[:1000]]
    barrier = threading.Barrier(threads)

    def work(k):
        barrier.wait()
        lat = latencies[k]
        for i in range(per_thread):
            agent.record("all", lat[i], 0.5, rows[i % 1000])

    ts = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    agent.close()

    assert total(data) == threads * per_thread
    # The CLI reads the same store and agrees.
    cli_points = cli.json("query", "count(predictions)", "--data", data, "--since", "2d", "--step", "2d")
    assert sum(p[1] for s in cli_points for p in s["points"]) == threads * per_thread

    recorded = np.concatenate(latencies)
    for q in (0.5, 0.9, 0.99):
        got = whole(data, f"quantile({q}, latency)", start)["value_ns"] / 1e9
        want = float(np.quantile(recorded, q))
        # The histogram keeps two significant digits: within 1 %, plus the gap between
        # neighbouring order statistics.
        assert abs(got - want) <= 0.01 * want + 1e-6, (q, got, want)


def test_labels_by_prediction_time_give_scikit_learns_precision(data):
    # One-minute intervals: a label goes to its prediction's interval, and the window below
    # must hold every such interval whatever the hour (with hour-long ones it did not, at
    # some minutes past the hour).
    agent = modelwatch.Agent("scorer", segments=["all"], data=data, interval=60.0)
    rng = np.random.default_rng(11)
    n = 5_000
    # Away from the threshold's bin (0.5) so that binning cannot move a prediction across it.
    confidence = np.where(rng.random(n) < 0.5, rng.uniform(0.05, 0.45, n), rng.uniform(0.55, 0.95, n))
    label = rng.random(n) < confidence
    now = time.time()
    predicted_at = now - rng.uniform(60, 1800, n)  # made in the last half hour, labelled now
    for c, y, t in zip(confidence, label, predicted_at):
        agent.record("all", 0.001, float(c))
        agent.feedback("all", float(c), bool(y), predicted_at=float(t))
    agent.close()

    doc = modelwatch.quality(start=now - 1800 - 120, end=time.time() + 60, data=data, threshold=0.5)
    realised = doc["groups"][0]["realised"]
    assert realised["n"] == n
    assert realised["precision"] == pytest.approx(precision_score(label, confidence >= 0.5), abs=1e-12)


def test_a_label_goes_to_its_predictions_interval_not_its_arrival(data):
    agent = modelwatch.Agent("scorer", segments=["all"], data=data, interval=60.0)
    two_hours_ago = time.time() - 7200
    agent.feedback("all", 0.9, True, predicted_at=two_hours_ago)
    agent.close()
    old = modelwatch.quality(start=two_hours_ago - 60, end=two_hours_ago + 60, data=data)
    recent = modelwatch.quality(since="30m", data=data)
    assert old["groups"][0]["realised"]["n"] == 1
    assert all(g["realised"]["n"] == 0 for g in recent["groups"])


KILLED = textwrap.dedent(
    """
    import sys, time, modelwatch
    agent = modelwatch.Agent("scorer", segments=["all"], features=["a", "b"], data=sys.argv[1], interval=3600.0)
    for i in range(20_000):
        agent.record("all", 0.001, 0.5, [float(i), 1.0])
    agent.flush()
    print("flushed", flush=True)
    for i in range(5_000):          # recorded, never flushed: may be lost
        agent.record("all", 0.001, 0.5, [float(i), 1.0])
    print("more", flush=True)
    time.sleep(600)
    """
)


def test_sigkill_after_flush_loses_nothing_flushed(data):
    p = subprocess.Popen([sys.executable, "-c", KILLED, data], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "flushed"
    assert p.stdout.readline().strip() == "more"
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert p.returncode == -signal.SIGKILL
    assert total(data) == 20_000


def test_forked_workers_each_take_their_own_writer_slot(data):
    agent = modelwatch.Agent("scorer", segments=["all"], features=["a"], data=data, interval=3600.0)
    agent.record("all", 0.001, 0.5, [1.0])  # the parent records before and after the fork
    workers, per_worker = 4, 25_000
    pids = []
    for w in range(workers):
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                for i in range(per_worker):
                    agent.record("all", 0.001, 0.5, [float(w)])
                agent.close()
            except BaseException:
                code = 1
            os._exit(code)
        pids.append(pid)
    agent.record("all", 0.001, 0.5, [1.0])
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    agent.close()
    assert total(data) == workers * per_worker + 2
    writers = os.listdir(os.path.join(data, "writers"))
    assert len(writers) >= workers + 1, writers


def test_odd_values_are_counted_never_raised(data):
    snapshots = []
    agent = modelwatch.Agent("scorer", segments=["a"], features=["x", "y"], sink=snapshots.append, interval=3600.0)
    for lat in (float("nan"), float("inf"), -1.0, 1e300):
        agent.record("a", lat, 0.5, [1.0, 2.0])
    for conf in (float("nan"), 2.0, -0.1, 1e300):
        agent.record("a", 0.001, conf, [1.0, 2.0])
    agent.record("a", 0.001, 0.5, [1.0])  # too short
    agent.record("a", 0.001, 0.5, [1.0, 2.0, 3.0])  # too long
    agent.record("a", 0.001, 0.5, ["not a number", object()])
    agent.record("a", 0.001, 0.5, {"x": 1.0, "nope": 2.0})
    agent.record("nobody-declared-me", 0.001, 0.5, [1.0, 2.0])
    agent.feedback("a", float("nan"), True)
    agent.feedback("a", 0.5, True, predicted_at=float("nan"))
    agent.error("a", "undeclared-kind")
    agent.log_metric("m", float("nan"), {"k": "v"})
    agent.close()
    agent.record("a", 0.001, 0.5)  # after close: counted
    s = {x["segment"]: x for snap in snapshots for x in snap["segments"]}
    inv = s["a"]["invalid"]
    assert inv["latency"] == 3
    assert inv["latency_clamped"] == 1
    assert inv["confidence"] == 4
    assert inv["schema"] == 2
    assert inv["feedback_confidence"] == 1
    assert s["a"]["errors"] == {"other": 1}
    assert "other" in s  # the undeclared segment
    assert sum(x["predictions"] for x in s.values()) == 13
    assert agent.stats()["after_close"] == 1


def test_features_as_list_tuple_dict_and_numpy_are_the_same_row(data):
    snapshots = []
    feats = ["a", "b", ("kind", ["red", "blue"])]
    agent = modelwatch.Agent("m", segments=["s"], features=feats, sink=snapshots.append, interval=3600.0)
    agent.record("s", 0.001, 0.5, [1.5, -2.0, "blue"])
    agent.record("s", 0.001, 0.5, (1.5, -2.0, "blue"))
    agent.record("s", 0.001, 0.5, {"kind": "blue", "b": -2.0, "a": 1.5})
    agent.record("s", 0.001, 0.5, np.array([1.5, -2.0, 1.0]))
    agent.record("s", 0.001, 0.5, np.array([1.5, -2.0, 1.0], dtype=np.float32))
    agent.record("s", 0.001, 0.5, np.array([[1.5, 9.0], [-2.0, 9.0], [1.0, 9.0]])[:, 0])  # strided
    agent.close()
    f = {x["feature"]: x for snap in snapshots for x in snap["features"]}
    assert (f["a"]["count"], f["a"]["min"], f["a"]["max"]) == (6, 1.5, 1.5)
    assert (f["b"]["count"], f["b"]["min"], f["b"]["max"]) == (6, -2.0, -2.0)
    assert f["kind"]["counts"] == {"blue": 6}


def test_record_batch_counts_every_row_with_its_features(data):
    snapshots = []
    agent = modelwatch.Agent("m", segments=["s", "t"], features=["a", "b"], sink=snapshots.append, interval=3600.0)
    n = 50_000
    rng = np.random.default_rng(3)
    feats = rng.normal(size=(n, 2))
    segs = ["s" if i % 4 else "t" for i in range(n)]
    assert agent.record_batch(segs, rng.uniform(0, 0.01, n), rng.random(n), feats, rng.random(n) < 0.5) == n
    assert agent.record_batch("s", [0.001], [0.5]) == 1
    agent.close()
    s = {x["segment"]: x["predictions"] for snap in snapshots for x in snap["segments"]}
    assert s == {"s": n * 3 // 4 + 1, "t": n // 4}
    a = [x for snap in snapshots for x in snap["features"] if x["feature"] == "a"]
    assert sum(x["count"] for x in a) == n
    assert min(x["min"] for x in a) == feats[:, 0].min()
    with pytest.raises(ValueError, match="confidence has 2 rows, latency_s has 1"):
        modelwatch.Agent("m", sink=print).record_batch("s", [0.1], [0.1, 0.2])
    with pytest.raises(ValueError, match=r"features: shape \[3, 2\], expected \(2, 2\)"):
        modelwatch.Agent("m", features=["a", "b"], sink=print).record_batch("s", [0.1, 0.1], [0.1, 0.2], np.zeros((3, 2)))


def test_timer_records_the_block_and_an_exception_as_an_error(data):
    snapshots = []
    agent = modelwatch.Agent("m", segments=["s"], sink=snapshots.append, interval=3600.0)
    with agent.timer("s") as t:
        time.sleep(0.02)
        t.confidence = 0.8
    with pytest.raises(KeyError):
        with agent.timer("s"):
            raise KeyError("boom")
    agent.close()
    s = [x for snap in snapshots for x in snap["segments"]][0]
    assert s["predictions"] == 1
    assert s["latency_p50_s"] >= 0.02
    assert s["errors"] == {"other": 1}


def test_build_errors_name_what_is_wrong(tmp_path):
    with pytest.raises(ValueError, match='feature "a" is declared twice'):
        modelwatch.Agent("m", features=["a", "a"], sink=print)
    with pytest.raises(TypeError, match=r"features\[1\] = 3"):
        modelwatch.Agent("m", features=["a", 3], sink=print)
    with pytest.raises(ValueError, match='model="": give a name that is not empty'):
        modelwatch.Agent("", sink=print)
    with pytest.raises(ValueError, match="version="):
        modelwatch.Agent("m", version="1\x00", sink=print)
    with pytest.raises(ValueError, match="segment="):
        modelwatch.Agent("m", segments=["a", "b\nc"], sink=print)
    with pytest.raises(ValueError, match="interval=0"):
        modelwatch.Agent("m", interval=0, sink=print)
    with pytest.raises(ValueError, match="not both"):
        modelwatch.Agent("m", data=str(tmp_path), sink=print)
    with pytest.raises(ValueError, match="must be callable"):
        modelwatch.Agent("m", sink=3)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(RuntimeError, match="a-file"):
        modelwatch.Agent("m", data=str(blocker / "data"))


def test_a_context_manager_agent_flushes_on_exit(data):
    with modelwatch.Agent("m", segments=["s"], data=data, interval=3600.0) as agent:
        agent.record("s", 0.001, 0.5)
    assert agent.stats()["closed"]
    assert total(data) == 1


def test_an_agent_never_closed_delivers_its_last_interval_at_exit(data):
    script = textwrap.dedent(
        """
        import sys, threading, time, modelwatch
        agent = modelwatch.Agent("scorer", segments=["all"], data=sys.argv[1], interval=3600.0)
        for i in range(1234):
            agent.record("all", 0.001, 0.5)
        # No close(), no flush(), and a daemon thread (a scorer's worker) still holds the
        # agent when the interpreter exits, so it is never dropped.
        holder = threading.Thread(target=lambda a: time.sleep(1000), args=(agent,), daemon=True)
        holder.start()
        """
    )
    subprocess.run([sys.executable, "-c", script, data], check=True, timeout=120)
    assert total(data) == 1234
