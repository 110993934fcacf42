"""Growing from 4 to 8 partitions against a real broker of our own and real workers
(docs/replay.md, "Growing the partition count"):

- `reprocess start --partitions 8 --from T` builds generation 2 on input generation 2 (8
  partitions, every record where murmur2(key) % 8 puts it) and its rows equal the live 4-partition
  generation's;
- `reprocess repartition 2` resumes from the stored copy positions (copies only what is new);
- shrinking is refused; a worker whose partition setting does not match its topics exits 2 with
  one line; `reprocess status` shows each generation's partition count."""

from __future__ import annotations

import subprocess
import uuid
from datetime import UTC, datetime, timedelta

from kafka.partitioner.default import murmur2

from schemas.topic_names import input_topics, output_topics
from sinks import db
from streams import group_offsets
from streams.settings import Settings
from tests.conftest import REPO
from tests.integration.live_history import (
    SECRET,
    caught_up_worker,
    publish,
    published_history,
    rows,
)
from tests.integration.worker_proc import CLI


def _records(broker: str, topics) -> list[tuple[str, int, bytes]]:
    s = Settings(broker=broker)
    admin = group_offsets.admin_client(s, "test")
    consumer = group_offsets.lookup_consumer(s, "test")
    try:
        parts = group_offsets.partitions_of(admin, topics)
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        ends = consumer.end_offsets(parts)
        out = []
        while any(consumer.position(tp) < ends[tp] for tp in parts):
            for tp, msgs in consumer.poll(timeout_ms=1000).items():
                out += [(tp.topic, tp.partition, m.key) for m in msgs]
        return out
    finally:
        consumer.close()
        admin.close()


def _cli(env: dict, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLI, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )


def test_grow_from_four_to_eight_partitions(own_broker, tmp_path, monkeypatch):
    monkeypatch.setenv("BLOGPULSE_AUTHOR_SECRET", SECRET)
    since = datetime.now(UTC) - timedelta(minutes=1)
    site, events = published_history(own_broker, tmp_path, "grow", posts=8, seed=5, feed_seed=8)

    db_url = f"sqlite:///{tmp_path / 'sink.db'}"
    app_id = f"grow-{uuid.uuid4().hex[:8]}"
    with caught_up_worker(own_broker, app_id, db_url, tmp_path / "live.log") as (live, env):
        for refused in ("4", "2"):
            done = _cli(env, "reprocess", "start", "--partitions", refused, timeout=60)
            assert done.returncode == 1 and "only growing is supported" in done.stderr, (
                done.stdout + done.stderr
            )
        log = tmp_path / "g2.log"
        done = _cli(
            env,
            *("reprocess", "start", "--partitions", "8", "--from", since.isoformat()),
            *("--timeout", "240", "--log", str(log)),
        )
        assert done.returncode == 0, done.stdout + done.stderr + log.read_text()[-3000:]
        assert "generation 2 has caught up on 8 partitions" in done.stdout
        live.check_alive()

    engine = db.make_engine(db_url)
    live_rows, grown = rows(engine, 1, site), rows(engine, 2, site)
    engine.dispose()
    assert live_rows["posts"] and live_rows["threads"] and live_rows["windows"]
    assert grown == live_rows

    # Every input record copied once, each where a publisher's partitioner would put it.
    source = _records(own_broker, input_topics(0).values())
    copied = _records(own_broker, input_topics(2).values())
    assert sorted(k for _, _, k in copied) == sorted(k for _, _, k in source)
    assert max(p for _, p, _ in copied) >= 4  # partitions the 4-partition topics do not have
    assert all(p == (murmur2(k) & 0x7FFFFFFF) % 8 for _, p, k in copied)
    assert {p for t, p, _ in _records(own_broker, output_topics(2).values())} <= set(range(8))

    # The copy resumes from its confirmed positions: only what was published since is copied.
    again = _cli(env, "reprocess", "repartition", "2", timeout=120)
    assert again.returncode == 0 and again.stdout.startswith("copied 0 records"), again.stderr
    publish(own_broker, events[:25])
    more = _cli(env, "reprocess", "repartition", "2", timeout=120)
    assert more.returncode == 0 and more.stdout.startswith("copied 25 records"), more.stderr

    status = _cli(env, "reprocess", "status", timeout=60)
    assert status.returncode == 0, status.stderr
    assert "partitions: 4" in status.stdout and "partitions: 8" in status.stdout, status.stdout

    # A worker on the 8-partition inputs with the default 4: one line, exit 2, before faust runs.
    wrong = _cli(
        {**env, "BLOGPULSE_INPUT_GENERATION": "2", "BLOGPULSE_GENERATION": "2"},
        "worker",
        timeout=120,
    )
    assert wrong.returncode == 2, wrong.stdout + wrong.stderr
    assert wrong.stderr.count("\n") == 1 and "must have 4 partitions" in wrong.stderr, wrong.stderr
