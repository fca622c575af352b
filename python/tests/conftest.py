"""Shared fixtures: a fresh data directory per test, and the `modelwatch` CLI binary.

The CLI is the other half of every claim the binding makes ("the CLI then reads what Python
recorded"), so a test that needs it fails, never skips, when MODELWATCH_BIN is not set:
`scripts/test` sets it to the workspace's debug build.
"""

import json
import os
import subprocess

import pytest


@pytest.fixture
def data(tmp_path):
    return str(tmp_path / "modelwatch-data")


@pytest.fixture(scope="session")
def cli():
    binary = os.environ.get("MODELWATCH_BIN")
    if not binary or not os.access(binary, os.X_OK):
        pytest.fail("MODELWATCH_BIN must name the modelwatch binary (scripts/test sets it)")

    def run(*args):
        out = subprocess.run([binary, *args], capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, f"modelwatch {' '.join(args)}: {out.stderr}"
        return out.stdout

    def run_json(*args):
        return json.loads(run(*args, "--format", "json"))

    run.json = run_json
    return run
