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
Headers = list[tuple[str, bytes]]


class BatchSender:
    """Collects records per topic partition; send() hands them to the producer in record batches
    and returns their delivery futures."""

    def __init__(self) -> None:
        self._records: dict[Key, list[tuple[bytes, bytes, int | None, Headers]]] = defaultdict(list)
        self.count = 0

    def add(
        self,
        topic: str,
        partition: int,
        key: bytes,
        value: bytes,
        timestamp_ms: int | None = None,
        headers: Headers | None = None,
    ) -> None:
        self._records[(topic, partition)].append((key, value, timestamp_ms, headers or []))
        self.count += 1

    def take(self) -> dict[Key, list[tuple[bytes, bytes, int | None, Headers]]]:
        """The records by topic partition; this sender is empty after."""
        records, self._records, self.count = self._records, defaultdict(list), 0
        return records

    def extend(self, other: BatchSender) -> None:
        """Take the records of `other` (which is emptied)."""
        for key, items in other.take().items():
            self._records[key].extend(items)
            self.count += len(items)

    def by_partition(self) -> dict[int, BatchSender]:
        """The records split by partition number (one exactly-once transaction each); this
        sender is empty after."""
        parts: dict[int, BatchSender] = defaultdict(BatchSender)
        for (topic, partition), items in self.take().items():
            for key, value, ts, headers in items:
                parts[partition].add(topic, partition, key, value, ts, headers)
        return parts

    async def send(self, producer: Any) -> list[asyncio.Future]:
        records = self.take()
        futures = []
        for (topic, partition), items in records.items():
            batch = producer.create_batch()
            for key, value, ts, headers in items:
                if batch.append(key=key, value=value, timestamp=ts, headers=headers) is None:
                    if batch.record_count() == 0:
                        raise ValueError(f"a record of {len(value)} bytes does not fit a batch")
                    batch.close()
                    futures.append(await producer.send_batch(batch, topic, partition=partition))
                    batch = producer.create_batch()
                    batch.append(key=key, value=value, timestamp=ts, headers=headers)
            batch.close()
            futures.append(await producer.send_batch(batch, topic, partition=partition))
        return futures
