"""Private Kafka and PostgreSQL servers for the fault suite (deploy/local scripts, own ports and
state directory), so stopping "the broker" or "the database" never disturbs other suites."""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from tests.conftest import REPO, free_port

LOCAL = REPO / "deploy" / "local"


class LocalService:
    """deploy/local/<script> with its own BLOGPULSE_STATE_DIR and ports."""

    def __init__(self, script: str, state_dir: Path, **ports: int) -> None:
        self.script, self.state_dir, self.ports = script, state_dir, ports
        self.env = {**os.environ, "BLOGPULSE_STATE_DIR": str(state_dir),
                    **{f"BLOGPULSE_{k.upper()}": str(v) for k, v in ports.items()}}

    def run(self, action: str, timeout: float = 180) -> float:
        """Run start|stop|restart; return the seconds it took."""
        t0 = time.monotonic()
        done = subprocess.run([str(LOCAL / self.script), action], env=self.env, capture_output=True,
                              text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"deploy/local/{self.script} {action} failed:\n{done.stderr[-3000:]}")
        return time.monotonic() - t0

    start = lambda self: self.run("start")  # noqa: E731
    stop = lambda self: self.run("stop")  # noqa: E731


class Kafka(LocalService):
    def __init__(self, state_dir: Path) -> None:
        super().__init__("kafka", state_dir, kafka_port=free_port(), kafka_controller_port=free_port())
        self.broker = f"127.0.0.1:{self.ports['kafka_port']}"


class Postgres(LocalService):
    def __init__(self, state_dir: Path) -> None:
        super().__init__("postgres", state_dir, pg_port=free_port())
        self.port = self.ports["pg_port"]

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://blogpulse:blogpulse@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str, owner: str = "blogpulse") -> str:
        """A fresh database (as the postgres superuser, over the local socket)."""
        self.admin_sql(f"create database {name} owner {owner}")
        return self.url(name)

    def create_role(self, name: str, password: str) -> None:
        self.admin_sql(f"create role {name} login password '{password}'")

    def admin_sql(self, sql: str) -> None:
        data = self.state_dir / "postgres"
        cmd = ["psql", "-h", str(data), "-p", str(self.port), "-U", "postgres", "-d", "postgres",
               "-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql]
        if os.getuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        pg_bin = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
        env = {**os.environ, "PATH": os.pathsep.join([str(pg_bin[-1]), os.environ["PATH"]])} if pg_bin else None
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)
        if done.returncode != 0:
            raise RuntimeError(f"psql failed: {done.stderr}")
