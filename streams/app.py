"""The faust application: one per worker process, made from the settings by create_app(). The
aggregation agent (streams/agents.py) registers on it; `blogpulse worker` (streams/worker.py)
builds both and runs them, with the database sink in a child process (streams/sink.py)."""

from __future__ import annotations

import faust

from streams import durability, faust_compat
from streams.settings import Settings

faust_compat.apply()


def create_app(settings: Settings) -> faust.App:
    """The worker's faust app (nothing runs until faust.Worker starts it)."""
    _s = settings
    durability.apply(_s.min_insync_replicas)  # once per process: a worker has one app
    _s.faust_datadir.parent.mkdir(parents=True, exist_ok=True)  # faust makes only the last part
    return faust.App(
        _s.generation_app_id,
        broker=[f"kafka://{b}" for b in _s.bootstrap_servers],
        # faust holds no tables: the agent's state is streams/post_store.py
        store="memory://",
        # TLS / SASL-SCRAM from BLOGPULSE_KAFKA_* (None: plaintext)
        broker_credentials=_s.kafka_security.faust_credentials(),
        web_port=_s.web_port,
        web_host=_s.web_host,
        topic_partitions=_s.partitions,
        # Every topic faust creates (changelogs follow it, outputs, the assignor's leader topic).
        topic_replication_factor=_s.replication_factor,
        # A write counts once every in-sync replica has it (faust's default too; said here because
        # durability depends on it). Idempotence and min ISR: streams/durability.py.
        producer_acks=-1,
        processing_guarantee=_s.processing_guarantee,
        # Failover: a worker killed without leaving the group holds its partitions this long
        # (faust's default 60 s; streams/settings.py, docs/reliability.md).
        broker_session_timeout=_s.session_timeout,
        broker_heartbeat_interval=_s.heartbeat_interval,
        # Agents are registered explicitly by streams.worker; no module scanning at start-up.
        autodiscover=False,
        datadir=_s.faust_datadir,
        # Everything on the wire is JSON we encode ourselves (orjson), keys are UTF-8 strings.
        key_serializer="raw",
        value_serializer="raw",
        # A batch writes many state and output records at once: let the producer group them (the
        # default sends each at once in 16 KB batches; measured in docs/performance.md).
        producer_linger=0.01,
        producer_max_batch_size=1024 * 1024,
        # Events faust holds for the agent: large enough for big take_events batches under a
        # backlog (faust's default is 4,096), small enough for the worker's memory (32,768 cost
        # ~40 MB more on shape c; docs/performance.md).
        stream_buffer_maxsize=16384,
        # Bytes fetched per partition at a time (faust's default 1 MiB): with the fetch never
        # stalled (faust_compat patch 8) a full fetch of every partition sits beside a full
        # stream buffer; a quarter of it lowers a big state's peak at no loss of speed
        # (docs/performance.md).
        consumer_max_fetch_size=256 * 1024,
    )
