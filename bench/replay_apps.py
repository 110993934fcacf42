"""Comparison apps that replay the offset range of a blogpulse throughput run in their own consumer
group: the faust no-op floor (bench/faust_floor.py) and the Quix Streams implementation
(bench/quix_app.py). Each runs as a subprocess that appends "<wall time> <events>" lines to a
progress file; events/s is measured between its first and its last line."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import orjson

from bench import kafka_io, workers
from streams.process import stop_process


def _run(
    ctx,
    app_id: str,
    module: str,
    start: dict,
    end: dict,
    env_extra: dict,
    progress_var: str,
    argv: tuple[str, ...] = (),
) -> dict:
    """Start `python -m module` with its group pinned to `start`, wait until its progress file
    counts every event of [start, end), stop it. Returns the measurement (events/s between the
    first and last progress line, peak RSS) and leaves the process stopped."""
    kafka_io.pin_group(ctx.broker, app_id, start)
    expected = sum(end[tp] - start[tp] for tp in start)
    workdir = ctx.workdir / app_id
    workdir.mkdir(parents=True, exist_ok=True)
    progress = workdir / "progress"
    env = dict(
        os.environ,
        BLOGPULSE_BROKER=ctx.broker,
        PYTHONPATH=os.pathsep.join(
            p for p in (str(workers.REPO), os.environ.get("PYTHONPATH", "")) if p
        ),
        **{k: str(v) for k, v in env_extra.items()},
    )
    env[progress_var] = str(progress)
    log_path = workdir / "app.log"
    lines: list[tuple[float, int]] = []
    peak_kb = None
    cpu_first = cpu_last = None  # CPU seconds when the first / last progress line was seen
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", module, *argv],
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + ctx.timeout
            while time.monotonic() < deadline and proc.poll() is None:
                if progress.exists():
                    lines = [
                        (float(t), int(n))
                        for t, n in (
                            ln.split() for ln in progress.read_text().splitlines() if ln.strip()
                        )
                    ]
                    if lines and cpu_first is None:
                        cpu_first, counted_first = workers.cpu_seconds(proc.pid), lines[-1][1]
                    if lines and lines[-1][1] >= expected:
                        cpu_last = workers.cpu_seconds(proc.pid)
                        break
                time.sleep(0.2)
            peak_kb = workers.peak_rss_kb(proc.pid)
        finally:
            stop_process(proc)
    out = {
        "events": expected,
        "peak_rss_mb": None if peak_kb is None else round(peak_kb / 1024, 1),
        "log": str(log_path),
    }
    if len(lines) < 2 or lines[-1][1] < expected:
        tail = log_path.read_text(errors="replace")[-1500:]
        return {
            **out,
            "events_per_s": None,
            "error": f"read {lines[-1][1] if lines else 0} of {expected}; log tail:\n{tail}",
        }
    (t0, n0), (t1, n1) = lines[0], lines[-1]
    cpu = None
    if cpu_first is not None and cpu_last is not None and n1 > counted_first:
        # polled every 0.2 s, so from the first progress line seen: a small slice is missed
        cpu = round((cpu_last - cpu_first) / (n1 - counted_first) * 1e6, 1)
    return {
        **out,
        "batches": len(lines),
        "seconds": round(t1 - t0, 3),
        "events_per_s": round((n1 - n0) / (t1 - t0), 1) if t1 > t0 else None,
        "cpu_us_per_event": cpu,
    }


def faust_floor(ctx, start: dict, end: dict, fixes: bool = False) -> dict:
    """A no-op faust agent (take_events + orjson) drains the [start, end) offset range; `fixes`:
    with blogpulse's faust fixes applied (streams/faust_compat.py)."""
    app_id = ctx.app_id("floor-fixed" if fixes else "floor")
    return _run(
        ctx,
        app_id,
        "bench.faust_floor",
        start,
        end,
        {"BENCH_FLOOR_APP_ID": app_id, "BENCH_FLOOR_FIXES": "1" if fixes else "0"},
        "BENCH_FLOOR_PROGRESS",
        ("worker",),
    )


def quix(ctx, start: dict, end: dict, site: str, entries: int) -> dict:
    """bench/quix_app.py over the [start, end) offset range; afterwards (untimed) its posts output
    for `site` must sum to `entries` comments + replies, else the figure is reported as failed."""
    group = ctx.app_id("quix")
    prefix = f"quixbench.{group}"
    ctx.topic_prefixes += [prefix + ".", f"changelog__{group}--"]  # dropped after the run
    r = _run(
        ctx,
        group,
        "bench.quix_app",
        start,
        end,
        {
            "BENCH_QUIX_GROUP": group,
            "BENCH_QUIX_OUT": prefix,
            "BENCH_QUIX_START": orjson.dumps(_plain(start)).decode(),
            "BENCH_QUIX_END": orjson.dumps(_plain(end)).decode(),
        },
        "BENCH_QUIX_PROGRESS",
    )
    if r.get("events_per_s") is None:
        return r
    rows = kafka_io.latest_values(ctx.broker, f"{prefix}.posts", key_prefix=f"{site}/")
    counted = sum(v["comments"] + v["replies"] for v in rows.values())
    r.update(
        output_messages=kafka_io.message_count(
            ctx.broker, [f"{prefix}.{k}" for k in ("posts", "threads", "windows")]
        ),
        posts_counted=counted,
        changelog=kafka_io.topic_bytes(ctx.broker, prefix=f"changelog__{group}--"),
    )
    r["changelog"]["bytes_per_event"] = round(r["changelog"]["bytes"] / r["events"], 1)
    if counted != entries:
        r.update(
            events_per_s=None,
            error=f"posts output counts {counted:,} entries for {site}, expected {entries:,}",
        )
    return r


def _plain(offsets) -> dict[str, int]:
    return {f"{tp.topic}:{tp.partition}": off for tp, off in offsets.items()}
