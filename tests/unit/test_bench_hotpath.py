"""The offline hot-path tool (bench/hotpath.py) drives the agent's flush with a stand-in producer:
it must accept what the flush hands the producer."""

from __future__ import annotations

import subprocess
import sys


def test_bench_hotpath_runs():
    out = subprocess.run(
        [sys.executable, "-m", "bench.hotpath", "--events", "2000", "--posts", "20"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Traceback" not in out.stderr, out.stderr[-2000:]  # e.g. from a delivery callback
    assert "changelog records 2,0" in out.stdout
