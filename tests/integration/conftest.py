import os
import subprocess

import pytest

from streams.publisher import ensure_topics
from streams.settings import Settings
from tests.conftest import REPO

OWN_BROKER_PORT = int(os.environ.get("BLOGPULSE_TEST_REPLAY_KAFKA_PORT", "19292"))


def pytest_collection_modifyitems(items):
    # Everything under tests/integration/ talks to real services.
    for item in items:
        if "/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="module")
def own_broker(tmp_path_factory):
    """A broker of the module's own (deploy/local/kafka), for tests whose consumer groups read
    every input topic from the beginning: the shared broker holds millions of benchmark events."""
    state = tmp_path_factory.mktemp("kafka")
    env = dict(
        os.environ,
        BLOGPULSE_STATE_DIR=str(state),
        BLOGPULSE_KAFKA_PORT=str(OWN_BROKER_PORT),
        BLOGPULSE_KAFKA_CONTROLLER_PORT=str(OWN_BROKER_PORT + 1),
    )
    script = str(REPO / "deploy/local/kafka")
    started = subprocess.run(
        [script, "start"], env=env, capture_output=True, text=True, timeout=180
    )
    if started.returncode != 0:
        pytest.fail(
            f"could not start a test broker on {OWN_BROKER_PORT}: {started.stdout}{started.stderr}",
            pytrace=False,
        )
    broker = f"127.0.0.1:{OWN_BROKER_PORT}"
    try:
        ensure_topics(Settings(broker=broker))
        yield broker
    finally:
        subprocess.run([script, "stop"], env=env, capture_output=True, timeout=120)
