"""Settings from the environment: one place, so every command and the worker agree."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from streams.kafka_security import KafkaSecurity

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


class SettingError(ValueError):
    """A BLOGPULSE_* setting cannot be used; the message names the variable and what to do.
    `blogpulse` prints it as one line and exits 2."""


def env_generation() -> int:
    """BLOGPULSE_GENERATION (default 1): which rebuild of the aggregates this process works on
    (docs/replay.md). Generation N > 1 has its own faust app id, output topics and sink tables."""
    raw = os.environ.get("BLOGPULSE_GENERATION", "").strip() or "1"
    if not raw.isdigit() or int(raw) < 1:
        raise SystemExit(f"BLOGPULSE_GENERATION: expected an integer >= 1, got {raw!r}")
    return int(raw)


def generation_output_topics(generation: int) -> dict[str, str]:
    # Generation 1 keeps the plain names, so existing consumers of the topics keep working.
    if generation == 1:
        return dict(BASE_OUTPUT_TOPICS)
    return {kind: f"{topic}.g{generation}" for kind, topic in BASE_OUTPUT_TOPICS.items()}


def sink_group(app_id: str) -> str:
    """Consumer group of the database sink (streams/sink.py); it commits after each database
    commit, for lag monitoring and `reprocess`'s catch-up check."""
    return f"{app_id}-sink"


def generation_app_id(base_app_id: str, generation: int) -> str:
    # A new app id = a new consumer group and new changelog topics: the rebuild starts empty.
    return base_app_id if generation == 1 else f"{base_app_id}-g{generation}"


# Read once at import: a worker process works on one generation for its whole life.
OUTPUT_TOPICS = generation_output_topics(env_generation())


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


def _env_seconds(name: str, default: str) -> float:
    raw = _env(name, default)
    try:
        value = float(raw)
    except ValueError:
        raise SettingError(f"{name}: expected a number of seconds, got {raw!r}") from None
    if not 0 < value < float("inf"):
        raise SettingError(f"{name}: must be a positive number of seconds, got {raw!r}")
    return value


# faust's broker_request_timeout (90 s): faust refuses a session timeout above it.
MAX_SESSION_TIMEOUT = 90.0


@dataclass(frozen=True)
class Settings:
    broker: str = field(default_factory=lambda: _env("BLOGPULSE_BROKER", "127.0.0.1:9092"))
    # repr=False: the URL may hold the database password, and settings objects get logged.
    db_url: str = field(default_factory=lambda: _env("BLOGPULSE_DB", "sqlite:///blogpulse.db"),
                        repr=False)
    partitions: int = field(default_factory=lambda: int(_env("BLOGPULSE_PARTITIONS", "4")))
    web_port: int = field(default_factory=lambda: int(_env("BLOGPULSE_WEB_PORT", "6066")))
    # 127.0.0.1 by default: /metrics is for the local Prometheus; containers set 0.0.0.0.
    web_host: str = field(default_factory=lambda: _env("BLOGPULSE_WEB_HOST", "127.0.0.1"))
    orphan_timeout: float = field(
        default_factory=lambda: float(_env("BLOGPULSE_ORPHAN_TIMEOUT", "3600"))
    )
    processing_guarantee: str = field(
        default_factory=lambda: _env("BLOGPULSE_PROCESSING_GUARANTEE", "at_least_once")
    )
    generation: int = field(default_factory=env_generation)
    # The faust app id of this generation: BLOGPULSE_APP_ID, with "-g<N>" for generation N > 1.
    app_id: str = field(default_factory=lambda: generation_app_id(
        _env("BLOGPULSE_APP_ID", "blogpulse"), env_generation()))
    # Entries of post derivations the aggregation agent keeps (streams/state_cache.py); their
    # size per entry is measured in docs/performance.md ("Memory").
    state_cache_entries: int = field(
        default_factory=lambda: int(_env("BLOGPULSE_STATE_CACHE_ENTRIES", "500000")))
    # Replicas of every topic blogpulse creates (inputs, outputs, DLQ, ticks, faust's changelogs
    # and internal topics) and the replicas that must have a write before it is acknowledged
    # (acks=all). 1 and 1 suit the single local broker; a 3-broker cluster: 3 and 2.
    replication_factor: int = field(
        default_factory=lambda: int(_env("BLOGPULSE_REPLICATION_FACTOR", "1")))
    min_insync_replicas: int = field(
        default_factory=lambda: int(_env("BLOGPULSE_MIN_INSYNC_REPLICAS", "1")))
    # Consumer-group session of the worker (faust's broker_session_timeout and
    # broker_heartbeat_interval; faust's defaults are 60 s and 3 s). A worker that dies without
    # leaving the group (SIGKILL, OOM, power loss) holds its partitions until its session expires,
    # so this bounds failover; a live worker whose heartbeats stop for this long (event loop
    # blocked) is removed and rejoins (a needless rebalance). The broker accepts
    # group.min.session.timeout.ms (6 s by default) .. group.max.session.timeout.ms (30 min).
    # Measured under load: docs/reliability.md "Failover".
    session_timeout: float = field(
        default_factory=lambda: _env_seconds("BLOGPULSE_SESSION_TIMEOUT", "10"))
    heartbeat_interval: float = field(
        default_factory=lambda: _env_seconds("BLOGPULSE_HEARTBEAT_INTERVAL", "1"))
    # "check" (default): the worker refuses to start when the installed faust differs from the
    # one the patches in streams/faust_compat.py were written for; "ignore": start anyway.
    faust_compat: str = field(default_factory=lambda: _env("BLOGPULSE_FAUST_COMPAT", "check"))
    # TLS / SASL for both Kafka clients (BLOGPULSE_KAFKA_*, see docs/security.md).
    kafka_security: KafkaSecurity = field(default_factory=KafkaSecurity.from_env, repr=False)

    def __post_init__(self) -> None:
        if not 1 <= self.min_insync_replicas <= self.replication_factor:
            # min ISR above the replicas would refuse every write with acks=all
            raise SystemExit(f"BLOGPULSE_MIN_INSYNC_REPLICAS ({self.min_insync_replicas}) must be "
                             f"1..BLOGPULSE_REPLICATION_FACTOR ({self.replication_factor})")
        if self.session_timeout > MAX_SESSION_TIMEOUT:
            raise SettingError(f"BLOGPULSE_SESSION_TIMEOUT ({self.session_timeout:g} s) must be at "
                               f"most {MAX_SESSION_TIMEOUT:g} s (faust's broker request timeout)")
        if self.heartbeat_interval * 3 > self.session_timeout:
            # Kafka's rule: a session must outlast a few heartbeats, or one late heartbeat
            # (a busy event loop, a slow broker) already removes a live worker from the group.
            raise SettingError(
                f"BLOGPULSE_HEARTBEAT_INTERVAL ({self.heartbeat_interval:g} s) must be at most a "
                f"third of BLOGPULSE_SESSION_TIMEOUT ({self.session_timeout:g} s)")

    @property
    def bootstrap_servers(self) -> list[str]:
        return [s.strip() for s in self.broker.split(",") if s.strip()]


def settings() -> Settings:
    """Read the environment now (tests change it between runs)."""
    return Settings()
