"""Settings from the environment: one place, so every command and the worker agree."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

INPUT_TOPICS = {
    "comment": "blog.comments",
    "reply": "blog.replies",
    "pingback": "blog.pingbacks",
    "moderation": "blog.moderation",
}
DLQ_TOPIC = "blog.events.dlq"
TICK_TOPIC = "blogpulse.ticks"  # internal: worker-clock ticks for the orphan timeout, keyed by post
OUTPUT_TOPICS = {
    "posts": "engagement.posts",
    "threads": "engagement.threads",
    "windows": "engagement.windows",
}


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


@dataclass(frozen=True)
class Settings:
    broker: str = field(default_factory=lambda: _env("BLOGPULSE_BROKER", "127.0.0.1:9092"))
    db_url: str = field(default_factory=lambda: _env("BLOGPULSE_DB", "sqlite:///blogpulse.db"))
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
    app_id: str = field(default_factory=lambda: _env("BLOGPULSE_APP_ID", "blogpulse"))
    # Table store: "memory" (state rebuilt from changelog topics at start) or "rocksdb" (rocksdict).
    store: str = field(default_factory=lambda: _env("BLOGPULSE_STORE", "memory"))

    @property
    def bootstrap_servers(self) -> list[str]:
        return [s.strip() for s in self.broker.split(",") if s.strip()]


def settings() -> Settings:
    """Read the environment now (tests change it between runs)."""
    return Settings()
