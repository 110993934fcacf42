"""blogpulse's one settings model: every BLOGPULSE_* variable the Python code reads (and
XDG_STATE_HOME), read and validated once, when a command starts (streams/cli.py), then passed
down. This is the only module that reads the environment (tests/unit/test_layers.py checks it);
the shell scripts of deploy/local read their own BLOGPULSE_*_PORT/STATE_DIR variables.

A value that cannot be used is one line, `BLOGPULSE_X: expected ..., got '...'` (a SettingError:
`blogpulse` prints it and exits 2). An empty variable counts as unset."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal, cast

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticUseDefault
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.errors import SettingError
from schemas.identity import AuthorKeyer, load_secret
from schemas.topic_names import input_topics, output_topics, tick_topic
from streams.kafka_security import MECHANISMS, PROTOCOLS, KafkaSecurity

__all__ = ["Settings", "SettingError", "load_settings", "env_name"]

ENV_PREFIX = "BLOGPULSE_"
# faust's broker_request_timeout (90 s): faust refuses a session timeout above it.
MAX_SESSION_TIMEOUT = 90.0
_APP_ID = re.compile(r"[A-Za-z0-9._-]{1,200}")


def setting(
    default: Any, expected: str, bad: str | None, *, secret: bool = False, **constraints: Any
) -> Any:
    """A field of the model. `expected` completes the error line's "expected ..."; `bad` is a
    value the field refuses (tests/unit/test_settings.py tries each), None for free text.
    A secret is kept out of reprs and error lines."""
    return Field(
        default,
        repr=not secret,
        json_schema_extra={"expected": expected, "bad": bad, "secret": secret},
        **constraints,
    )


class Settings(BaseSettings):
    """Field `name` is read from BLOGPULSE_NAME (upper case), unless it has its own alias."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        case_sensitive=False,
        env_ignore_empty=True,
        extra="ignore",
        frozen=True,
        allow_inf_nan=False,
        # the defaults are ours (and _strip falls back to them)
        validate_default=False,
    )

    # --- Kafka and the worker ---
    broker: str = setting(
        "127.0.0.1:9092", "HOST:PORT, or several separated by commas", "localhost"
    )
    partitions: int = setting(4, "an integer >= 1", "four", ge=1)
    # Replicas of every topic blogpulse creates (inputs, outputs, DLQ, ticks, faust's changelogs
    # and internal topics) and the replicas that must have a write before it is acknowledged
    # (acks=all). 1 and 1 suit the single local broker; a 3-broker cluster: 3 and 2.
    replication_factor: int = setting(1, "an integer >= 1", "0", ge=1)
    min_insync_replicas: int = setting(1, "an integer >= 1", "0", ge=1)
    # The faust app id of generation 1; generation N > 1 adds "-g<N>" (generation_app_id).
    app_id: str = setting(
        "blogpulse",
        "letters, digits, '.', '_' or '-' (it names Kafka topics and consumer groups)",
        "blog pulse",
    )
    # Which rebuild of the aggregates this process works on (docs/replay.md): generation N > 1
    # has its own faust app id, output topics and sink tables.
    generation: int = setting(1, "an integer >= 1", "0", ge=1)
    # Which set of input and tick topics publishers write and workers read: 0 is the plain names,
    # N > 0 the ".g<N>" topics made by `reprocess start --partitions` (more partitions).
    input_generation: int = setting(0, "an integer >= 0", "-1", ge=0)
    processing_guarantee: Literal["at_least_once", "exactly_once"] = setting(
        "at_least_once", "at_least_once or exactly_once", "twice"
    )
    # How the worker's changelog load and the sink read Kafka: read_committed skips the records of
    # aborted transactions (exactly_once) and reads no further than the open ones; without
    # transactions both levels read the same records.
    isolation_level: Literal["read_committed", "read_uncommitted"] = setting(
        "read_committed", "read_committed or read_uncommitted", "committed"
    )
    orphan_timeout: float = setting(3600.0, "a positive number of seconds", "soon", gt=0)
    # Entries of post derivations the aggregation agent keeps (streams/state_cache.py); their
    # size per entry is measured in docs/performance.md ("Memory").
    state_cache_entries: int = setting(500_000, "an integer >= 0", "many", ge=0)
    # Where the aggregation state lives (streams/post_store.py, streams/rocks_store.py): "memory"
    # holds every post of the worker's partitions decoded; "rocksdb" one RocksDB database per
    # input partition under store_dir, with only recently used posts decoded.
    store: Literal["memory", "rocksdb"] = setting("memory", "memory or rocksdb", "disk")
    # rocksdb: the directory of the worker's databases (XDG_STATE_HOME/blogpulse/store when unset)
    store_dir: str | None = setting(None, "a directory", None)
    # rocksdb: entries of the posts held decoded in memory, and how long an unused one stays
    store_held_entries: int = setting(100_000, "an integer >= 0", "lots", ge=0)
    store_idle_seconds: float = setting(60.0, "a positive number of seconds", "long", gt=0)
    # Consumer-group session of the worker (faust's broker_session_timeout and
    # broker_heartbeat_interval; faust's defaults are 60 s and 3 s). A worker that dies without
    # leaving the group (SIGKILL, OOM, power loss) holds its partitions until its session expires,
    # so this bounds failover; a live worker whose heartbeats stop for this long (event loop
    # blocked) is removed and rejoins (a needless rebalance). The broker accepts
    # group.min.session.timeout.ms (6 s by default) .. group.max.session.timeout.ms (30 min).
    # Measured under load: docs/reliability.md "Failover".
    session_timeout: float = setting(
        10.0,
        f"a positive number of seconds, at most {MAX_SESSION_TIMEOUT:g} (faust's broker "
        "request timeout)",
        "ten",
        gt=0,
        le=MAX_SESSION_TIMEOUT,
    )
    heartbeat_interval: float = setting(1.0, "a positive number of seconds", "-1", gt=0)
    # "check": the worker refuses to start when the installed faust differs from the one the
    # patches in streams/faust_compat.py were written for; "ignore": start anyway.
    faust_compat: Literal["check", "ignore"] = setting("check", "check or ignore", "maybe")
    web_port: int = setting(6066, "a port number 0..65535", "http", ge=0, le=65535)
    # 127.0.0.1 by default: /metrics is for the local Prometheus; containers set 0.0.0.0.
    web_host: str = setting("127.0.0.1", "a host name or address", "local host")

    # --- Kafka client security (docs/security.md) ---
    kafka_security_protocol: Literal[PROTOCOLS] = setting(  # type: ignore[valid-type]
        "PLAINTEXT", f"one of {', '.join(PROTOCOLS)}", "TLS"
    )
    kafka_sasl_mechanism: Literal[MECHANISMS] = setting(  # type: ignore[valid-type]
        "SCRAM-SHA-512", f"one of {', '.join(MECHANISMS)}", "GSSAPI"
    )
    kafka_sasl_username: str = setting("", "a user name", None)
    kafka_sasl_password: str = setting("", "a password", None, secret=True)  # not stripped
    kafka_ssl_cafile: str = setting("", "the path of a file", "/nonexistent/ca.pem")
    kafka_ssl_certfile: str = setting("", "the path of a file", "/nonexistent/client.pem")
    kafka_ssl_keyfile: str = setting("", "the path of a file", "/nonexistent/client.key")
    kafka_ssl_check_hostname: bool = setting(True, "true or false", "maybe")

    # --- the sink database ---
    db: str = setting(
        "sqlite:///blogpulse.db",
        "a database URL (sqlite:///FILE or postgresql://USER:PASSWORD@HOST/DATABASE)",
        "not a url",
        secret=True,
    )
    sink_batch: int = setting(5000, "an integer >= 1", "lots", ge=1)
    sink_flush_seconds: float = setting(0.5, "a number of seconds >= 0.001", "0", ge=0.001)

    # --- author keys (schemas/identity.py) ---
    author_secret: str | None = setting(None, "a secret", None, secret=True)
    # The XDG base directory of the per-user secret file (~/.local/state when unset).
    xdg_state_home: str | None = setting(
        None, "a directory", None, validation_alias="XDG_STATE_HOME"
    )

    # --- ingest (`blogpulse ingest`, `blogpulse poll`, docs/ingest.md) ---
    ingest_secret: str = setting("", "a secret", None, secret=True)
    ingest_max_bytes: int = setting(256 * 1024, "an integer >= 1 (bytes)", "big", ge=1)
    site: str | None = setting(None, "1-200 printable characters without '/'", "a/b")
    wp_app_password: str | None = setting(None, "a password", None, secret=True)

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise _one_line(exc) from None

    @field_validator("*", mode="before")
    @classmethod
    def _strip(cls, value: Any, info: Any) -> Any:
        if isinstance(value, str):
            if info.field_name != "kafka_sasl_password":  # a password may end in a space
                value = value.strip()
            if not value:
                raise PydanticUseDefault()
            if info.field_name in ("kafka_security_protocol", "kafka_sasl_mechanism"):
                value = value.upper()
        return value

    @field_validator("broker")
    @classmethod
    def _broker(cls, value: str) -> str:
        for server in value.split(","):
            host, colon, port = server.strip().rpartition(":")
            if not (host and colon and port.isdigit() and 1 <= int(port) <= 65535):
                raise ValueError(server)
        return value

    @field_validator("app_id")
    @classmethod
    def _app_id(cls, value: str) -> str:
        if not _APP_ID.fullmatch(value):
            raise ValueError(value)
        return value

    @field_validator("web_host")
    @classmethod
    def _host(cls, value: str) -> str:
        if any(c.isspace() for c in value):
            raise ValueError(value)
        return value

    @field_validator("kafka_ssl_cafile", "kafka_ssl_certfile", "kafka_ssl_keyfile")
    @classmethod
    def _file(cls, value: str) -> str:
        if not os.path.isfile(value):
            raise ValueError(value)
        return value

    @field_validator("db")
    @classmethod
    def _db(cls, value: str) -> str:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            make_url(value)
        except ArgumentError:
            raise ValueError(value) from None
        return value

    @field_validator("site")
    @classmethod
    def _site(cls, value: str) -> str:
        if "/" in value or not value.isprintable() or len(value) > 200:
            raise ValueError(value)
        return value

    @field_validator("xdg_state_home")
    @classmethod
    def _state_home(cls, value: str) -> str:
        # The XDG spec: a relative path in these variables is invalid and is ignored.
        if not os.path.isabs(value):
            raise PydanticUseDefault()
        return value

    @model_validator(mode="after")
    def _together(self) -> Settings:
        """Rules between settings; a ValueError here becomes the one line as it is."""
        if self.min_insync_replicas > self.replication_factor:
            # min ISR above the replicas would refuse every write with acks=all
            raise SettingError(
                f"BLOGPULSE_MIN_INSYNC_REPLICAS: expected 1..BLOGPULSE_REPLICATION_FACTOR "
                f"({self.replication_factor}), got '{self.min_insync_replicas}'"
            )
        if self.heartbeat_interval * 3 > self.session_timeout:
            # Kafka's rule: a session must outlast a few heartbeats, or one late heartbeat
            # (a busy event loop, a slow broker) already removes a live worker from the group.
            raise SettingError(
                f"BLOGPULSE_HEARTBEAT_INTERVAL ({self.heartbeat_interval:g} s) must be at most a "
                f"third of BLOGPULSE_SESSION_TIMEOUT ({self.session_timeout:g} s)"
            )
        self.kafka_security.validate()
        return self

    # --- derived values ---

    @property
    def db_url(self) -> str:
        return self.db

    @property
    def bootstrap_servers(self) -> list[str]:
        return [s.strip() for s in self.broker.split(",") if s.strip()]

    @property
    def generation_app_id(self) -> str:
        """The faust app id of this generation: a new app id is a new consumer group and new
        changelog topics, so a rebuild starts empty."""
        return generation_app_id(self.app_id, self.generation)

    @property
    def output_topics(self) -> dict[str, str]:
        return output_topics(self.generation)

    @property
    def input_topics(self) -> dict[str, str]:
        return input_topics(self.input_generation)

    @property
    def tick_topic(self) -> str:
        return tick_topic(self.input_generation)

    @property
    def sink_group(self) -> str:
        """Consumer group of the database sink (streams/sink.py); it commits after each database
        commit, for lag monitoring and `reprocess`'s catch-up check."""
        return sink_group(self.generation_app_id)

    @property
    def kafka_security(self) -> KafkaSecurity:
        """TLS / SASL for both Kafka clients."""
        return KafkaSecurity(
            protocol=self.kafka_security_protocol,
            mechanism=self.kafka_sasl_mechanism,
            username=self.kafka_sasl_username,
            password=self.kafka_sasl_password,
            cafile=self.kafka_ssl_cafile,
            certfile=self.kafka_ssl_certfile,
            keyfile=self.kafka_ssl_keyfile,
            check_hostname=self.kafka_ssl_check_hostname,
        )

    @property
    def author_secret_file(self) -> Path:
        return self._state_base / "blogpulse" / "author-secret"

    @property
    def store_path(self) -> Path:
        """The directory of the rocksdb store's databases."""
        if self.store_dir:
            return Path(self.store_dir)
        return self._state_base / "blogpulse" / "store"

    @property
    def faust_datadir(self) -> Path:
        """faust's data directory of this worker's app. faust makes it in the working directory
        by default ("<app id>-data"); it holds nothing here (no faust tables), so it goes with
        the worker's other state instead of into the directory the worker was started from."""
        return self._state_base / "blogpulse" / "faust" / self.generation_app_id

    @property
    def _state_base(self) -> Path:
        return (
            Path(self.xdg_state_home) if self.xdg_state_home else Path.home() / ".local" / "state"
        )

    def author_keyer(self) -> AuthorKeyer:
        """Author keys with BLOGPULSE_AUTHOR_SECRET, else with the per-user secret file (created
        on first use)."""
        return AuthorKeyer(load_secret(self.author_secret, self.author_secret_file))


def generation_app_id(base_app_id: str, generation: int) -> str:
    return base_app_id if generation == 1 else f"{base_app_id}-g{generation}"


def sink_group(app_id: str) -> str:
    return f"{app_id}-sink"


def env_name(field: str) -> str:
    """The environment variable of a field of Settings."""
    alias = Settings.model_fields[field].validation_alias
    return alias if isinstance(alias, str) else ENV_PREFIX + field.upper()


def load_settings() -> Settings:
    """Read and validate the environment now: once per command (streams/cli.py)."""
    return Settings()


def _one_line(exc: ValidationError) -> SettingError:
    error = exc.errors()[0]
    cause = error.get("ctx", {}).get("error")
    if isinstance(cause, SettingError):  # a rule between settings: its own words
        return cause
    field = _field_of(error["loc"][0]) if error["loc"] else None
    if field is None:
        return SettingError(str(cause or error["msg"]))
    extra = cast(dict[str, Any], Settings.model_fields[field].json_schema_extra or {})
    value = str(error["input"])
    if extra.get("secret"):
        value = _masked(value) if field == "db" else "***"
    return SettingError(f"{env_name(field)}: expected {extra.get('expected')}, got {value!r:.200}")


def _field_of(loc: Any) -> str | None:
    for name, info in Settings.model_fields.items():
        if loc in (name, info.validation_alias):
            return name
    return None


def _masked(url: str) -> str:
    """A database URL with what comes before the host (user and password) hidden."""
    if "@" not in url:
        return url
    scheme, sep, rest = url.partition("://")
    host = url.rpartition("@")[2]
    return f"{scheme}://***@{host}" if sep and "@" in rest else f"***@{host}"


def child_env(python_path: str | None = None, **variables: str) -> dict[str, str]:
    """The environment of a child process blogpulse starts (a worker, `blogpulse db upgrade`,
    deploy/local/up): this process's, with `variables` set, and `python_path` first on
    PYTHONPATH. A blogpulse child reads its own settings from it."""
    env = {**os.environ, **variables}
    if python_path:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [python_path, env.get("PYTHONPATH")]))
    return env
