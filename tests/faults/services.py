"""Private Kafka and PostgreSQL servers for the fault suite (deploy/local scripts, own ports and
state directory), so stopping "the broker" or "the database" never disturbs other suites."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import time
import uuid
from pathlib import Path

from tests.conftest import REPO, free_port

LOCAL = REPO / "deploy" / "local"


class LocalService:
    """deploy/local/<script> with its own BLOGPULSE_STATE_DIR and ports."""

    def __init__(self, script: str, state_dir: Path, **ports: int) -> None:
        self.script, self.state_dir, self.ports = script, state_dir, ports
        self.env = {
            **os.environ,
            "BLOGPULSE_STATE_DIR": str(state_dir),
            **{f"BLOGPULSE_{k.upper()}": str(v) for k, v in ports.items()},
        }

    def run(self, *action: str, timeout: float = 180) -> float:
        """Run start|stop|restart (and for Kafka `kill NODE` ...); return the seconds it took."""
        t0 = time.monotonic()
        done = subprocess.run(
            [str(LOCAL / self.script), *action],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"deploy/local/{self.script} {' '.join(action)} failed:\n{done.stderr[-3000:]}"
            )
        return time.monotonic() - t0

    start = lambda self: self.run("start")  # noqa: E731
    stop = lambda self: self.run("stop")  # noqa: E731


def free_ports(count: int) -> int:
    """The first of `count` consecutive free ports (a cluster's node i listens on base+i-1)."""
    for _ in range(200):
        base = random.randrange(20000, 60000 - count)
        try:
            for port in range(base, base + count):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError(f"no {count} consecutive free ports")


class Kafka(LocalService):
    """One broker. Clients need `client_env` (and `settings()`) besides the bootstrap address."""

    replication_factor = min_insync_replicas = 1

    def __init__(self, state_dir: Path, **extra: int) -> None:
        super().__init__(
            "kafka", state_dir, kafka_port=free_port(), kafka_controller_port=free_port(), **extra
        )
        self.broker = f"127.0.0.1:{self.ports['kafka_port']}"

    @property
    def client_env(self) -> dict[str, str]:
        return {
            "BLOGPULSE_REPLICATION_FACTOR": str(self.replication_factor),
            "BLOGPULSE_MIN_INSYNC_REPLICAS": str(self.min_insync_replicas),
        }

    def settings(self):
        from streams.settings import Settings

        return Settings(
            broker=self.broker,
            replication_factor=self.replication_factor,
            min_insync_replicas=self.min_insync_replicas,
        )


class KafkaCluster(Kafka):
    """`nodes` brokers (deploy/local/kafka with BLOGPULSE_KAFKA_BROKERS): topics with 3 replicas
    and min ISR 2, so one node may be down and every acknowledged write is on two."""

    def __init__(self, state_dir: Path, nodes: int = 3) -> None:
        LocalService.__init__(
            self,
            "kafka",
            state_dir,
            kafka_port=free_ports(nodes),
            kafka_controller_port=free_ports(nodes),
            kafka_brokers=nodes,
        )
        self.nodes = nodes
        self.replication_factor, self.min_insync_replicas = min(nodes, 3), min(nodes, 2)
        base = self.ports["kafka_port"]
        self.broker = ",".join(f"127.0.0.1:{base + i}" for i in range(nodes))


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
        cmd = [
            "psql",
            "-h",
            str(data),
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-v",
            "ON_ERROR_STOP=1",
            "-qAt",
            "-c",
            sql,
        ]
        if os.getuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        pg_bin = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
        env = (
            {**os.environ, "PATH": os.pathsep.join([str(pg_bin[-1]), os.environ["PATH"]])}
            if pg_bin
            else None
        )
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)
        if done.returncode != 0:
            raise RuntimeError(f"psql failed: {done.stderr}")


class SecureKafka(Kafka):
    """One broker whose client listener is SASL_SSL: SCRAM-SHA-512 user `blogpulse` with a
    password made for the run, TLS certificate signed by a CA made at start (tls/ca.pem).
    Its PLAINTEXT listener is for the controller and replication only; tests use `broker`."""

    user = "blogpulse"

    def __init__(self, state_dir: Path) -> None:
        self.password = f"scram-{uuid.uuid4().hex}"
        super().__init__(state_dir, kafka_sasl_ssl_port=free_port())
        self.env.update(
            BLOGPULSE_KAFKA_SASL_USERNAME=self.user, BLOGPULSE_KAFKA_SASL_PASSWORD=self.password
        )
        self.broker = f"127.0.0.1:{self.ports['kafka_sasl_ssl_port']}"
        self.cafile = state_dir / "tls" / "ca.pem"

    @property
    def client_env(self) -> dict[str, str]:
        return {**super().client_env, **self.security_env()}

    def security_env(self, **override: str) -> dict[str, str]:
        return {
            "BLOGPULSE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "BLOGPULSE_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "BLOGPULSE_KAFKA_SASL_USERNAME": self.user,
            "BLOGPULSE_KAFKA_SASL_PASSWORD": self.password,
            "BLOGPULSE_KAFKA_SSL_CAFILE": str(self.cafile),
            **override,
        }

    def settings(self):
        from streams.settings import Settings

        return Settings(
            broker=self.broker,
            kafka_security_protocol="SASL_SSL",
            kafka_sasl_mechanism="SCRAM-SHA-512",
            kafka_sasl_username=self.user,
            kafka_sasl_password=self.password,
            kafka_ssl_cafile=str(self.cafile),
        )
