"""streams/faust_compat.py patch 8: when a stream's buffer drains and faust puts a partition back
among those it fetches for, a fetched_records call waiting in the consumer thread is woken
(faust's own on_buffer_drop wakes nothing: that call waited out getmany's 1 s timeout)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from faust.types import TP

from streams import faust_compat
from streams.app import create_app
from streams.settings import load_settings

PARTITION = TP("blog.comments", 0)


@pytest.fixture
def consumer(monkeypatch) -> Iterator[object]:
    """The worker app's faust consumer (never connected) whose thread loop runs in a thread and
    whose aiokafka fetcher is a stand-in holding the waiter set fetched_records waits on."""
    monkeypatch.setenv("BLOGPULSE_BROKER", "127.0.0.1:1")
    faust_compat.apply()
    consumer = create_app(load_settings()).consumer
    loop = consumer._thread.thread_loop
    runner = threading.Thread(target=loop.run_forever, daemon=True)
    runner.start()
    consumer._thread._consumer = SimpleNamespace(_fetcher=SimpleNamespace(_fetch_waiters=set()))
    yield consumer
    consumer._thread._consumer = None
    loop.call_soon_threadsafe(loop.stop)
    runner.join(5)
    loop.close()


def _waiter(consumer) -> asyncio.Future:
    """A future in the consumer thread's loop, registered as fetched_records registers its own."""
    loop = consumer._thread.thread_loop
    waiters = consumer._thread._consumer._fetcher._fetch_waiters

    async def make() -> asyncio.Future:
        waiter = loop.create_future()
        waiters.add(waiter)
        return waiter

    return asyncio.run_coroutine_threadsafe(make(), loop).result(5)


def _woken(consumer, waiter: asyncio.Future) -> bool:
    async def check() -> bool:
        await asyncio.sleep(0.05)  # the wake-up is scheduled with call_soon_threadsafe
        return waiter.done()

    return asyncio.run_coroutine_threadsafe(check(), consumer._thread.thread_loop).result(5)


def test_the_wrapper_is_installed():
    from faust.transport.consumer import Consumer

    assert Consumer.on_buffer_drop is faust_compat._on_buffer_drop


def test_a_partition_put_back_after_its_buffer_drained_wakes_the_waiting_fetch(consumer):
    consumer.on_buffer_full(PARTITION)
    assert PARTITION not in consumer._get_active_partitions()
    waiter = _waiter(consumer)
    consumer.on_buffer_drop(PARTITION)
    assert PARTITION in consumer._get_active_partitions()
    assert _woken(consumer, waiter)


def test_faust_own_on_buffer_drop_leaves_the_fetch_waiting(consumer):
    consumer.on_buffer_full(PARTITION)
    waiter = _waiter(consumer)
    faust_compat.ORIGINALS["Consumer.on_buffer_drop"](consumer, PARTITION)
    assert PARTITION in consumer._get_active_partitions()
    assert not _woken(consumer, waiter)


def test_a_partition_that_was_never_held_back_wakes_nothing(consumer):
    waiter = _waiter(consumer)
    consumer.on_buffer_drop(PARTITION)
    assert not _woken(consumer, waiter)


def test_an_unstarted_consumer_is_left_alone(monkeypatch):
    monkeypatch.setenv("BLOGPULSE_BROKER", "127.0.0.1:1")
    consumer = create_app(load_settings()).consumer
    consumer.on_buffer_full(PARTITION)
    consumer.on_buffer_drop(PARTITION)  # no aiokafka consumer yet: nothing to wake, no error
    assert PARTITION in consumer._get_active_partitions()
