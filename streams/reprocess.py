"""Reprocessing: rebuild every aggregate from the input topics into a new generation while the live
one keeps running, switch readers to it atomically, drop the old one on request (docs/replay.md).

A generation N > 1 is a worker with BLOGPULSE_GENERATION=N: its own faust app id (consumer group and
changelog topics: it starts with empty state), its own output topics and its own sink tables
(sinks/generations.py). `start` runs such a worker until its consumer group has committed the input
topics' end offsets (as of the start) and its sink has committed everything the rebuild emitted."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TextIO

from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaError

from schemas.errors import BlogpulseError
from schemas.topic_names import output_topics
from streams.group_offsets import admin_client, committed, lookup_consumer, partitions_of, pin
from streams.process import stop_process
from streams.settings import Settings, child_env, generation_app_id, sink_group

REPO = Path(__file__).resolve().parents[1]


class ReprocessError(BlogpulseError):
    """A rebuild that cannot go on; the message says why."""


def start_offsets(
    consumer: KafkaConsumer, parts: list[TopicPartition], from_time: datetime
) -> dict[TopicPartition, int]:
    """First offset at or after from_time per partition (the end offset when there is none)."""
    ms = int(from_time.timestamp() * 1000)
    found = consumer.offsets_for_times({tp: ms for tp in parts})
    ends = consumer.end_offsets(parts)
    return {tp: (found[tp].offset if found.get(tp) is not None else ends[tp]) for tp in parts}


@dataclass
class CatchUp:
    """How far a generation's consumer group is: input events consumed (of the target) and
    emitted aggregates not yet written by its sink."""

    consumed: int
    target: int
    sink_pending: int

    @property
    def inputs_done(self) -> bool:
        return self.consumed >= self.target

    @property
    def done(self) -> bool:
        return self.inputs_done and self.sink_pending == 0


def measure(
    admin: KafkaAdminClient,
    consumer: KafkaConsumer,
    group: str,
    begin: dict[TopicPartition, int],
    target: dict[TopicPartition, int],
    output_topics,
) -> CatchUp:
    done = committed(admin, group)
    written = committed(admin, sink_group(group))
    consumed = sum(
        max(0, min(done.get(tp, begin[tp]), end) - begin[tp]) for tp, end in target.items()
    )
    total = sum(end - begin[tp] for tp, end in target.items())
    outputs = partitions_of(admin, output_topics)
    ends = consumer.end_offsets(outputs) if outputs else {}
    pending = sum(end - written.get(tp, 0) for tp, end in ends.items())
    return CatchUp(consumed, total, pending)


def worker_env(settings: Settings, generation: int, web_port: int) -> dict[str, str]:
    return child_env(
        str(REPO),
        BLOGPULSE_GENERATION=str(generation),
        BLOGPULSE_INPUT_GENERATION=str(settings.input_generation),
        BLOGPULSE_PARTITIONS=str(settings.partitions),
        BLOGPULSE_APP_ID=settings.app_id,
        BLOGPULSE_WEB_PORT=str(web_port),
        BLOGPULSE_BROKER=settings.broker,
        BLOGPULSE_DB=settings.db_url,
    )


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(
    settings: Settings,
    from_time: datetime | None = None,
    timeout: float = 3600,
    log_path: Path | None = None,
    out: TextIO = sys.stderr,
    poll: float = 1.0,
    web_port: int | None = None,
    stable_checks: int = 2,
    on_generation: Callable[[int], None] | None = None,
    partitions: int | None = None,
) -> int:
    """Build the next generation until it has caught up; returns its number. The live generation
    keeps running. With `partitions`, generation N reads its own input generation N, topics with
    that many partitions, filled by a copy of the current inputs (streams/repartition.py).
    Raises ReprocessError (worker died, timeout, fewer partitions) or BrokerUnavailable."""
    from sinks import generations
    from sinks.db import make_engine
    from streams.publisher import ensure_topics

    engine = make_engine(settings.db_url)
    ensure_topics(settings)
    admin, consumer = (
        admin_client(settings, "blogpulse-reprocess"),
        lookup_consumer(settings, "blogpulse-reprocess"),
    )
    try:
        generation = generations.next_generation(engine)
        app_id = generation_app_id(settings.app_id, generation)
        source = settings
        if partitions is not None:
            settings = _grown(settings, admin, generation, partitions)
        if committed(admin, app_id):
            raise ReprocessError(
                f"consumer group {app_id} already has committed offsets (a rebuild from another "
                f"database?): delete it and its topics, or use another BLOGPULSE_APP_ID"
            )
        if partitions is not None:
            _fill(source, generation, out)
        inputs = partitions_of(admin, settings.input_topics.values())
        target = consumer.end_offsets(inputs)  # events published after this are the live part
        # Registered only once the broker answered the look-ups above.
        generations.create(engine, generation, app_id, from_time)
        if on_generation:
            on_generation(generation)
        if from_time is not None:
            begin = start_offsets(consumer, inputs, from_time)
            ticks = partitions_of(admin, [settings.tick_topic])
            begin_ticks = start_offsets(consumer, ticks, from_time)
            # A new group has no members, so its offsets can be set before the worker joins.
            pin(admin, app_id, {**begin, **begin_ticks})
        else:
            begin = consumer.beginning_offsets(inputs)
        print(
            f"reprocess: generation {generation} (app id {app_id}): "
            f"{sum(target[tp] - begin[tp] for tp in inputs):,} input events to read"
            + (f" from {from_time.isoformat()}" if from_time else " from the earliest offsets"),
            file=out,
            flush=True,
        )
        log_path = log_path or Path(f"reprocess-g{generation}.log")
        outputs = list(output_topics(generation).values())
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "streams.cli", "worker"],
                cwd=REPO,
                env=worker_env(settings, generation, web_port or _free_port()),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            try:
                _wait_caught_up(
                    proc,
                    admin,
                    consumer,
                    app_id,
                    begin,
                    target,
                    outputs,
                    timeout,
                    poll,
                    stable_checks,
                    out,
                    log_path,
                )
            finally:
                _stop(proc)
        generations.mark_caught_up(engine, generation)
        return generation
    finally:
        consumer.close()
        admin.close()
        engine.dispose()


def _grown(settings: Settings, admin, generation: int, partitions: int) -> Settings:
    """The settings of generation N's own input generation N with `partitions` partitions, its
    topics created; more partitions than the current inputs, or ReprocessError."""
    from streams.publisher import ensure_topics
    from streams.repartition import partition_count

    current = partition_count(admin, settings.input_topics.values()) or settings.partitions
    if partitions <= current:
        raise ReprocessError(
            f"--partitions {partitions}: the inputs have {current} partitions; only growing is "
            f"supported (fewer partitions would need every post's state moved, and gain nothing)"
        )
    grown = settings.model_copy(
        update={"input_generation": generation, "partitions": partitions, "generation": generation}
    )
    ensure_topics(grown)
    return grown


def _fill(source: Settings, generation: int, out: TextIO) -> None:
    """Copy what the current inputs hold now into the new ones, before the worker reads them."""
    from streams.repartition import copy

    print(f"reprocess: copying the inputs into input generation {generation}", file=out, flush=True)
    copy(source, generation, out=out, should_stop=lambda: False)


def _wait_caught_up(
    proc,
    admin,
    consumer,
    group,
    begin,
    target,
    outputs,
    timeout,
    poll,
    stable_checks,
    out,
    log_path,
) -> None:
    started = time.monotonic()
    last_line = 0.0
    stable = 0
    while True:
        if proc.poll() is not None:
            raise ReprocessError(
                f"the generation's worker exited with {proc.returncode}; see {log_path}"
            )
        try:
            state = measure(admin, consumer, group, begin, target, outputs)
        except KafkaError as exc:  # group not created yet, a coordinator moving: ask again
            state = None
            reason = str(exc)
        elapsed = time.monotonic() - started
        if state is not None:
            # Done only when seen done several polls in a row: the sink's output topic end offsets
            # may still grow right after the last input offset was committed.
            stable = stable + 1 if state.done else 0
            if time.monotonic() - last_line >= 5 or stable >= stable_checks:
                last_line = time.monotonic()
                pct = 100.0 * state.consumed / state.target if state.target else 100.0
                print(
                    f"reprocess: {state.consumed:,}/{state.target:,} input events ({pct:.0f}%), "
                    f"{state.consumed / max(elapsed, 1e-9):,.0f} events/s, "
                    f"{state.sink_pending:,} aggregates waiting for the sink, {elapsed:.0f}s",
                    file=out,
                    flush=True,
                )
            if stable >= stable_checks:
                return
        if elapsed > timeout:
            raise ReprocessError(
                f"not caught up after {timeout:.0f}s"
                + ("" if state else f" ({reason})")
                + f"; see {log_path}"
            )
        time.sleep(poll)


def _stop(proc: subprocess.Popen) -> None:
    stop_process(proc, grace=60)


def generation_topics(admin: KafkaAdminClient, base_app_id: str, generation: int) -> list[str]:
    """Topics only generation N uses: its output topics and its app's changelog/internal topics."""
    if generation == 1:
        return []  # the plain topics are the live contract; never deleted from here
    prefix = generation_app_id(base_app_id, generation) + "-"
    own = set(output_topics(generation).values())
    return sorted(t for t in admin.list_topics() if t in own or t.startswith(prefix))


def delete_generation_topics(settings: Settings, generation: int) -> list[str]:
    admin = admin_client(settings, "blogpulse-reprocess")
    try:
        topics = generation_topics(admin, settings.app_id, generation)
        if topics:
            admin.delete_topics(topics)
        try:
            admin.delete_groups([generation_app_id(settings.app_id, generation)])
        except KafkaError:
            pass  # no such group (never started, or already deleted)
        return topics
    finally:
        admin.close()
