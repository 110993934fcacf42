"""streams/faust_compat.py patch 4: while faust waits at a clean stop for the messages handed to
streams to be acknowledged, the WHILE_WAIT_EMPTY tasks run (the worker's flushes what the agent
holds, streams/worker.py) and are cancelled once the wait is over. The worker run is
tests/faults/test_faults.py::test_worker_sigterm_while_catching_up_stops_at_once."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from faust.app.base import App

import streams.worker  # noqa: F401  (applies the fixes, registers the agent's flush)
from streams import faust_compat, worker


class FakeConsumer:
    """wait_empty returns once something acknowledged the held messages."""

    def __init__(self) -> None:
        self.acked = asyncio.Event()

    async def wait_empty(self) -> None:
        await self.acked.wait()


def test_the_fix_is_installed_with_the_agent_flush():
    assert App._consumer_wait_empty is faust_compat._consumer_wait_empty
    assert worker._flush_held_events in faust_compat.WHILE_WAIT_EMPTY


def test_tasks_run_during_the_wait_and_stop_after(monkeypatch):
    consumer = FakeConsumer()
    ran = []

    async def acknowledge() -> None:
        ran.append("started")
        await asyncio.sleep(0.01)
        consumer.acked.set()  # what the agent's flush does: its events get acknowledged
        await asyncio.sleep(3600)

    monkeypatch.setattr(faust_compat, "WHILE_WAIT_EMPTY", [acknowledge])
    app = SimpleNamespace(conf=SimpleNamespace(stream_wait_empty=True))
    log = SimpleNamespace(info=lambda *a: None)

    async def stop() -> None:
        await asyncio.wait_for(faust_compat._consumer_wait_empty(app, consumer, log), 5)
        assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []

    asyncio.run(stop())
    assert ran == ["started"]
