"""Durable writes from the worker's faust producer and topics, the same as the publisher's.

faust sends with acks=all (producer_acks, set in streams/app.py) but turns idempotence on only
inside transactions (exactly_once), so under at_least_once a batch retried after a leader change
can be written twice; and it has no setting for a topic's min.insync.replicas, so the changelog,
output and internal topics it creates would accept writes held by one replica. apply() adds both
to faust's Kafka driver (faust.transport.drivers.aiokafka), for every producer and every topic it
creates: changelogs, outputs, the assignor's leader topic.

On a cluster, a topic the controller has just created is not yet in the metadata the producer
holds (it came from another broker), and faust picks a changelog record's partition from that
metadata without waiting: the aggregation agent crashed with "'NoneType' object is not iterable"
in aiokafka's _partition on its first state writes (seen on the 3-node cluster, never on one
broker). apply() also makes topic creation return only once the producer's metadata has the topic."""
from __future__ import annotations

from typing import Any

from faust.transport.drivers import aiokafka as faust_kafka

_original: dict[str, Any] = {}


def apply(min_insync_replicas: int) -> None:
    """Idempotent producers and `min_insync_replicas` on every topic faust creates (once)."""
    if _original:
        return
    _original["settings_extra"] = faust_kafka.Producer._settings_extra
    _original["topic_config"] = faust_kafka.Transport._topic_config

    def _settings_extra(self) -> dict[str, Any]:
        # aiokafka requires acks=all with idempotence; a transaction's settings win.
        return {"acks": "all", "enable_idempotence": True, **_original["settings_extra"](self)}

    def _topic_config(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        config = dict(_original["topic_config"](self, *args, **kwargs))
        config.setdefault("min.insync.replicas", str(min_insync_replicas))
        return config

    _original["really_create_topic"] = faust_kafka.Transport._really_create_topic

    async def _really_create_topic(self, owner, client, topic, *args: Any, **kwargs: Any) -> None:
        await _original["really_create_topic"](self, owner, client, topic, *args, **kwargs)
        # client is the producer's: wait until its metadata lists the topic's partitions
        await client._wait_on_metadata(topic)

    faust_kafka.Producer._settings_extra = _settings_extra
    faust_kafka.Transport._topic_config = _topic_config
    faust_kafka.Transport._really_create_topic = _really_create_topic
