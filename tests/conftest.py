"""Shared fixtures. Integration tests need the real services from deploy/local/up: when one does not
answer they fail with the command to run, never skip (a skipped integration suite proves nothing)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
WXR_DIR = SHARED / "wxr"

BROKER = os.environ.get("BLOGPULSE_BROKER", "127.0.0.1:9092")
PG_URL = os.environ.get(
    "BLOGPULSE_TEST_PG_URL",
    "postgresql+psycopg://blogpulse:blogpulse@127.0.0.1:5432/blogpulse_test",
)
PROMETHEUS_URL = os.environ.get("BLOGPULSE_TEST_PROMETHEUS_URL", "http://127.0.0.1:9090")


def run_probe(script: str, **env: str) -> dict:
    """Run `script` in a fresh interpreter with extra environment variables (the settings the
    script reads with load_settings()); returns the JSON object it printed last."""
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    if not _answers(host, port):
        pytest.fail(
            f"{name} does not answer on {host}:{port}: start it with deploy/local/up", pytrace=False
        )


@pytest.fixture(scope="session")
def broker() -> str:
    host, port = BROKER.split(",")[0].rsplit(":", 1)
    require_service("Kafka", host, int(port))
    return BROKER


@pytest.fixture(scope="session")
def pg_url() -> str:
    from sqlalchemy.engine import make_url

    url = make_url(PG_URL)
    require_service("PostgreSQL", url.host or "127.0.0.1", url.port or 5432)
    return PG_URL


@pytest.fixture(scope="session")
def prometheus_url() -> str:
    from urllib.parse import urlparse

    u = urlparse(PROMETHEUS_URL)
    require_service("Prometheus", u.hostname or "127.0.0.1", u.port or 9090)
    return PROMETHEUS_URL


@pytest.fixture
def unique() -> str:
    """A short unique token for topic, site and consumer-group names, so tests never share state."""
    return uuid.uuid4().hex[:10]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
