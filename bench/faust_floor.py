"""faust's own floor: a faust app that only reads the input topics in take_events batches and
JSON-decodes each value (no tables, no outputs). Run as a subprocess by bench.run; shows how much
of the gap between the plain consumer and blogpulse is faust's per-event machinery.

Environment: BENCH_FLOOR_APP_ID, BENCH_FLOOR_PROGRESS (file: "<wall time> <events>" per batch),
BENCH_FLOOR_FIXES=1 (apply blogpulse's faust fixes, streams/faust_compat.py, first: the floor of
the faust that blogpulse runs on), BLOGPULSE_BROKER, BLOGPULSE_PARTITIONS."""

from __future__ import annotations

import os
import time

import faust
import orjson

from schemas.topic_names import INPUT_TOPICS
from streams.settings import load_settings

if os.environ.get("BENCH_FLOOR_FIXES") == "1":
    from streams import faust_compat

    faust_compat.apply()

_s = load_settings()
app = faust.App(
    os.environ.get("BENCH_FLOOR_APP_ID", "bench-faust-floor"),
    broker=[f"kafka://{b}" for b in _s.bootstrap_servers],
    store="memory://",
    web_enabled=False,
    autodiscover=False,
    topic_partitions=_s.partitions,
    key_serializer="raw",
    value_serializer="raw",
)
source = app.topic(
    *INPUT_TOPICS.values(), key_type=bytes, value_type=bytes, partitions=_s.partitions
)
_progress_path = os.environ.get("BENCH_FLOOR_PROGRESS", "faust-floor.progress")


@app.agent(source)
async def read(stream):
    total = 0
    loads = orjson.loads
    with open(_progress_path, "a", buffering=1) as progress:
        async for events in stream.take_events(5000, 0.5):
            for event in events:
                loads(event.value)
            total += len(events)
            progress.write(f"{time.time()} {total}\n")


if __name__ == "__main__":
    faust.Worker(app, loglevel="info").execute_from_commandline()
