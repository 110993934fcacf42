"""`blogpulse worker` subprocesses for the benchmark: own app id (consumer group, changelog topics),
web port, working directory (RocksDB data) and log file; peak RSS from /proc."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from streams.process import stop_process

REPO = Path(__file__).resolve().parents[1]
# Default log level (info), as `blogpulse worker` runs by default.
WORKER_CMD = [sys.executable, "-m", "bench.worker_main"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def peak_rss_kb(pid: int | str) -> int | None:
    """VmHWM of a process from /proc (None once it has exited)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def cpu_seconds(pid: int | str) -> float | None:
    """User + system CPU time of a process from /proc (None once it has exited)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int | str) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


@dataclass
class Worker:
    proc: subprocess.Popen
    port: int
    log_path: Path
    _log: object = field(repr=False, default=None)
    app_id: str = ""

    def peak_rss_mb(self) -> float | None:
        """VmHWM: the resident-set high-water mark of the worker process."""
        kb = peak_rss_kb(self.proc.pid)
        return None if kb is None else round(kb / 1024, 1)

    def cpu(self) -> dict[str, float | None]:
        """CPU seconds so far of the worker's main process and of its sink child process."""
        sinks = children(self.proc.pid)
        return {
            "worker": cpu_seconds(self.proc.pid),
            "sink": cpu_seconds(sinks[0]) if sinks else None,
        }

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        stop_process(self.proc)
        if self._log is not None:
            self._log.close()


def start(app_id: str, workdir: Path, env_extra: dict[str, str], index: int = 0) -> Worker:
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = dict(os.environ)
    env.update(env_extra)
    env.update(
        {
            "BLOGPULSE_APP_ID": app_id,
            "BLOGPULSE_WEB_PORT": str(port),
            "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p),
        }
    )
    env.setdefault("BLOGPULSE_AUTHOR_SECRET", "bench-secret")
    log_path = workdir / f"worker-{index}.log"
    log = open(log_path, "wb")
    # cwd=workdir: faust's data directory (RocksDB files) goes there, not into the repository.
    proc = subprocess.Popen(WORKER_CMD, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
    return Worker(proc, port, log_path, log, app_id)


def wait_web(worker: Worker, timeout: float = 120) -> None:
    """Until the worker's /metrics answers (the app has started)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.proc.poll() is not None:
            raise RuntimeError(f"worker exited with {worker.proc.returncode}:\n{worker.log_tail()}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{worker.port}/metrics", timeout=2).read()
            return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(
        f"worker web port {worker.port} did not answer in {timeout:.0f}s:\n{worker.log_tail()}"
    )
