"""Durable writes from the worker's faust producer and topics, the same as the publisher's.

faust sends with acks=all (producer_acks, set in streams/app.py) but turns idempotence on only
inside transactions (exactly_once), so under at_least_once a batch retried after a leader change
can be written twice; and it has no setting for a topic's min.insync.replicas, so the changelog,
output and internal topics it creates would accept writes held by one replica. apply() adds both
to faust's Kafka driver, for every producer and every topic it creates: changelogs, outputs, the
assignor's leader topic. It also makes topic creation return only once the producer's metadata has
the topic (on a cluster, faust picked a new changelog's partition from metadata that did not list
it yet). The patch itself lives with the other faust patches: streams/faust_compat.py, patch 5."""

from __future__ import annotations

from streams import faust_compat


def apply(min_insync_replicas: int) -> None:
    """Idempotent producers and `min_insync_replicas` on every topic faust creates (once)."""
    faust_compat.durable_writes(min_insync_replicas)
