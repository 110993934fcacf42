"""The worker's consumer-group session (BLOGPULSE_SESSION_TIMEOUT, BLOGPULSE_HEARTBEAT_INTERVAL):
validated in streams/settings.py and passed to faust's consumer (streams/app.py). What they buy is
measured by the SIGKILL fault test (docs/reliability.md)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO, run_probe

PROBE = """
import asyncio, json
from streams.app import create_app
from streams.settings import load_settings

app = create_app(load_settings())

async def main():
    # the aiokafka consumer faust's driver builds for the worker's consumer group
    inner = app.consumer._thread._create_worker_consumer(app.transport)
    print(json.dumps({"session_ms": inner._session_timeout_ms,
                      "heartbeat_ms": inner._heartbeat_interval_ms}))
    await inner.stop()

asyncio.run(main())
"""


def _probe(**env: str) -> dict:
    return run_probe(PROBE, **env)


def test_defaults_fail_over_in_seconds():
    assert _probe() == {"session_ms": 10000, "heartbeat_ms": 1000}


def test_settings_reach_the_worker_consumer():
    got = _probe(BLOGPULSE_SESSION_TIMEOUT="30", BLOGPULSE_HEARTBEAT_INTERVAL="2.5")
    assert got == {"session_ms": 30000, "heartbeat_ms": 2500}


@pytest.mark.parametrize(
    "env, message",
    [
        (
            {"BLOGPULSE_SESSION_TIMEOUT": "ten"},
            "BLOGPULSE_SESSION_TIMEOUT: expected a positive number",
        ),
        ({"BLOGPULSE_SESSION_TIMEOUT": "0"}, "BLOGPULSE_SESSION_TIMEOUT: expected a positive"),
        (
            {"BLOGPULSE_HEARTBEAT_INTERVAL": "-1"},
            "BLOGPULSE_HEARTBEAT_INTERVAL: expected a positive",
        ),
        (
            {"BLOGPULSE_HEARTBEAT_INTERVAL": "nan"},
            "BLOGPULSE_HEARTBEAT_INTERVAL: expected a positive",
        ),
        ({"BLOGPULSE_SESSION_TIMEOUT": "91"}, "at most 90"),
        (
            {"BLOGPULSE_SESSION_TIMEOUT": "6", "BLOGPULSE_HEARTBEAT_INTERVAL": "3"},
            "at most a third",
        ),
    ],
)
def test_bad_values_are_refused_with_the_variable_named(monkeypatch, env, message):
    from streams.settings import SettingError, Settings

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingError, match=message):
        Settings()


def test_worker_says_it_in_one_line():
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "worker"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={
            **os.environ,
            "PYTHONPATH": str(REPO),
            "BLOGPULSE_SESSION_TIMEOUT": "5",
            "BLOGPULSE_HEARTBEAT_INTERVAL": "2",
        },
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "blogpulse: BLOGPULSE_HEARTBEAT_INTERVAL (2 s) must be at most a third of "
        "BLOGPULSE_SESSION_TIMEOUT (5 s)"
    ]
