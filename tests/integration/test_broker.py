"""The broker from deploy/local is a real Kafka: round trips with both client libraries the product
uses, and transactions (needed for exactly-once processing) work on the single node."""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic


def _create_topic(broker: str, name: str, partitions: int = 1) -> None:
    admin = KafkaAdminClient(bootstrap_servers=broker)
    try:
        admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    finally:
        admin.close()


def test_kafka_python_round_trip(broker, unique):
    topic = f"test.roundtrip.kp.{unique}"
    _create_topic(broker, topic, partitions=3)
    producer = KafkaProducer(bootstrap_servers=broker, acks="all", enable_idempotence=True)
    sent = [(f"site/{i % 5}".encode(), f"value-{i}".encode()) for i in range(50)]
    metas = [producer.send(topic, key=k, value=v) for k, v in sent]
    producer.flush()
    partitions = {m.get(timeout=10).partition for m in metas}
    producer.close()
    assert len(partitions) > 1  # keys spread over partitions: the topic really has 3

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=broker,
        auto_offset_reset="earliest",
        group_id=f"g-{unique}",
        consumer_timeout_ms=10_000,
    )
    got = []
    for msg in consumer:
        got.append((msg.key, msg.value))
        if len(got) == len(sent):
            break
    consumer.close()
    assert sorted(got) == sorted(sent)


def test_aiokafka_round_trip(broker, unique):
    topic = f"test.roundtrip.aio.{unique}"
    _create_topic(broker, topic)

    async def run():
        producer = AIOKafkaProducer(bootstrap_servers=broker, acks="all")
        await producer.start()
        try:
            for i in range(20):
                await producer.send_and_wait(topic, key=b"k", value=f"m{i}".encode())
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=broker, auto_offset_reset="earliest", group_id=f"g-{unique}"
        )
        await consumer.start()
        try:
            values = []
            deadline = time.monotonic() + 15
            while len(values) < 20 and time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    values.extend(r.value for r in records)
            return values
        finally:
            await consumer.stop()

    assert asyncio.run(run()) == [f"m{i}".encode() for i in range(20)]


def test_transaction_visible_to_read_committed_only_after_commit(broker, unique):
    topic = f"test.txn.{unique}"
    _create_topic(broker, topic)

    async def run():
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=broker,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            group_id=f"g-{unique}",
        )
        await consumer.start()
        producer = AIOKafkaProducer(bootstrap_servers=broker, transactional_id=f"tx-{unique}")
        await producer.start()
        try:

            async def drain(seconds):
                values, deadline = [], time.monotonic() + seconds
                while time.monotonic() < deadline:
                    batch = await consumer.getmany(timeout_ms=300)
                    for records in batch.values():
                        values.extend(r.value for r in records)
                return values

            await producer.begin_transaction()
            for i in range(5):
                await producer.send_and_wait(topic, value=f"t{i}".encode())
            before_commit = await drain(3)
            await producer.commit_transaction()
            after_commit = await drain(5)

            await producer.begin_transaction()
            await producer.send_and_wait(topic, value=b"aborted")
            await producer.abort_transaction()
            after_abort = await drain(3)
            return before_commit, after_commit, after_abort
        finally:
            await producer.stop()
            await consumer.stop()

    before, after, aborted = asyncio.run(run())
    assert before == []
    assert after == [f"t{i}".encode() for i in range(5)]
    assert aborted == []
