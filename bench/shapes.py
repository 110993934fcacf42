"""The measurement matrix's traffic shapes and what bench.run measures for each: blogpulse publish ->
database with 1 worker, then the plain-consumer baseline, the faust no-op floor and the Quix Streams
implementation over the same offset range; the worker's changelog bytes per event and peak RSS."""

from __future__ import annotations

from dataclasses import dataclass

from bench import baseline, kafka_io, replay_apps, scenarios


@dataclass(frozen=True)
class Shape:
    name: str
    entries: int
    posts: int

    @property
    def per_post(self) -> float:
        return self.entries / self.posts


# The shapes; c is opt-in (long: ~25 minutes of blogpulse here).
SHAPES = {
    "a": Shape("a", 200_000, 2_000),
    "b": Shape("b", 100_000, 50),
    "c": Shape("c", 1_000_000, 10_000),
}
HUGE = Shape("huge", 5_000_000, 500_000)  # opt-in RocksDB run (--huge)
CHANGELOG_PER_POST = (2_000, 20)  # the changelog pair: entries per post, same number of events


def scaled(shape: Shape, events: int | None) -> Shape:
    """The shape with `events` entries and its entries per post kept (None: as defined)."""
    if events is None:
        return shape
    return Shape(shape.name, events, max(1, round(events / shape.per_post)))


def changelog_bytes(ctx, app_id: str, events: int) -> dict:
    """Key + value bytes of every topic of the worker's app id ending in -changelog, per event."""
    r = kafka_io.topic_bytes(ctx.broker, prefix=app_id, suffix="-changelog")
    return {**r, "bytes_per_event": round(r["bytes"] / events, 1)}


def measure(
    ctx, shape: Shape, skip: set, profile_to=None, store: str = "memory", label: str | None = None
) -> dict:
    """One shape: a 1-worker throughput run, then baseline, floor and Quix over its offset range
    unless skipped. The replays run before anything else is published, so that the partitions
    hold no later events that a replay could process before it reaches the end of the range."""
    label = label or f"shape-{shape.name}"
    ctx.log(
        f"shape {shape.name}: {shape.entries:,} entries over {shape.posts:,} posts, "
        f"1 worker, {store} store"
    )
    out: dict = {
        "shape": shape.name,
        "entries": shape.entries,
        "posts": shape.posts,
        "store": store,
    }
    procs, e2e = scenarios.replay_throughput(
        ctx,
        label,
        shape.entries,
        shape.posts,
        profile_to=profile_to,
        env={"BLOGPULSE_STORE": store},
    )
    try:
        out["e2e"] = e2e
        ctx.log(f"  blogpulse: {e2e['events_per_s']} events/s, peak RSS {e2e['peak_rss_mb'][0]} MB")
        if e2e["events_per_s"] is not None:
            out["changelog"] = changelog_bytes(ctx, procs[0].app_id, shape.entries)
            ctx.log(f"  changelog: {out['changelog']['bytes_per_event']:,} bytes/event")
    finally:
        scenarios.stop_all(procs)
    start, end = (scenarios.unplain(e2e["offsets"][k]) for k in ("start", "end"))
    if "baseline" not in skip:
        out["baseline"] = baseline.measure(ctx.broker, start, end)
        ctx.log(f"  baseline: {out['baseline']['events_per_s']} events/s")
    if "floor" not in skip:
        out["floor"] = replay_apps.faust_floor(ctx, start, end)
        ctx.log(f"  faust floor: {out['floor']['events_per_s']} events/s")
        out["floor_fixed"] = replay_apps.faust_floor(ctx, start, end, fixes=True)
        ctx.log(
            f"  faust floor with blogpulse's faust fixes: "
            f"{out['floor_fixed']['events_per_s']} events/s"
        )
    if "quix" not in skip:
        out["quix"] = replay_apps.quix(ctx, start, end, e2e["site"], shape.entries)
        ctx.log(
            f"  quix: {out['quix']['events_per_s']} events/s"
            + (f" ({out['quix']['error'][:300]})" if out["quix"].get("error") else "")
        )
    return out


def changelog_pair(ctx, done: list[dict], events: int, skip: set) -> list[dict]:
    """The 2,000- and 20-entries-per-post runs of `events` events: reuses a shape run of this
    bench run with that shape, runs the others (1 worker, throughput and changelog only)."""
    runs = []
    for per_post in CHANGELOG_PER_POST:
        shape = Shape(f"cl{per_post}", events, max(1, round(events / per_post)))
        same = [
            d
            for d in done
            if (d["entries"], d["posts"]) == (shape.entries, shape.posts) and d.get("changelog")
        ]
        runs.append(same[0] if same else measure(ctx, shape, skip | {"baseline", "floor", "quix"}))
    return runs
