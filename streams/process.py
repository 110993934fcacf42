"""Stopping a child process (a worker, a broker script): one way for the product, bench and tests."""

from __future__ import annotations

import signal
import subprocess


def stop_process(proc: subprocess.Popen, grace: float = 30.0, sig: int = signal.SIGTERM) -> None:
    """Send `sig` (a clean stop by default), wait up to `grace` seconds, then SIGKILL. No-op for a
    process that already exited."""
    if proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
