"""Batched sends on the faust app's aiokafka producer.

The aggregation agent writes thousands of output and changelog records per flush. Sent one by
one (faust's Topic.send, or aiokafka's send), each record costs a future, a partitioner call and
a coroutine; appended to an aiokafka record batch per topic partition and sent as a batch, a
fraction of that (docs/performance.md). The partition is always given: every record the agent
writes belongs to the partition of its post. Each batch is closed before it is handed over:
aiokafka sends a closed batch at once, an open one only after the producer's linger time (10 ms
here, set for faust's own sends), which a flush would wait twice (changelog, then outputs)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

from streams.faust_compat import aiokafka_producer  # noqa: F401  (the producer the batches go to)

Key = tuple[str, int]  # (topic, partition)


class BatchSender:
    """Collects records per topic partition; send() hands them to the producer in record batches
    and returns their delivery futures."""

    def __init__(self) -> None:
        self._records: dict[Key, list[tuple[bytes, bytes, int | None]]] = defaultdict(list)
        self.count = 0

    def add(
        self, topic: str, partition: int, key: bytes, value: bytes, timestamp_ms: int | None = None
    ) -> None:
        self._records[(topic, partition)].append((key, value, timestamp_ms))
        self.count += 1

    async def send(self, producer: Any) -> list[asyncio.Future]:
        records, self._records = self._records, defaultdict(list)
        self.count = 0
        futures = []
        for (topic, partition), items in records.items():
            batch = producer.create_batch()
            for key, value, ts in items:
                if batch.append(key=key, value=value, timestamp=ts) is None:
                    if batch.record_count() == 0:
                        raise ValueError(f"a record of {len(value)} bytes does not fit a batch")
                    batch.close()
                    futures.append(await producer.send_batch(batch, topic, partition=partition))
                    batch = producer.create_batch()
                    batch.append(key=key, value=value, timestamp=ts)
            batch.close()
            futures.append(await producer.send_batch(batch, topic, partition=partition))
        return futures
