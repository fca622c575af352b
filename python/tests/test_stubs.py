"""The type stubs say what the native module has: mypy's stubtest compares every name,
signature and default in `modelwatch/_modelwatch.pyi` with the built module."""

import subprocess
import sys


def test_the_stubs_match_the_native_module():
    out = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "modelwatch._modelwatch"],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
