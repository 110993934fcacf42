"""streams/batching.py: a batch's events are acknowledged only when the loop body finished; faust's
take_events alone acknowledges them also when the body raised."""
from __future__ import annotations

import asyncio

import pytest

from streams.batching import processed_batches


class Message:
    def __init__(self) -> None:
        self.refcount, self.acked = 1, False

    def incref(self) -> None:
        self.refcount += 1

    def ack(self) -> None:
        self.refcount -= 1
        self.acked = self.refcount == 0


class Event:
    def __init__(self) -> None:
        self.message = Message()

    def ack(self) -> None:
        self.message.ack()


class Stream:
    """take_events as faust has it: the events are acked in a finally after the yield."""

    def __init__(self, batches: list[list[Event]]) -> None:
        self.batches = batches

    async def take_events(self, max_, within):
        for events in self.batches:
            try:
                yield events
            finally:
                for event in events:
                    event.ack()


def test_events_are_acked_after_a_successful_body():
    batches = [[Event(), Event()], [Event()]]

    async def consume():
        async for events in processed_batches(Stream(batches), 10, 0.1):
            assert not any(e.message.acked for e in events)  # held while the body runs

    asyncio.run(consume())
    assert all(e.message.acked for b in batches for e in b)


def test_a_failed_batch_stays_unacked():
    batches = [[Event(), Event()], [Event()]]

    async def consume():
        async for events in processed_batches(Stream(batches), 10, 0.1):
            if events is batches[1]:
                raise RuntimeError("delivery failed")

    with pytest.raises(RuntimeError):
        asyncio.run(consume())
    assert all(e.message.acked for e in batches[0])
    assert not any(e.message.acked for e in batches[1])
