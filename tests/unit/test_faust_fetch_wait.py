"""streams/faust_compat.py patch 6: the worker's consumer waits at most FETCH_MAX_WAIT_MS at the
broker for records (faust fixes 1,500 ms, which a busy agent turns into seconds of latency)."""

from __future__ import annotations

from streams import faust_compat
from streams.app import create_app
from streams.settings import load_settings


async def test_the_worker_consumer_has_the_short_fetch_wait(monkeypatch):
    monkeypatch.setenv("BLOGPULSE_BROKER", "127.0.0.1:1")  # never connected: created only
    faust_compat.apply()
    app = create_app(load_settings())
    consumer = app.consumer._thread._create_worker_consumer(app.transport)
    assert consumer._fetch_max_wait_ms == faust_compat.FETCH_MAX_WAIT_MS == 100
    # faust's own setting is still the 1,500 ms this replaces
    original = faust_compat.ORIGINALS["AIOKafkaConsumerThread._create_worker_consumer"]
    assert original(app.consumer._thread, app.transport)._fetch_max_wait_ms == 1500
