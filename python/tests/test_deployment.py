"""modelwatch.Deployment against a registry the real CLI changes.

Versions come from the product's own path: labelled predictions imported with
``modelwatch import``, a challenger trained and registered by ``modelwatch retrain --force``
(a gate that passes any version, so each run registers one), promoted with
``modelwatch models promote``. What the deployment's agents record is read back with
``modelwatch query``. The CLI is the binary in ``MODELWATCH_BIN``; without it these tests fail.
"""

import json
import os
import random
import subprocess
import time

import pytest

import modelwatch

MODEL = "pii"
# A gate that lets every retrained version through: each `retrain --force` registers the
# challenger these tests need, whatever its AUC against the control.
CONFIG = """[triggers]
model = "pii"
[retrain]
min_examples = 100
[gate]
min_auc_gain = -0.99
max_importance_shift = 1.0
max_segment_drop = 1.0
max_latency_ratio = 1000.0
"""


def bin_path():
    path = os.environ.get("MODELWATCH_BIN")
    assert path, "set MODELWATCH_BIN to the modelwatch binary (cargo build --bin modelwatch)"
    assert os.access(path, os.X_OK), f"MODELWATCH_BIN={path} is not an executable"
    return path


def mw(*args):
    out = subprocess.run([bin_path(), *args], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"modelwatch {' '.join(args)}: {out.stderr}{out.stdout}"
    return out.stdout


def history(tmp_path, seed=7):
    """Writes 600 labelled predictions of `pii`, two and three days old, as
    `tmp_path/labelled.csv`, and the lenient gate's `tmp_path/modelwatch.toml`."""
    rng = random.Random(seed)
    t0 = int(time.time() * 1000) - 3 * 86_400_000
    lines = ["timestamp,model,version,variant,segment,latency_ms,confidence,label,label_time,f.a,f.b"]
    for i in range(600):
        a, b = rng.gauss(0, 1), rng.gauss(0, 1)
        label = "true" if a + 0.5 * b + rng.gauss(0, 0.5) > 0 else "false"
        t = t0 + i * 60_000
        lines.append(f"{t},{MODEL},0,control,email,3.0,0.5,{label},{t + 1000},{a:.4f},{b:.4f}")
    (tmp_path / "labelled.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "modelwatch.toml").write_text(CONFIG)
    return tmp_path / "labelled.csv"


@pytest.fixture
def data(tmp_path):
    """A data directory with the labelled predictions of `history`."""
    d = tmp_path / "data"
    mw("import", str(history(tmp_path)), "--data", str(d))
    return d


def retrain(data):
    """A new version, registered by the retraining loop as the challenger."""
    cfg = str(data.parent / "modelwatch.toml")
    out = mw("retrain", "--force", "--config", cfg, "--simulated-latency", "2,2", "--data", str(data),
             "--format", "json")
    run = json.loads(out)
    assert run["report"]["passed"], run["report"]
    return run["version"]


def promote(data, version):
    mw("models", "promote", MODEL, str(version), "--reason", "test", "--data", str(data))


def load_weights(info, path):
    """The loader a scorer writes: the logistic model's file, read from the fetched artifact."""
    with open(os.path.join(path, "model.json")) as f:
        return {"version": info["version"], "weights": json.load(f)}


def wait_for(cond, what, timeout=60.0):
    """Polls `cond` until true; a hang guard only, no assertion depends on the speed."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, what()
        time.sleep(0.01)


def served(data, since="2h"):
    """Predictions in the store by (variant, version) of the deployment's versions."""
    out = mw("query", f'sum(predictions{{model="{MODEL}"}}) by (variant, version)', "--data", str(data),
             "--since", since, "--step", "1h", "--format", "json")
    got = {}
    for series in json.loads(out):
        tags = series["tags"]
        if tags["version"] == "0":  # the imported history
            continue
        key = (tags["variant"], int(tags["version"]))
        got[key] = got.get(key, 0) + int(sum(v for _, v in series["points"] if v == v))
    return got


def test_the_control_serves_and_a_promotion_serves_the_new_version_and_tells_on_promote(data):
    v1 = retrain(data)
    promote(data, v1)
    with modelwatch.Deployment(MODEL, data=str(data), loader=load_weights, refresh=0) as dep:
        seen = []
        dep.on_promote(seen.append)
        v = dep.variant_for("doc-1")
        assert (v.arm, v.version) == ("control", v1)
        assert v.model["version"] == v1 and v.model["weights"]["features"] == ["a", "b"]
        assert v.info["version"] == v1
        assert dep.serving()["control"] == v1 and dep.serving()["challenger"] is None

        v2 = retrain(data)
        promote(data, v2)
        before = dep.serving()["generation"]
        r = dep.refresh()
        assert (r["control"], r["challenger"], r["changed"], r["failed"]) == (v2, None, True, [])
        assert seen == [{"control": v2, "challenger": None, "generation": before + 1}]
        assert {dep.variant_for(f"doc-{i}").version for i in range(1000)} == {v2}
        assert dep.variant_for("doc-1").model["version"] == v2
        # Nothing moved: no new serving, no callback.
        assert dep.refresh()["changed"] is False
        assert len(seen) == 1
    assert dep.variant_for("doc-1") is None


def test_the_refresh_thread_serves_a_promotion_without_being_asked(data):
    v1 = retrain(data)
    promote(data, v1)
    with modelwatch.Deployment(MODEL, data=str(data), refresh=0.05) as dep:
        got = []
        dep.on_promote(got.append)
        assert dep.variant_for("k").version == v1
        # The default loader hands over the fetched artifact's directory.
        assert os.path.isfile(os.path.join(dep.variant_for("k").model, "model.json"))
        v2 = retrain(data)  # the challenger: the thread serves it beside the control
        wait_for(lambda: got and got[-1]["challenger"] == v2, lambda: f"no challenger {v2}: {got} {dep.stats()}")
        assert got[-1]["control"] == v1
        promote(data, v2)
        wait_for(lambda: got[-1]["control"] == v2, lambda: f"no control {v2}: {got} {dep.stats()}")
        assert got[-1]["challenger"] is None
        assert dep.variant_for("k").version == v2
        generations = [s["generation"] for s in got]
        assert generations == sorted(set(generations)), got


def test_a_challenger_gets_its_share_of_the_keys_and_each_key_always_the_same_arm(data):
    v1 = retrain(data)
    promote(data, v1)
    v2 = retrain(data)  # the loop made it the challenger
    keys = [f"request-{i}" for i in range(10_000)]
    with modelwatch.Deployment(MODEL, data=str(data), fraction=0.3, refresh=0) as dep:
        assert dep.serving() == {"control": v1, "challenger": v2, "generation": 1}
        arms = [dep.variant_for(k).arm for k in keys]
        share = arms.count("challenger") / len(keys)
        assert abs(share - 0.3) < 0.02, share
        for k, arm in zip(keys, arms):
            v = dep.variant_for(k)
            assert v.arm == arm and v.version == (v2 if arm == "challenger" else v1)
        # A key as bytes is the same key.
        assert [dep.variant_for(k.encode()).arm for k in keys[:500]] == arms[:500]
        # Another replica over the same registry sends each key to the same arm.
        with modelwatch.Deployment(MODEL, data=str(data), fraction=0.3, refresh=0) as other:
            assert [other.variant_for(k).arm for k in keys] == arms
        # 0 and 1 send nothing and everything to the challenger.
        for fraction, want in [(0.0, {"control"}), (1.0, {"challenger"})]:
            with modelwatch.Deployment(MODEL, data=str(data), fraction=fraction, refresh=0) as d:
                assert {d.variant_for(k).arm for k in keys[:2000]} == want


def test_records_through_each_variants_agent_land_in_the_store_under_its_variant_and_version(data):
    v1 = retrain(data)
    promote(data, v1)
    v2 = retrain(data)
    counts = {}
    with modelwatch.Deployment(MODEL, data=str(data), fraction=0.3, refresh=0, segments=["email"],
                               features=["a", "b"]) as dep:
        for i in range(3000):
            v = dep.variant_for(f"doc-{i}")
            agent = dep.agent(v)
            assert agent is v.agent
            agent.record("email", 0.002, 0.8, features=[float(i), float("nan") if i % 7 == 0 else 1e300])
            counts[(v.arm, v.version)] = counts.get((v.arm, v.version), 0) + 1
        with dep.agent("challenger").timer("email") as t:
            t.confidence = 0.9
        counts[("challenger", v2)] += 1
        assert dep.agent("control").features == ["a", "b"]
        dep.flush()  # durable now, before close
        assert served(data) == counts
    assert set(counts) == {("control", v1), ("challenger", v2)}
    assert served(data) == counts


def test_a_loader_that_raises_keeps_the_old_control_serving_and_reports_the_version(data):
    v1 = retrain(data)
    promote(data, v1)
    v2 = retrain(data)
    promote(data, v2)
    mw("models", "rollback", MODEL, "--reason", "test", "--data", str(data))  # control: v1 again
    broken = {v2}

    def loader(info, path):
        if info["version"] in broken:
            raise ValueError(f"weights of version {info['version']} are corrupt")
        return info["version"]

    with modelwatch.Deployment(MODEL, data=str(data), loader=loader, refresh=0) as dep:
        seen = []
        dep.on_promote(seen.append)
        assert dep.variant_for("x").model == v1
        promote(data, v2)
        r = dep.refresh()
        assert r["control"] == v1 and not r["changed"]
        assert len(r["failed"]) == 1
        assert f"control version {v2}" in r["failed"][0] and "ValueError" in r["failed"][0], r["failed"]
        assert "corrupt" in r["failed"][0]
        assert dep.stats()["failed"] == r["failed"]
        assert dep.variant_for("x").version == v1 and seen == []
        # Mended: the next refresh loads it.
        broken.clear()
        r = dep.refresh()
        assert (r["control"], r["failed"]) == (v2, [])
        assert dep.variant_for("x").model == v2 and seen[-1]["control"] == v2


def test_a_callback_that_raises_is_counted_and_the_others_and_the_thread_go_on(data, capfd):
    v1 = retrain(data)
    promote(data, v1)
    with modelwatch.Deployment(MODEL, data=str(data), refresh=0.05) as dep:
        calls = []

        @dep.on_promote
        def bad(serving):
            raise RuntimeError("a callback bug")

        dep.on_promote(calls.append)
        for _ in range(2):
            v = retrain(data)
            promote(data, v)
            wait_for(lambda: calls and calls[-1]["control"] == v, lambda: f"{calls} {dep.stats()}")
            assert dep.variant_for("k").version == v
        # Every serving published reached the second callback, though the first raised.
        assert dep.stats()["callback_errors"] == len(calls) >= 2
    assert "a callback bug" in capfd.readouterr().err


def test_a_forked_child_picks_and_records_and_its_counts_reach_the_store(data):
    v1 = retrain(data)
    promote(data, v1)
    v2 = retrain(data)
    keys = [f"doc-{i}" for i in range(2000)]
    dep = modelwatch.Deployment(MODEL, data=str(data), fraction=0.3, refresh=0.05, segments=["email"])
    want = {k: dep.variant_for(k).arm for k in keys}
    held = dep.variant_for("held-across-the-fork")  # a request in flight when the server forks
    parent = {}
    for k in keys[:500]:
        v = dep.variant_for(k)
        v.agent.record("email", 0.001, 0.5)
        parent[(v.arm, v.version)] = parent.get((v.arm, v.version), 0) + 1
    children = []
    for c in range(2):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                for k in keys:
                    v = dep.variant_for(k)
                    assert v.arm == want[k], (k, v.arm, want[k])
                    v.agent.record("email", 0.001, 0.5)
                held.agent.record("email", 0.001, 0.5)
                dep.close()
                code = 0
            finally:
                os._exit(code)
        children.append(pid)
    for pid in children:
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    dep.close()
    want_counts = dict(parent)
    for k in keys:
        a = want[k]
        key = (a, v2 if a == "challenger" else v1)
        want_counts[key] = want_counts.get(key, 0) + 2
    held_key = (held.arm, held.version)
    want_counts[held_key] += 2
    assert served(data) == want_counts


def test_bad_arguments_are_refused_with_the_argument_named(tmp_path):
    d = str(tmp_path / "data")
    with pytest.raises(ValueError, match="fraction"):
        modelwatch.Deployment(MODEL, data=d, fraction=1.5)
    with pytest.raises(ValueError, match="fraction"):
        modelwatch.Deployment(MODEL, data=d, fraction=float("nan"))
    with pytest.raises(ValueError, match="refresh"):
        modelwatch.Deployment(MODEL, data=d, refresh=-1)
    with pytest.raises(ValueError, match="interval"):
        modelwatch.Deployment(MODEL, data=d, interval=0)
    with pytest.raises(TypeError, match="loader"):
        modelwatch.Deployment(MODEL, data=d, loader="not callable")
    with pytest.raises(ValueError, match="model"):
        modelwatch.Deployment("../escape", data=d)
    with pytest.raises(TypeError):
        modelwatch.Deployment(MODEL, data=d, features=[1, 2])
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    with pytest.raises(RuntimeError, match="file"):
        modelwatch.Deployment(MODEL, data=str(blocked))
    # A model nobody registered yet: nothing serves, and nothing fails.
    with modelwatch.Deployment(MODEL, data=d, refresh=0) as dep:
        assert dep.variant_for("k") is None
        assert dep.agent("control") is None
        assert dep.refresh()["control"] is None
        with pytest.raises(TypeError, match="str or bytes"):
            dep.variant_for(42)
        with pytest.raises(TypeError):
            dep.on_promote(3)


def test_a_deployment_agent_used_after_the_deployment_closed_counts_its_calls(data):
    promote(data, retrain(data))
    deployment = modelwatch.Deployment(MODEL, data=str(data), refresh=0)
    deployment.refresh()
    agent = deployment.variant_for("k").agent
    agent.record("all", 0.001, 0.5)
    deployment.close()
    for _ in range(5):
        agent.record("all", 0.001, 0.5)
    assert agent.stats()["after_close"] == 5
    assert agent.stats()["closed"] is True


def test_closing_a_deployment_from_its_callback_is_refused_and_loses_nothing(data):
    v1, v2 = retrain(data), retrain(data)
    promote(data, v1)
    said = []
    deployment = modelwatch.Deployment(MODEL, data=str(data), refresh=0)

    def close_me(serving):
        try:
            deployment.close()
        except RuntimeError as e:
            said.append(str(e))

    deployment.on_promote(close_me)
    deployment.refresh()
    deployment.variant_for("k").agent.record("all", 0.001, 0.5)
    promote(data, v2)
    deployment.refresh()
    deployment.variant_for("k").agent.record("all", 0.001, 0.5)
    deployment.close()
    assert said and "on_promote callback" in said[0]
    assert served(data) == {("control", v1): 1, ("control", v2): 1}
