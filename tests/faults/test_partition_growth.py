"""Growing from 4 to 8 partitions while events flow (docs/replay.md, "Growing the partition
count"), on a private broker and PostgreSQL: `reprocess start --partitions 8` while the live
4-partition worker runs, the follow copy SIGKILLed mid-way and restarted, publishers moved to the
8-partition inputs, the switch, 4 workers on 8 partitions and one of them SIGKILLed. The rows
readers see (post, thread, window) must equal the recount: nothing lost, nothing counted twice."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest

from streams import group_offsets
from streams.repartition import copy_group
from streams.settings import Settings
from tests.conftest import REPO
from tests.faults.harness import (
    CONVERGE_TIMEOUT,
    EXACT,
    Database,
    PublisherThread,
    compare,
    compare_rows,
    converge,
    patience,
    rebalances_of,
    record,
    start_worker,
    stop_worker,
    wait_for_emission,
    wait_for_progress,
)
from tests.faults.history import generate, recount, recount_threads, recount_windows
from tests.integration.worker_proc import CLI

GROWN = {
    "BLOGPULSE_GENERATION": "2",
    "BLOGPULSE_INPUT_GENERATION": "2",
    "BLOGPULSE_PARTITIONS": "8",
}


def _copied(settings: Settings, group: str) -> int:
    admin = group_offsets.admin_client(settings, "test")
    try:
        return sum(group_offsets.committed(admin, group).values())
    finally:
        admin.close()


def _source_end(settings: Settings) -> int:
    admin = group_offsets.admin_client(settings, "test")
    consumer = group_offsets.lookup_consumer(settings, "test")
    try:
        parts = group_offsets.partitions_of(admin, settings.input_topics.values())
        return sum(consumer.end_offsets(parts).values())
    finally:
        consumer.close()
        admin.close()


def _wait(condition, timeout: float, what: str, procs=()) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        for p in procs:
            p.check_alive()
        if condition():
            return time.monotonic() - t0
        time.sleep(0.2)
    pytest.fail(f"{what}: not within {timeout:.0f} s")


def test_grow_to_8_partitions_while_events_flow_4_workers_one_sigkilled(
    kafka, fault_db, unique, fault_events, tmp_path
):
    from streams.publisher import ensure_topics

    settings = kafka.settings()
    events = generate(fault_events, unique)
    cut = len(events) * 3 // 5  # published to the 4-partition topics; the rest to the 8
    wait = patience(len(events))
    ensure_topics(settings)
    app_id = f"fault-{unique}"
    live = start_worker(kafka.broker, app_id, fault_db, tmp_path / "g1.log", **kafka.client_env)
    readers = Database(fault_db, unique, current=True)
    workers, procs = [live], []
    try:
        wait_for_progress(readers, -1, 120, workers)  # migrated and answering
        # Slow enough to still flow while the rebuild builds and the copy is killed.
        old = PublisherThread(kafka.broker, events[:cut], chunk=250, pause=1.0)
        old.start()
        wait_for_progress(readers, 0, 180 * wait, workers)
        env = {k: v for k, v in live.env.items() if k != "BLOGPULSE_WEB_PORT"}
        t0 = time.monotonic()
        built = subprocess.run(
            [*CLI, "reprocess", "start", "--partitions", "8", "--log", str(tmp_path / "g2.log")],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=600 * wait,
        )
        assert built.returncode == 0, (
            built.stdout + built.stderr + (tmp_path / "g2.log").read_text()[-3000:]
        )
        rebuild_s = time.monotonic() - t0

        # The follow copy, SIGKILLed once it has stored positions beyond the rebuild's copy.
        group = copy_group(app_id, 2)
        at_start = _copied(settings, group)
        flowing_at_kill = not old.done.is_set()
        copy = _follow_copy(env, tmp_path / "copy-1.log")
        procs.append(copy)
        _wait(lambda: _copied(settings, group) > at_start, 120 * wait, "the copy stored positions")
        copy.send_signal(signal.SIGKILL)
        copy.wait(30)
        copied_at_kill = _copied(settings, group) - at_start
        copy = _follow_copy(env, tmp_path / "copy-2.log")
        procs.append(copy)

        grown_env = {**kafka.client_env, **GROWN}
        workers += [
            start_worker(kafka.broker, app_id, fault_db, tmp_path / f"g2-{i}.log", **grown_env)
            for i in range(1, 5)
        ]
        old.done.wait(300 * wait)
        assert old.error is None, f"publishing failed: {old.error!r}"
        new = PublisherThread(
            kafka.broker, events[cut:], input_generation=2, partitions=8, **_kafka_fields(settings)
        )
        new.start()
        switched = subprocess.run(
            [*CLI, "reprocess", "switch", "2"], cwd=REPO, env=env, capture_output=True, text=True
        )
        assert switched.returncode == 0, switched.stderr
        stop_worker(live)  # readers see generation 2 now
        workers.remove(live)
        grown = list(workers)

        # SIGKILL one of the 4 while the 8-partition inputs fill; the other 3 take its partitions.
        for w in grown:  # each owns partitions: the group of 4 has formed
            wait_for_emission(w, 180 * wait)
        before = {id(w): rebalances_of(w) for w in grown[1:]}
        stop_worker(grown[0], signal.SIGKILL)
        workers.remove(grown[0])
        t1 = time.monotonic()
        _wait(
            lambda: all(rebalances_of(w) > before[id(w)] for w in workers),
            120 * wait,
            "the 3 remaining workers took the killed worker's partitions",
            workers,
        )
        reassigned_s = time.monotonic() - t1
        new.done.wait(300 * wait)
        assert new.error is None, f"publishing failed: {new.error!r}"

        # Everything on the 4-partition topics copied: stop the follow copy cleanly.
        _wait(lambda: _copied(settings, group) >= _source_end(settings), 120 * wait, "copy drained")
        copy.send_signal(signal.SIGTERM)
        assert copy.wait(60) == 0, (tmp_path / "copy-2.log").read_text()[-2000:]

        converged = converge(readers, events, CONVERGE_TIMEOUT * wait, workers)
        diff = compare(recount(events), readers.posts())
        diff["threads_differing"] = compare_rows(recount_threads(events), readers.threads())
        diff["windows_differing"] = compare_rows(recount_windows(events), readers.windows())
        record(
            "grow 4 -> 8 partitions while events flow: copy SIGKILLed, 4 workers, one SIGKILLed",
            events=len(events),
            posts=len(recount(events)),
            republished_chunks=old.retried_chunks + new.retried_chunks,
            **diff,
            rebuild_s=round(rebuild_s, 1),
            flowing_at_copy_kill=flowing_at_kill,
            copied_before_kill=copied_at_kill,
            reassigned_after_kill_s=round(reassigned_s, 1),
            converged_after_s=round(converged, 1),
        )
        assert diff == EXACT
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(30)
        for w in workers:
            stop_worker(w)
        readers.dispose()


def _follow_copy(env: dict, log) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen(
            [*CLI, "reprocess", "repartition", "2", "--follow"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _kafka_fields(settings: Settings) -> dict:
    return {
        "replication_factor": settings.replication_factor,
        "min_insync_replicas": settings.min_insync_replicas,
    }
