"""A plain Quix Streams 3.x application computing blogpulse's aggregation, for comparison (run by
`python -m bench.run`, phase "quix"; docs/performance.md "Quix Streams comparison").

Per event, in one stateful `apply` over the four input topics (`concat`, so every event of a post
sees the same per-key state): dedupe by event_id, the entry's status by the greatest
(event_time, is_moderation, event_id) as in streams/engine.py, and, when an entry's visibility
(status approved) changes, +-1 on its post's counts (comments, replies, pingbacks, trackbacks), on
its thread's reply count (a reply's thread root is resolved through its parent's stored entry) and
on its hour and day windows (by event_time). Every changed aggregate goes out as one message to
quixbench.<run>.posts/threads/windows.

State is Quix's RocksDB State with one state key per entry (`e/<comment_id>`), per seen event id
(`d/<event_id>`), per thread (`t/<root>`), per window (`w/<hour|day>/<start>`) and one small
counter record per post (`p`), within the message key "<site>/<post_id>": state.get/set per key, as
the Quix docs' stateful-processing examples do, not one blob per post.

Not reproduced from blogpulse's engine (the benchmark's events never need them: all approved,
parents published before replies): replies waiting for a late parent (a reply whose parent is
unknown is counted under a thread rooted at its parent_id), orphan timeouts and reply cycles,
hiding a parent hiding its replies (moderation changes the moderated entry's own counts only),
participants, depth and first-activity fields, moving an entry's windows when a re-sent creation
event has an earlier time, and blogpulse's schema validation (only the fields used are read).

Quix defaults are kept (at-least-once, commit_interval 5 s, JSON state serialization, RocksDB
options, time-aligned consumption of concatenated topics) except: the output topics get the input
partition count and compaction (as blogpulse's engagement.* topics), and auto_offset_reset is
"earliest" so that a missing committed offset cannot silently skip the benchmark's events
(bench.run commits the start offsets for the group before it starts). The one step that is
the benchmark's, not the aggregation's: a filter that drops events published after the measured
offset range (others share the input topics), so that the app does no work outside the range.

Environment: BENCH_QUIX_GROUP (consumer group), BENCH_QUIX_OUT (output topic prefix),
BENCH_QUIX_PROGRESS (file: "<wall time> <events>" lines), BENCH_QUIX_START and BENCH_QUIX_END
(JSON {"topic:partition": offset}: the range whose processed events are counted),
BLOGPULSE_BROKER, BLOGPULSE_PARTITIONS.
"""

from __future__ import annotations

import os
import time
from typing import Any, Protocol

COUNT_FIELD = {
    "comment": "comments",
    "reply": "replies",
    "pingback": "pingbacks",
    "trackback": "trackbacks",
}
ZERO = {"comments": 0, "replies": 0, "pingbacks": 0, "trackbacks": 0}


class StateLike(Protocol):
    def get(self, key: str, default: Any = None) -> Any: ...
    def set(self, key: str, value: Any) -> None: ...
    def exists(self, key: str) -> bool: ...


def window_starts(event_time: str) -> tuple[str, str]:
    """Hour and day window starts of an ISO 8601 UTC time ("2024-01-01T05:03:00Z")."""
    return event_time[:13] + ":00:00Z", event_time[:10] + "T00:00:00Z"


def aggregate(event: dict, state: StateLike) -> list[dict]:
    """Merge one input event into the post's state; returns the aggregates it changed (post, thread,
    window rows), each a dict for one output topic (see output_kind)."""
    dedupe = "d/" + event["event_id"]
    if state.exists(dedupe):
        return []
    state.set(dedupe, 1)
    key = f"e/{event['comment_id']}"
    entry = state.get(key)
    version = [event["event_time"], event["type"] == "moderation", event["event_id"]]
    before = entry is not None and "type" in entry and entry["status"] == "approved"
    if event["type"] == "moderation":
        if entry is None:  # status of an entry not seen yet: applied when its creation arrives
            state.set(key, {"status": event["status"], "v": version})
            return []
        if version <= entry["v"]:
            return []
        entry["status"], entry["v"] = event["status"], version
    elif entry is None or "type" not in entry:
        known = entry  # None, or a status stub left by an earlier moderation event
        entry = _new_entry(event, state)
        if known is None or version > known["v"]:
            entry["status"], entry["v"] = event["status"], version
        else:
            entry["status"], entry["v"] = known["status"], known["v"]
    elif version > entry["v"]:  # a re-sent creation: only its status can win
        entry["status"], entry["v"] = event["status"], version
    else:
        return []
    state.set(key, entry)
    after = entry["status"] == "approved"
    if before == after:
        return []
    return _count(event, entry, state, 1 if after else -1)


def _new_entry(event: dict, state: StateLike) -> dict:
    typ = event["type"]
    if typ == "comment":
        root = event["comment_id"]
    elif typ == "reply":
        parent = state.get(f"e/{event['parent_id']}")
        root = parent["root"] if parent is not None and "type" in parent else event["parent_id"]
    else:
        root = 0  # pings are never thread roots; replies under them belong to no thread
    hour, day = window_starts(event["event_time"])
    return {
        "type": typ,
        "kind": event.get("kind") or "comment",
        "root": root,
        "hour": hour,
        "day": day,
    }


def _count(event: dict, entry: dict, state: StateLike, delta: int) -> list[dict]:
    site, post_id = event["site"], event["post_id"]
    field = COUNT_FIELD[entry["kind"] if entry["type"] == "pingback" else entry["type"]]
    post = state.get("p") or dict(ZERO)
    post[field] += delta
    state.set("p", post)
    out = [{"site": site, "post_id": post_id, **post}]
    root = entry["root"]
    if root and entry["type"] != "pingback":
        tkey = f"t/{root}"
        thread = state.get(tkey) or {"replies": 0, "root_visible": False}
        if entry["type"] == "reply":
            thread["replies"] += delta
        else:
            thread["root_visible"] = delta > 0
        state.set(tkey, thread)
        out.append(
            {
                "site": site,
                "post_id": post_id,
                "root_comment_id": root,
                "replies": thread["replies"],
                "deleted": not thread["root_visible"],
            }
        )
    for window, start in (("hour", entry["hour"]), ("day", entry["day"])):
        wkey = f"w/{window}/{start}"
        counts = state.get(wkey) or dict(ZERO)
        counts[field] += delta
        state.set(wkey, counts)
        out.append(
            {
                "site": site,
                "post_id": post_id,
                "window": window,
                "window_start": start,
                **counts,
                "deleted": not any(counts.values()),
            }
        )
    return out


def output_kind(row: dict) -> str:
    """Which output topic a row of aggregate() goes to: posts, threads or windows."""
    return "windows" if "window" in row else "threads" if "root_comment_id" in row else "posts"


def output_key(row: dict) -> str:
    """The blogpulse output key of a row (docs/architecture.md "Output topics")."""
    base = f"{row['site']}/{row['post_id']}"
    kind = output_kind(row)
    if kind == "threads":
        return f"{base}/{row['root_comment_id']}"
    if kind == "windows":
        return f"{base}/{row['window']}/{row['window_start']}"
    return base


class Progress:
    """on_message_processed callback: counts the processed input messages of the [start, end)
    offset range ({"topic:partition": offset}) and writes "<wall time> <count>" at the first,
    every `every`-th and the last of them. in_range() is the benchmark's filter: events that
    others published to the shared topics after the range are dropped before the aggregation
    (time-aligned consumption reads later events of one partition before another partition
    reaches its end)."""

    def __init__(self, path: str, start: dict[str, int], end: dict[str, int], every: int = 1000):
        self.end = {
            (t, int(p)): off for t, p, off in ((*k.rsplit(":", 1), v) for k, v in end.items())
        }
        self.expected = sum(end[k] - start.get(k, end[k]) for k in end)
        self.count, self.every = 0, every
        self.path = path

    def in_range(self, _value) -> bool:
        from quixstreams import message_context

        ctx = message_context()
        return ctx.offset < self.end.get((ctx.topic, ctx.partition), 0)

    def __call__(self, topic: str, partition: int, offset: int) -> None:
        stop = self.end.get((topic, partition))
        if stop is None or offset >= stop:  # others' events after the range
            return
        self.count += 1
        if self.count == 1 or self.count % self.every == 0 or self.count == self.expected:
            with open(self.path, "a") as f:
                f.write(f"{time.time()} {self.count}\n")


def build_app(
    broker: str, group: str, out_prefix: str, partitions: int, progress: Progress | None = None
):
    from functools import reduce

    from quixstreams import Application

    from schemas.topic_names import INPUT_TOPICS

    app = Application(
        broker_address=broker,
        consumer_group=group,
        auto_offset_reset="earliest",
        state_dir=os.path.join(os.getcwd(), "state"),
        on_message_processed=progress,
    )
    config = app._topic_manager.topic_config(  # noqa: SLF001 (documented helper, via the app)
        num_partitions=partitions, extra_config={"cleanup.policy": "compact"}
    )
    outputs = {
        kind: app.topic(f"{out_prefix}.{kind}", key_serializer="str", config=config)
        for kind in ("posts", "threads", "windows")
    }
    inputs = [app.dataframe(app.topic(name)) for name in INPUT_TOPICS.values()]
    sdf = reduce(lambda a, b: a.concat(b), inputs)
    if progress is not None:
        sdf = sdf.filter(progress.in_range)
    sdf = sdf.apply(aggregate, stateful=True, expand=True)
    sdf.to_topic(lambda row, key, ts, headers: outputs[output_kind(row)], key=output_key)
    return app


def main() -> None:
    import orjson

    from streams.settings import load_settings

    s = load_settings()
    progress = Progress(
        os.environ.get("BENCH_QUIX_PROGRESS", "quix.progress"),
        orjson.loads(os.environ["BENCH_QUIX_START"]),
        orjson.loads(os.environ["BENCH_QUIX_END"]),
    )
    app = build_app(
        s.broker,
        os.environ["BENCH_QUIX_GROUP"],
        os.environ.get("BENCH_QUIX_OUT", "quixbench"),
        s.partitions,
        progress,
    )
    app.run()


if __name__ == "__main__":
    main()
