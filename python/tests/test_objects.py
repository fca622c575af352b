"""Agents, readers and deployments whose Parquet files live in an S3-compatible bucket (a real
moto_server, as the Rust S3 tests use), beside the CLI's `--objects`."""

import os
import socket
import subprocess
import time
import urllib.request

import pytest

import modelwatch

URL = "s3://modelwatch/py"


@pytest.fixture
def bucket(monkeypatch):
    binary = os.environ.get("MODELWATCH_MOTO")
    if not binary:
        pytest.fail("MODELWATCH_MOTO must name moto_server (pip install 'moto[server]'; scripts/test sets it)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([binary, "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "moto_server did not start"
            time.sleep(0.1)
    endpoint = f"http://127.0.0.1:{port}"
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/modelwatch", method="PUT")).read()
    for k, v in {"AWS_ENDPOINT": endpoint, "AWS_ALLOW_HTTP": "true", "AWS_ACCESS_KEY_ID": "test",
                 "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    yield endpoint
    server.kill()
    server.wait()


def listing(endpoint):
    return urllib.request.urlopen(f"{endpoint}/modelwatch?list-type=2&prefix=py/").read().decode()


def test_an_agent_keeps_its_files_in_a_bucket_that_the_readers_and_the_cli_read(bucket, data, cli):
    agent = modelwatch.Agent("m", segments=["s"], features=["a"], data=data, objects=URL, interval=3600.0)
    for i in range(1000):
        agent.record("s", 0.001, 0.5, [float(i)])
    agent.close()
    rows = modelwatch.query("count(predictions)", since="2d", step="2d", data=data, objects=URL)
    assert sum(r["value"] for r in rows) == 1000
    printed = cli.json("query", "count(predictions)", "--data", data, "--objects", URL, "--since", "2d", "--step", "2d")
    assert sum(p[1] for s in printed for p in s["points"]) == 1000
    # The Parquet files are in the bucket, none in the data directory (it keeps the WAL).
    assert ".parquet" in listing(bucket), listing(bucket)
    assert not [f for _, _, fs in os.walk(data) for f in fs if f.endswith(".parquet")]


def test_objects_must_name_a_bucket(data):
    with pytest.raises(ValueError, match="s3://bucket/prefix"):
        modelwatch.Agent("m", data=data, objects="/tmp/not-a-bucket")
    with pytest.raises(ValueError, match="not sink="):
        modelwatch.Agent("m", objects=URL, sink=print)


def test_a_deployment_follows_a_registry_in_a_bucket(bucket, tmp_path, cli):
    from test_deployment import MODEL, history

    csv = history(tmp_path, seed=3)
    data = str(tmp_path / "data")
    on = ["--data", data, "--objects", URL]
    cli("import", str(csv), *on)
    run = cli.json("retrain", "--force", "--config", str(tmp_path / "modelwatch.toml"),
                   "--simulated-latency", "2,2", *on)
    cli("models", "promote", MODEL, str(run["version"]), "--reason", "test", *on)
    assert "py/registry/" in listing(bucket), listing(bucket)

    with modelwatch.Deployment(MODEL, data=data, objects=URL, refresh=0, segments=["email"]) as dep:
        dep.refresh()
        v = dep.variant_for("doc-1")
        assert (v.arm, v.version) == ("control", run["version"])
        for i in range(100):
            dep.variant_for(f"doc-{i}").agent.record("email", 0.002, 0.8)
    printed = cli.json("query", f'sum(predictions{{model="{MODEL}",version="{run["version"]}"}})',
                       *on, "--since", "2h", "--step", "2h")
    assert sum(p[1] for s in printed for p in s["points"]) == 100
