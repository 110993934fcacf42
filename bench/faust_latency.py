"""faust's own latency floor at a fixed publish rate: a faust app that reads the input topics in
take_events batches (as blogpulse's agent does) and only spends a given CPU time per event, no
state and no outputs. It shows what faust's consumer -> stream delivery alone does to latency
when the agent's per-event work is that of blogpulse (docs/performance.md "Latency").

    python -m bench.faust_latency --broker 127.0.0.1:9092 --rate 5000 --seconds 20 --burn-us 100

Prints p50/p95/p99/max of (time the agent got the event - the record's timestamp) and the worst
latency of each second; --per-event reads stream.events() instead; --trace prints every batch
(size, oldest and newest age, wait since the previous batch). The worker runs as a child
process (`--role worker`, environment BENCH_FL_*)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _worker() -> None:
    import faust

    from schemas.topic_names import INPUT_TOPICS
    from streams import faust_compat

    if os.environ.get("BENCH_FL_FIXES", "1") == "1":
        faust_compat.apply()
    burn = float(os.environ["BENCH_FL_BURN_US"]) / 1e6
    site, wanted = os.environ["BENCH_FL_SITE"].encode() + b"/", int(os.environ["BENCH_FL_EVENTS"])
    trace = os.environ.get("BENCH_FL_TRACE") == "1"
    out = Path(os.environ["BENCH_FL_OUT"])
    app = faust.App(
        f"bench-fl-{os.environ['BENCH_FL_SITE']}",
        broker=[f"kafka://{os.environ['BLOGPULSE_BROKER']}"],
        store="memory://",
        web_enabled=False,
        autodiscover=False,
        topic_partitions=4,
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="latest",
        stream_buffer_maxsize=32768,
    )
    source = app.topic(*INPUT_TOPICS.values(), key_type=bytes, value_type=bytes, partitions=4)
    seen: list[tuple[float, float]] = []  # (record timestamp, latency)

    def finish_when_all_seen() -> None:
        if len(seen) >= wanted:
            out.write_text(json.dumps(seen))
            os._exit(0)  # no clean stop: the figures are written

    async def read_each(stream):
        async for event in stream.events():
            now = time.time()
            if event.message.key.startswith(site):
                seen.append((event.message.timestamp, now - event.message.timestamp))
            finish_when_all_seen()

    async def read(stream):
        last = time.time()
        async for events in stream.take_events(20000, 0.05):  # agents.BATCH_MAX, BATCH_WITHIN
            now = time.time()
            ages = [
                (e.message.timestamp, now - e.message.timestamp)
                for e in events
                if e.message.key.startswith(site)
            ]
            seen.extend(ages)
            if trace and ages:
                with out.with_suffix(".trace").open("a") as f:
                    f.write(
                        f"n={len(events)} oldest={max(a for _, a in ages):.3f} "
                        f"newest={min(a for _, a in ages):.3f} wait={now - last:.3f}\n"
                    )
            end = time.perf_counter() + burn * len(events)
            while time.perf_counter() < end:  # the agent's work, without its allocations
                pass
            last = time.time()
            finish_when_all_seen()

    app.agent(source)(read_each if os.environ.get("BENCH_FL_EACH") == "1" else read)
    faust.Worker(app, loglevel="warning").execute_from_commandline()


def _quantiles(seen: list[tuple[float, float]]) -> dict:
    lat = sorted(a for _, a in seen)
    q = {
        name: round(lat[min(len(lat) - 1, int(p * len(lat)))] * 1000, 1)
        for name, p in (("p50_ms", 0.5), ("p95_ms", 0.95), ("p99_ms", 0.99), ("max_ms", 1.0))
    }
    t0 = min(t for t, _ in seen)
    worst: dict[int, float] = {}
    for t, a in seen:
        worst[int(t - t0)] = max(worst.get(int(t - t0), 0.0), a)
    return {
        **q,
        "worst_ms_by_second": [round(worst.get(s, 0) * 1000) for s in range(max(worst) + 1)],
    }


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--broker", default="127.0.0.1:9092")
    p.add_argument("--rate", type=int, default=5000, help="events/s published")
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--posts", type=int, default=200)
    p.add_argument("--burn-us", type=float, default=100, help="CPU µs the agent spends per event")
    p.add_argument(
        "--no-fixes", action="store_true", help="plain faust, without streams/faust_compat.py"
    )
    p.add_argument("--trace", action="store_true", help="print every batch")
    p.add_argument(
        "--per-event",
        action="store_true",
        help="iterate stream.events() one by one instead of take_events batches",
    )
    p.add_argument("--role", default="run", choices=["run", "worker"], help=argparse.SUPPRESS)
    args, rest = p.parse_known_args()
    if args.role == "worker":
        sys.argv = [sys.argv[0], *rest]  # faust's own command line: "worker"
        _worker()
        return
    from bench import kafka_io
    from bench.events import generate

    site = f"fl{int(time.time() * 1000)}"
    events = generate(int(args.rate * args.seconds), args.posts, site)
    with tempfile.TemporaryDirectory(prefix="bench-fl-") as tmp:
        out = Path(tmp) / "latency.json"
        env = dict(
            os.environ,
            BLOGPULSE_BROKER=args.broker,
            BENCH_FL_SITE=site,
            BENCH_FL_EVENTS=str(len(events)),
            BENCH_FL_BURN_US=str(args.burn_us),
            BENCH_FL_FIXES="0" if args.no_fixes else "1",
            BENCH_FL_OUT=str(out),
            BENCH_FL_TRACE="1" if args.trace else "0",
            BENCH_FL_EACH="1" if args.per_event else "0",
            PYTHONPATH=os.pathsep.join(
                filter(
                    None, [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH")]
                )
            ),
        )
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.faust_latency",
                "--role",
                "worker",
                "worker",
                "-l",
                "warning",
            ],
            env=env,
            cwd=tmp,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(20)  # joined and assigned (it starts at the end of the topics)
            kafka_io.publish_at_rate(args.broker, events, args.rate)
            worker.wait(timeout=args.seconds + 120)
        except subprocess.TimeoutExpired:
            pass  # said below: not every event was seen
        finally:
            worker.kill()
        if not out.exists():
            sys.exit("bench.faust_latency: the worker did not see every event")
        result = {
            "rate": args.rate,
            "burn_us": args.burn_us,
            "fixes": not args.no_fixes,
            "per_event": args.per_event,
            **_quantiles(json.loads(out.read_text())),
        }
        if args.trace:
            print(out.with_suffix(".trace").read_text())
    print(json.dumps(result))


if __name__ == "__main__":
    main()
