"""Run a real `blogpulse worker` subprocess for integration tests: its own app id (consumer group,
changelog topics), web port and database, so tests never share state through the worker."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.process import stop_process
from tests.conftest import REPO, free_port

CLI = [sys.executable, "-m", "streams.cli"]


class Worker:
    def __init__(self, proc: subprocess.Popen, port: int, env: dict[str, str], log: Path) -> None:
        self.proc, self.port, self.env, self.log = proc, port, env, log

    def metrics(self) -> str:
        return (
            urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5)
            .read()
            .decode()
        )

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            pytest.fail(f"worker exited with {self.proc.returncode}:\n{self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]


def worker_env(broker: str, app_id: str, port: int, db_url: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "BLOGPULSE_BROKER": broker,
            "BLOGPULSE_APP_ID": app_id,
            "BLOGPULSE_WEB_PORT": str(port),
            "BLOGPULSE_DB": db_url,
            "BLOGPULSE_AUTHOR_SECRET": env.get("BLOGPULSE_AUTHOR_SECRET", "integration-secret"),
            "PYTHONPATH": os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]),
            **extra,
        }
    )
    return env


def db_upgrade(env: dict[str, str]) -> None:
    done = subprocess.run(
        [*CLI, "db", "upgrade"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr


@contextlib.contextmanager
def running_worker(
    broker: str, app_id: str, db_url: str, log: Path, timeout: float = 90, **extra_env: str
) -> Iterator[Worker]:
    """Migrate the database, start the worker, wait until /metrics answers; stop it at the end."""
    port = free_port()
    env = worker_env(broker, app_id, port, db_url, **extra_env)
    db_upgrade(env)
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [*CLI, "worker"], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT
        )
        worker = Worker(proc, port, env, log)
        try:
            deadline = time.monotonic() + timeout
            while True:
                worker.check_alive()
                try:
                    worker.metrics()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        pytest.fail(f"worker web port {port} did not answer:\n{worker.log_tail()}")
                    time.sleep(0.5)
            yield worker
        finally:
            stop_process(proc)


def wait_until(
    condition, timeout: float, what: str, worker: Worker | None = None, every: float = 0.5
):
    """Poll condition() until it returns a truthy value; fail naming `what` otherwise."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if worker is not None:
            worker.check_alive()
        last = condition()
        if last:
            return last
        time.sleep(every)
    pytest.fail(
        f"{what}: not reached in {timeout}s (last: {last!r})"
        + (f"\n{worker.log_tail()}" if worker else "")
    )
