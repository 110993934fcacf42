"""The worker's database sink process (`blogpulse sink`, streams/sink.py): started with the
worker, started again if it dies, stopped with it. Its metrics are served on the worker's
/metrics, so a worker stays one scrape target.

Why a process: faust runs every agent on one event loop and one core; the sink's fetching,
decoding and database work in the same process competed with the aggregation for the GIL
(docs/performance.md). In its own process it uses the second core."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from streams.process import stop_process

log = logging.getLogger(__name__)

RESTART_BACKOFF = 5.0  # seconds between restarts of a sink that keeps dying


def drop_process_collectors() -> None:
    """In the sink process: its process/platform/gc metrics would collide with the worker's."""
    from prometheus_client import GC_COLLECTOR, PLATFORM_COLLECTOR, PROCESS_COLLECTOR

    for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        try:
            REGISTRY.unregister(collector)
        except KeyError:
            pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SinkProcess:
    def __init__(self) -> None:
        self.metrics_port = _free_port()
        self.proc: subprocess.Popen | None = None
        self._started = 0.0

    def start(self) -> None:
        self._started = time.monotonic()
        # The child inherits this environment and reads the same settings from it.
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streams.cli",
                "sink",
                "--metrics-port",
                str(self.metrics_port),
                "--parent",
                str(os.getpid()),
            ]
        )
        log.info("sink process started (pid %d)", self.proc.pid)

    def check(self) -> None:
        """Start the sink again if it exited (it holds no state: it resumes from the offsets in
        the database)."""
        if self.proc is None or self.proc.poll() is None:
            return
        if time.monotonic() - self._started < RESTART_BACKOFF:
            return
        log.error("sink process exited with %s; starting it again", self.proc.returncode)
        self.start()

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, grace=30)

    def metrics_text(self) -> str:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2
            ) as answer:
                return answer.read().decode()
        except OSError:  # starting or restarting: its metrics are missing from this scrape
            return ""


class SinkMetrics:
    """A prometheus-client collector: the sink process's metrics, read at each scrape."""

    def __init__(self, sink: SinkProcess) -> None:
        self.sink = sink

    def describe(self) -> list:
        return []  # not known before the first scrape; no registration-time collect()

    def collect(self) -> Iterator[Any]:
        yield from text_string_to_metric_families(self.sink.metrics_text())


def install(app: Any) -> SinkProcess:
    """Start the sink with the worker and serve its metrics; returns it (the caller stops it)."""
    sink = SinkProcess()
    REGISTRY.register(SinkMetrics(sink))

    @app.timer(interval=RESTART_BACKOFF)
    async def _watch_sink() -> None:
        sink.check()

    sink.start()
    return sink
