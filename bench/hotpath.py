"""The aggregation hot path in one process, without a broker: decode, group by post, fold (merge,
derive, diff) and flush (render, changelog records), as streams.agents does per batch, with the
producer replaced by a counter. Shows how many events/s the agent's
Python code can do at all, (--profile) where the time goes and (--memory) what the held state
costs per entry.

    python -m bench.hotpath --events 100000 --posts 1000 [--profile | --memory]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
import tracemalloc
from collections import defaultdict

from aiokafka.structs import RecordMetadata, TopicPartition

from bench.events import generate


class _NullProducer:
    """Counts the records and bytes per topic that a flush hands to the producer."""

    def __init__(self) -> None:
        self.records: dict[str, int] = defaultdict(int)
        self.bytes: dict[str, int] = defaultdict(int)
        self.ends: dict[tuple[str, int], int] = defaultdict(int)  # next offset per partition

    def create_batch(self):
        return _Batch()

    async def send_batch(self, batch, topic, partition):
        self.records[topic] += len(batch.sizes)
        self.bytes[topic] += sum(batch.sizes)
        base = self.ends[topic, partition]
        self.ends[topic, partition] += len(batch.sizes)
        fut = asyncio.get_running_loop().create_future()
        # as aiokafka's: the batch's base offset (the flush persists the offsets it delivered)
        fut.set_result(
            RecordMetadata(topic, partition, TopicPartition(topic, partition), base, None, 0, 0)
        )
        return fut


class _Batch:
    def __init__(self) -> None:
        self.sizes: list[int] = []

    def append(self, *, key, value, timestamp, headers=()):
        self.sizes.append(len(key) + len(value) + sum(len(k) + len(v) for k, v in headers))
        return True

    def record_count(self) -> int:
        return len(self.sizes)

    def close(self) -> None:
        pass


async def _run(events, batch: int, producer: _NullProducer) -> float:
    from streams import agents

    async def null_producer(app):
        return producer

    agents.aiokafka_producer = null_producer
    began = time.perf_counter()
    for i in range(0, len(events), batch):
        by_post = defaultdict(list)
        for ev in events[i : i + batch]:
            post_key, fields = agents.decode(ev.key, ev.value)
            by_post[post_key].append(fields)
        await agents.fold(by_post, {})
        await agents.flush()
    return time.perf_counter() - began


def _rss_mb(field: str) -> float:
    """VmRSS / VmHWM of this process from /proc, in MB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _held_bytes() -> tuple[int, int, int, int]:
    """Traced bytes freed by dropping the derivation cache, then the post states: what each
    holds, with the entries each covers."""
    from streams import agents

    cached = agents._derived.entries
    states = agents.store.entries()
    gc.collect()
    before = tracemalloc.get_traced_memory()[0]
    agents._derived.clear()
    gc.collect()
    middle = tracemalloc.get_traced_memory()[0]
    agents.store.clear()
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    return before - middle, cached, middle - after, states


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.hotpath",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--events", type=int, default=100_000)
    p.add_argument("--posts", type=int, default=1_000)
    p.add_argument("--batch", type=int, default=None, help="events per batch (agents.BATCH_MAX)")
    p.add_argument("--profile", action="store_true", help="pyinstrument profile of the run")
    p.add_argument(
        "--memory",
        action="store_true",
        help="trace allocations (slow): bytes per entry of the post states and of the "
        "derivation cache after the run, and the process's RSS",
    )
    args = p.parse_args(argv)
    if args.events <= 0 or args.posts <= 0:
        p.error("--events and --posts must be > 0")
    if args.profile and args.memory:
        p.error("--profile and --memory measure different runs: choose one")
    from streams import agents
    from streams.app import create_app
    from streams.settings import load_settings

    settings = load_settings()
    agents.register_agents(create_app(settings), settings)
    batch = args.batch or agents.BATCH_MAX
    producer = _NullProducer()
    events = generate(args.events, args.posts, "hotpath.example")
    rss_events = _rss_mb("VmRSS")
    if args.memory:
        tracemalloc.start()
    profiler = None
    if args.profile:
        try:
            from pyinstrument import Profiler
        except ImportError:
            print("--profile needs pyinstrument: pip install pyinstrument", file=sys.stderr)
            return 2
        profiler = Profiler(interval=0.0005)
        profiler.start()
    seconds = asyncio.run(_run(events, batch, producer))
    if profiler is not None:
        profiler.stop()
    print(
        f"{args.events:,} events over {args.posts:,} posts, batch {batch}: {seconds:.2f} s, "
        f"{args.events / seconds:,.0f} events/s"
    )
    changelog = agents.CHANGELOG_TOPIC
    sent = {t: n for t, n in producer.records.items() if t != changelog}
    print(
        f"output records {sent}, changelog records {producer.records[changelog]:,} "
        f"({producer.bytes[changelog] / args.events:,.0f} bytes per event)"
    )
    if profiler is not None:
        print(profiler.output_text(unicode=False, color=False, show_all=False))
    if args.memory:
        rss_after, peak = _rss_mb("VmRSS"), _rss_mb("VmHWM")
        cache, cached, states, entries = _held_bytes()
        tracemalloc.stop()
        print(
            f"post states {states / max(entries, 1):,.0f} B per entry ({entries:,} entries), "
            f"derivation cache {cache / max(cached, 1):,.0f} B per entry ({cached:,} entries); "
            f"RSS {rss_events:,.0f} MB with the events generated, {rss_after:,.0f} MB after "
            f"the run, peak {peak:,.0f} MB (tracing included)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
