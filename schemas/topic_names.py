"""Every Kafka topic name blogpulse uses: the inputs and the dead-letter topic producers write to,
the output topics consumers read (per generation, docs/replay.md), and the worker's internal tick
topic. Names only: creating and reading topics is streams/."""

from __future__ import annotations

INPUT_TOPICS = {
    "comment": "blog.comments",
    "reply": "blog.replies",
    "pingback": "blog.pingbacks",
    "moderation": "blog.moderation",
}
DLQ_TOPIC = "blog.events.dlq"
TICK_TOPIC = "blogpulse.ticks"  # internal: worker-clock ticks for the orphan timeout, keyed by post
BASE_OUTPUT_TOPICS = {
    "posts": "engagement.posts",
    "threads": "engagement.threads",
    "windows": "engagement.windows",
}
_KIND_OF_BASE = {topic: kind for kind, topic in BASE_OUTPUT_TOPICS.items()}


def input_topics(input_generation: int = 0) -> dict[str, str]:
    """Input topic per event type of an input generation. Generation 0 keeps the plain names;
    generation N > 0 adds ".g<N>": a new set of topics, so it may have more partitions (a topic's
    partition count can grow in place, but then murmur2(key) % P moves posts away from their
    state; docs/replay.md)."""
    if input_generation == 0:
        return dict(INPUT_TOPICS)
    return {kind: f"{topic}.g{input_generation}" for kind, topic in INPUT_TOPICS.items()}


def tick_topic(input_generation: int = 0) -> str:
    """The worker's tick topic that goes with the input topics of an input generation."""
    return TICK_TOPIC if input_generation == 0 else f"{TICK_TOPIC}.g{input_generation}"


def output_topics(generation: int) -> dict[str, str]:
    """Output topic per aggregate kind of a generation. Generation 1 keeps the plain names, so
    existing consumers of the topics keep working; generation N > 1 adds ".g<N>"."""
    if generation == 1:
        return dict(BASE_OUTPUT_TOPICS)
    return {kind: f"{topic}.g{generation}" for kind, topic in BASE_OUTPUT_TOPICS.items()}


def output_kind(topic: str) -> str | None:
    """The aggregate kind (posts, threads, windows) of an output topic of any generation."""
    kind = _KIND_OF_BASE.get(topic)
    if kind is None:
        base, dot, generation = topic.rpartition(".g")
        if dot and generation.isdigit() and int(generation) > 1:
            kind = _KIND_OF_BASE.get(base)
    return kind
