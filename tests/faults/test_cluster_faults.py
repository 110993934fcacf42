"""Broker faults on a 3-node KRaft cluster of the test's own (replication factor 3, min ISR 2):
the node leading input and changelog partitions is SIGKILLed mid-stream, then restarted, or kept
down until the end. Writes go on with two replicas; post_engagement must equal the recount."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from tests.faults.conftest import GUARANTEES
from tests.faults.harness import Run, wait_for_progress

# Long enough for the controller to declare the node dead (3 s), clients to find the new leaders
# and the worker to write on: the restart then happens under a stream that went on without it.
DOWN_SECONDS = 15


@pytest.fixture
def cluster_run(kafka_cluster, fault_db, unique, fault_events, tmp_path, guarantee):
    r = Run(kafka_cluster, fault_db, unique, fault_events, tmp_path, guarantee)
    try:
        yield r
    finally:
        r.close()


def _admin(run: Run):
    from kafka.admin import KafkaAdminClient

    return KafkaAdminClient(bootstrap_servers=run.kafka.broker.split(","), request_timeout_ms=15000)


def _run_topics(admin, run: Run) -> list[str]:
    from schemas.topic_names import BASE_OUTPUT_TOPICS, DLQ_TOPIC, INPUT_TOPICS, TICK_TOPIC

    ours = {*INPUT_TOPICS.values(), DLQ_TOPIC, TICK_TOPIC, *BASE_OUTPUT_TOPICS.values()}
    return sorted(t for t in admin.list_topics() if t in ours or t.startswith(run.app_id))


def check_replication(run: Run) -> list[str]:
    """Every topic of the run (ours and faust's changelog/internal ones) has 3 replicas, all in
    sync, and min.insync.replicas 2. Returns the changelog topics."""
    from kafka.admin import ConfigResource, ConfigResourceType

    admin = _admin(run)
    try:
        topics = _run_topics(admin, run)
        changelogs = [t for t in topics if t.endswith("-changelog")]
        assert changelogs and any(t.startswith(run.app_id) and "leader" in t for t in topics), (
            topics
        )
        for d in admin.describe_topics(topics):
            for p in d["partitions"]:
                assert len(p["replica_nodes"]) == 3, (d["name"], p)
                assert len(p["isr_nodes"]) == 3, (d["name"], p)
        configs = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, t) for t in topics], config_filter="all"
        )["topic"]
        min_isr = {t: configs[t]["min.insync.replicas"]["value"] for t in topics}
        assert set(min_isr.values()) == {"2"}, min_isr
        return changelogs
    finally:
        admin.close()


def leader_to_kill(run: Run, changelogs: list[str]) -> tuple[int, dict]:
    """The node leading the most input and changelog partitions, among those leading both."""
    from schemas.topic_names import INPUT_TOPICS

    admin = _admin(run)
    try:
        inputs, logs = Counter(), Counter()
        for d in admin.describe_topics([*INPUT_TOPICS.values(), *changelogs]):
            leaders = [p["leader_id"] for p in d["partitions"]]
            (logs if d["name"] in changelogs else inputs).update(leaders)
    finally:
        admin.close()
    both = [n for n in inputs if logs[n]]
    assert both, f"no node leads both input and changelog partitions: {inputs}, {logs}"
    node = max(both, key=lambda n: inputs[n] + logs[n])
    return node, {"input_partitions_led": inputs[node], "changelog_partitions_led": logs[node]}


def fail_over(run: Run, node: int) -> float:
    """SIGKILL `node`; seconds until no partition of the run is led by it any more and the
    database has been written after that (the stream goes on with the other two)."""
    from kafka.errors import KafkaError

    t0 = time.monotonic()
    run.kafka.run("kill", str(node))
    while True:
        assert time.monotonic() - t0 < 60, f"node {node}'s partitions got no new leader in 60 s"
        try:  # a new client each time: one may still be connected to the killed node
            admin = _admin(run)
            try:
                if not any(
                    p["leader_id"] == node
                    for d in admin.describe_topics(_run_topics(admin, run))
                    for p in d["partitions"]
                ):
                    break
            finally:
                admin.close()
        except KafkaError:
            pass  # asked the killed node (connection refused): ask again
        time.sleep(0.2)
    wait_for_progress(run.db, run.db.progress(), 120, run.live())
    return time.monotonic() - t0


@pytest.mark.parametrize("guarantee", GUARANTEES)
def test_partition_leader_sigkill_then_restart(cluster_run):
    from kafka.errors import KafkaError

    run = cluster_run
    at = run.midstream()
    node, led = leader_to_kill(run, check_replication(run))
    t0 = time.monotonic()
    failover = fail_over(run, node)
    time.sleep(max(0.0, DOWN_SECONDS - (time.monotonic() - t0)))
    restart = run.kafka.run("start", str(node))
    run.finish(
        "cluster: partition leader SIGKILLed mid-stream, restarted after 15 s",
        processed_at_fault=at["processed_at_fault"],
        killed_node=node,
        **led,
        recovery_s=round(failover, 1),
        node_restart_s=round(restart, 1),
    )
    # the restarted node caught up: every partition has its 3 replicas in sync again
    deadline = time.monotonic() + 120
    while True:
        try:
            check_replication(run)
            break
        except (AssertionError, KafkaError):  # not in sync yet, or asked a node still starting
            assert time.monotonic() < deadline, (
                "the restarted node did not rejoin every ISR in 120 s"
            )
            time.sleep(1)


@pytest.mark.parametrize("guarantee", GUARANTEES)
def test_partition_leader_sigkill_kept_down(cluster_run):
    run = cluster_run
    at = run.midstream()
    node, led = leader_to_kill(run, check_replication(run))
    failover = fail_over(run, node)
    run.finish(
        "cluster: partition leader SIGKILLed mid-stream, kept down to the end",
        processed_at_fault=at["processed_at_fault"],
        killed_node=node,
        **led,
        recovery_s=round(failover, 1),
    )
