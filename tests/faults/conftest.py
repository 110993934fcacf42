"""Fault-suite fixtures: a private Kafka broker per test and one private PostgreSQL server for the
session, started with deploy/local and stopped at the end. Every test here is marked `fault`."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.faults.services import Kafka, KafkaCluster, Postgres, SecureKafka


def pytest_collection_modifyitems(items):
    for item in items:
        if "/faults/" in str(item.fspath):
            item.add_marker(pytest.mark.fault)


def _state_dir(prefix: str) -> Path:
    # Under /tmp and world-traversable: the postgres account must reach its data directory.
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


def _running(server_class, prefix: str):
    """Start a service of the test's own in a temporary state dir; stop and remove it after."""
    state = _state_dir(prefix)
    server = server_class(state)
    try:
        server.start()
    except RuntimeError:
        # A port picked as free can be taken before the service binds it (on a busy CI machine
        # a 3-node cluster picks six): once more, on other ports.
        try:
            server.stop()
        except RuntimeError:
            pass
        shutil.rmtree(state, ignore_errors=True)
        state = _state_dir(prefix)
        server = server_class(state)
        server.start()
    try:
        yield server
    finally:
        try:
            server.stop()
        finally:
            shutil.rmtree(state, ignore_errors=True)


@pytest.fixture
def kafka():
    yield from _running(Kafka, "bp-fault-kafka-")


@pytest.fixture
def kafka_cluster():
    """A 3-node KRaft cluster of the test's own (deploy/local/kafka, BLOGPULSE_KAFKA_BROKERS=3)."""
    yield from _running(KafkaCluster, "bp-fault-cluster-")


@pytest.fixture(scope="module")
def secure_kafka():
    """A broker of the module's own whose client listener is SASL_SSL (SCRAM-SHA-512 over TLS)."""
    yield from _running(SecureKafka, "bp-fault-sasl-")


@pytest.fixture(scope="session")
def postgres_server():
    yield from _running(Postgres, "bp-fault-pg-")


@pytest.fixture
def fault_db(postgres_server, unique):
    return postgres_server.create_database(f"fault_{unique}")


FAULT_EVENTS = int(os.environ.get("BLOGPULSE_FAULT_EVENTS", "20000"))


@pytest.fixture
def fault_events() -> int:
    return FAULT_EVENTS


GUARANTEES = ("at_least_once", "exactly_once")


@pytest.fixture
def guarantee() -> str:
    """BLOGPULSE_PROCESSING_GUARANTEE of the run's workers (tests parametrise it over GUARANTEES)."""
    return "at_least_once"


@pytest.fixture
def store() -> str:
    """BLOGPULSE_STORE of the run's workers (a test may parametrise it)."""
    return "memory"
