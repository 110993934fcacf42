"""A poisoned transaction: output records written in a Kafka transaction that is then aborted
(what a worker SIGKILLed mid-flush leaves, or one fenced by its partition's next owner). A
read_uncommitted reader sees them; read_committed readers (the sink, committed_outputs.py) must
not, or the database shows the poison."""

from __future__ import annotations

import asyncio
import uuid

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
