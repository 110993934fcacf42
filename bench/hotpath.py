"""The aggregation hot path in one process, without a broker: decode, group by post, merge,
derive, diff, render, table write, exactly as streams.agents does per take_events batch, with the
output topics and the table changelog replaced by counters. Shows how many events/s the agent's
Python code can do at all, and (--profile) where the time goes.

    python -m bench.hotpath --events 100000 --posts 1000 [--profile]
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import defaultdict
from types import SimpleNamespace

from bench.events import generate


class _NullTopic:
    """Counts sends; returns an already-resolved delivery future like faust's send()."""

    def __init__(self) -> None:
        self.sent = 0
        self.bytes = 0

    async def send(self, key=None, value=None, headers=None):
        self.sent += 1
        self.bytes += len(value or b"")
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut


def _patch(agents) -> dict:
    from streams.tables import post_state, waiting_replies

    topics = {name: _NullTopic() for name in ("posts", "threads", "windows")}
    agents.output_topics = topics
    agents.dlq_topic = _NullTopic()
    agents.tick_topic = _NullTopic()
    changelog = {"writes": 0, "bytes": 0}

    def send_changelog(partition, key, value, key_serializer=None, value_serializer=None):
        changelog["writes"] += 1
        changelog["bytes"] += len(value or b"")
        return SimpleNamespace(message=SimpleNamespace(partition=0))

    for table in (post_state, waiting_replies):
        table.send_changelog = send_changelog
        table.data.clear()
    return {"topics": topics, "changelog": changelog}


async def _run(events, batch: int) -> float:
    from streams import agents

    began = time.perf_counter()
    for i in range(0, len(events), batch):
        by_post = defaultdict(list)
        for ev in events[i:i + batch]:
            post_key, fields = agents.decode(ev.key, ev.value)
            by_post[post_key].append(fields)
        await agents.update_posts(by_post, {})
    return time.perf_counter() - began


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.hotpath", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=100_000)
    p.add_argument("--posts", type=int, default=1_000)
    p.add_argument("--batch", type=int, default=None, help="events per batch (agents.BATCH_MAX)")
    p.add_argument("--profile", action="store_true", help="pyinstrument profile of the run")
    args = p.parse_args(argv)
    if args.events <= 0 or args.posts <= 0:
        p.error("--events and --posts must be > 0")
    from streams import agents

    batch = args.batch or agents.BATCH_MAX
    counters = _patch(agents)
    events = generate(args.events, args.posts, "hotpath.example")
    profiler = None
    if args.profile:
        try:
            from pyinstrument import Profiler
        except ImportError:
            print("--profile needs pyinstrument: pip install pyinstrument", file=sys.stderr)
            return 2
        profiler = Profiler(interval=0.0005)
        profiler.start()
    seconds = asyncio.run(_run(events, batch))
    if profiler is not None:
        profiler.stop()
    sent = {n: t.sent for n, t in counters["topics"].items()}
    print(f"{args.events:,} events over {args.posts:,} posts, batch {batch}: {seconds:.2f} s, "
          f"{args.events / seconds:,.0f} events/s")
    print(f"output messages {sent}, changelog writes {counters['changelog']['writes']:,} "
          f"({counters['changelog']['bytes'] / 1e6:,.1f} MB)")
    if profiler is not None:
        print(profiler.output_text(unicode=False, color=False, show_all=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
