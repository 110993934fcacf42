"""The worker's faust producer and topics get the publisher's durability: acks=all, idempotence,
the configured min ISR and replication factor (streams/durability.py, streams/app.py)."""

from __future__ import annotations

import pytest

from tests.conftest import run_probe

PROBE = """
import json
from streams.app import create_app
from streams.settings import load_settings

app = create_app(load_settings())
from faust.transport.drivers.aiokafka import Producer, Transport
producer = app.producer
print(json.dumps({
    "extra": producer._settings_extra(),
    "acks": producer._settings_default()["acks"],
    "topic": app.transport._topic_config(compacting=True),
    "rf": app.conf.topic_replication_factor,
}))
"""


def _probe(**env: str) -> dict:
    return run_probe(PROBE, **env)


def test_faust_producer_is_idempotent_with_acks_all_and_topics_get_min_isr():
    got = _probe(BLOGPULSE_REPLICATION_FACTOR="3", BLOGPULSE_MIN_INSYNC_REPLICAS="2")
    assert got["extra"] == {"acks": "all", "enable_idempotence": True}
    assert got["acks"] == -1
    assert got["topic"] == {"cleanup.policy": "compact", "min.insync.replicas": "2"}
    assert got["rf"] == 3


def test_defaults_fit_one_broker():
    got = _probe()
    assert got["rf"] == 1 and got["topic"]["min.insync.replicas"] == "1"


def test_min_isr_above_replicas_is_refused(monkeypatch):
    from streams.settings import SettingError, Settings

    monkeypatch.setenv("BLOGPULSE_REPLICATION_FACTOR", "2")
    monkeypatch.setenv("BLOGPULSE_MIN_INSYNC_REPLICAS", "3")
    with pytest.raises(SettingError, match="BLOGPULSE_MIN_INSYNC_REPLICAS"):
        Settings()


def test_publisher_topics_carry_min_isr():
    from streams.publisher import topic_configs
    from streams.settings import Settings

    s = Settings(replication_factor=3, min_insync_replicas=2)
    assert topic_configs(s) == {"min.insync.replicas": "2"}
    assert topic_configs(s, compacted=True) == {
        "min.insync.replicas": "2",
        "cleanup.policy": "compact",
    }
