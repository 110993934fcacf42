"""A poisoned transaction: output records written in a Kafka transaction that is then aborted
(what a worker SIGKILLed mid-flush leaves, or one fenced by its partition's next owner). A
read_uncommitted reader sees them; read_committed readers (the sink, committed_outputs.py) must
not, or the database shows the poison."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import orjson

from schemas.topic_names import BASE_OUTPUT_TOPICS

# A comment count no generated post reaches: if the sink applied it, the recount differs.
POISON_COMMENTS = 10**6


def poison(broker: str, key: bytes, template: bytes) -> None:
    """Write a posts record for `key` in a transaction, and abort it: `template` (a real record
    of that post, so the sink would take it) with a version newer than any and a comment count
    no post has."""
    from aiokafka import AIOKafkaProducer

    async def go() -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=broker, transactional_id=f"zombie-{uuid.uuid4().hex}"
        )
        await producer.start()
        try:
            await producer.begin_transaction()
            value = {**orjson.loads(template), "version": 2**62, "comments": POISON_COMMENTS}
            await producer.send_and_wait(BASE_OUTPUT_TOPICS["posts"], orjson.dumps(value), key=key)
            await producer.abort_transaction()
        finally:
            await producer.stop()

    asyncio.run(go())


def transactional_id(worker_log: str, app_id: str, partition: int) -> str:
    """The transactional id of an input partition's producer, as the worker logged it when it
    started the producers (faust: "<app id>-<topic group>-<partition>"; the agent's topics are
    the group with the most partitions, the assignor's leader topic has one)."""
    import re

    groups: dict[str, set[int]] = {}
    for group, p in re.findall(rf"transactional id {re.escape(app_id)}-(\d+)-(\d+)", worker_log):
        groups.setdefault(group, set()).add(int(p))
    group = max(groups, key=lambda g: len(groups[g]))
    return f"{app_id}-{group}-{partition}"


class OpenTransaction:
    """A producer with a worker's transactional id and a transaction left open with a poisoned
    posts record in it: a zombie, the old owner of a partition that has not noticed that the
    partition moved. The partition's next owner starting its producer (same transactional id)
    must fence it: commit() then fails, and read_committed readers never see the record."""

    def __init__(self, broker: str, transactional_id: str, key: bytes, template: bytes) -> None:
        from aiokafka import AIOKafkaProducer

        self.loop = asyncio.new_event_loop()
        value = {**orjson.loads(template), "version": 2**62, "comments": POISON_COMMENTS}

        async def open_() -> Any:
            # far beyond the test: an abort by the broker's transaction timeout is not the point
            producer = AIOKafkaProducer(
                bootstrap_servers=broker,
                transactional_id=transactional_id,
                transaction_timeout_ms=900_000,
            )
            await producer.start()
            await producer.begin_transaction()
            await producer.send_and_wait(BASE_OUTPUT_TOPICS["posts"], orjson.dumps(value), key=key)
            return producer

        self.producer = self.loop.run_until_complete(open_())

    def commit(self) -> BaseException | None:
        """Try to commit; returns the error (None: committed)."""
        try:
            self.loop.run_until_complete(self.producer.commit_transaction())
        except Exception as exc:  # noqa: BLE001 - the outcome is the result
            return exc
        return None

    def close(self) -> None:
        try:
            self.loop.run_until_complete(self.producer.stop())
        finally:
            self.loop.close()
