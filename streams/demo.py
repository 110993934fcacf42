"""`blogpulse demo [FILE]`: the whole pipeline on one machine with one command.

Brings up what is missing (a local Kafka broker through deploy/local/up kafka; SQLite needs
nothing), upgrades the database, starts a worker, publishes the sample set (or FILE: WXR or JSONL),
shows live progress read from the worker's /metrics, prints the per-post and per-thread summary from
the database (`blogpulse stats`), and stops what it started on Ctrl-C and at the end (unless
--keep-running)."""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from kafka.errors import KafkaError
from prometheus_client.parser import text_string_to_metric_families

from schemas.errors import BlogpulseError
from schemas.topic_names import INPUT_TOPICS, TICK_TOPIC
from streams.group_offsets import (
    admin_client,
    lookup_consumer,
    partitions_of,
    start_new_group_at_ends,
)
from streams.process import stop_process
from streams.publisher import BrokerUnavailable
from streams.settings import Settings, child_env

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "schemas" / "sample" / "sample-export.xml"
DEMO_DB = "sqlite:///blogpulse-demo.db"
DEMO_APP_ID = "blogpulse-demo"
WORKER_LOG = "blogpulse-demo-worker.log"
CLI = [sys.executable, "-m", "streams.cli"]
LAG_SETTLE = 6.0  # > the worker's lag refresh interval (streams.observability.LAG_INTERVAL)
DETAIL_POSTS = 3  # posts whose threads the summary shows


class DemoError(BlogpulseError, RuntimeError):
    """Something the user can fix; the message says what."""


def register_demo(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo",
        help="run the whole pipeline locally on the sample set (or FILE) and print the summary",
        description="Start a local Kafka broker if none answers on BLOGPULSE_BROKER, upgrade the "
        "database (SQLite ./blogpulse-demo.db unless BLOGPULSE_DB is set), start a worker, publish "
        "the sample post with its comments (or FILE), show progress, then print the per-post and "
        "per-thread summary. Ctrl-C stops everything the demo started.",
    )
    p.add_argument(
        "file",
        nargs="?",
        type=Path,
        default=None,
        help="WXR export (.xml) or JSONL events to publish (default: the sample set)",
    )
    p.add_argument(
        "--keep-running",
        action="store_true",
        help="leave the worker (and a broker the demo started) running at the end",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        help="seconds to wait for the worker to catch up (default: 300)",
    )
    p.set_defaults(func=run_demo)


# --- reading the worker's /metrics ----------------------------------------------------------------


@dataclass
class Progress:
    consumed: float = 0.0  # input events consumed (any outcome)
    rows: float = 0.0  # rows written by the sink
    lag: float | None = None  # messages not committed on input and output topics (None: unknown)
    lag_topics: set[str] = field(default_factory=set)


def parse_progress(text: str) -> Progress:
    """Progress figures from a /metrics exposition (prometheus text format)."""
    progress = Progress()
    lag = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "blogpulse_events_consumed_total":
                progress.consumed += s.value
            elif s.name == "blogpulse_sink_rows_written_total":
                progress.rows += s.value
            elif s.name == "blogpulse_consumer_lag":
                lag += s.value
                progress.lag_topics.add(s.labels.get("topic", ""))
    if progress.lag_topics:
        progress.lag = lag
    return progress


def read_progress(port: int) -> Progress | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3) as resp:
            return parse_progress(resp.read().decode("utf-8"))
    except OSError:
        return None


def caught_up(p: Progress, published: int, output_topics) -> bool:
    """Everything published was consumed, and nothing is left uncommitted on the input topics nor
    on the output topics (the sink commits their offsets only after the database commit)."""
    watched = set(INPUT_TOPICS.values()) | set(output_topics)
    return p.consumed >= published and p.lag == 0 and watched <= p.lag_topics


# --- services -------------------------------------------------------------------------------------


def answers(address: str, timeout: float = 2.0) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _start_sink_at_ends(settings: Settings, db_url: str) -> None:
    """With a new group, a database that holds nothing yet starts at the end of the shared output
    topics as well (the sink's position is in the database, streams/sink.py). A database that
    already has positions keeps them; one deleted later reads the topics from the start."""
    from sinks.db import make_engine
    from sinks.upsert import read_offsets, store_offsets

    engine = make_engine(db_url)
    try:
        topics = list(settings.output_topics.values())
        if read_offsets(engine, topics):
            return
        admin = admin_client(settings, "blogpulse-demo")
        consumer = lookup_consumer(settings, "blogpulse-demo")
        try:
            ends = consumer.end_offsets(partitions_of(admin, topics))
        finally:
            consumer.close()
            admin.close()
        store_offsets(engine, {(tp.topic, tp.partition): o for tp, o in ends.items()})
    finally:
        engine.dispose()


def pick_web_port(settings: Settings) -> int:
    if "web_port" in settings.model_fields_set or port_free(settings.web_port):
        return settings.web_port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_broker(settings: Settings, say) -> bool:
    """True when the demo started the broker (and must stop it)."""
    first = settings.bootstrap_servers[0]
    if answers(first):
        say(f"Kafka broker answers on {first}")
        return False
    up = REPO / "deploy" / "local" / "up"
    if first.split(":")[0] not in ("127.0.0.1", "localhost") or not up.exists():
        raise DemoError(
            f"no Kafka broker answers on {settings.broker} (BLOGPULSE_BROKER); start "
            f"one, or unset BLOGPULSE_BROKER to let the demo start a local broker"
        )
    say(f"no broker on {first}: starting one with deploy/local/up kafka (first run fetches jars)")
    # On the port the settings point at (deploy/local reads BLOGPULSE_KAFKA_PORT).
    env = child_env(BLOGPULSE_KAFKA_PORT=first.rpartition(":")[2])
    if subprocess.run([str(up), "kafka"], cwd=REPO, env=env).returncode != 0:
        raise DemoError("deploy/local/up kafka failed (its message above says why)")
    return True


def stop_broker(settings: Settings, say) -> None:
    say("stopping the Kafka broker the demo started")
    env = child_env(BLOGPULSE_KAFKA_PORT=settings.bootstrap_servers[0].rpartition(":")[2])
    subprocess.run([str(REPO / "deploy" / "local" / "kafka"), "stop"], cwd=REPO, env=env)


def run_checked(cmd: list[str], env: dict[str, str], what: str) -> None:
    result = subprocess.run(cmd, cwd=os.getcwd(), env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise DemoError(f"{what} failed:\n{(result.stdout + result.stderr).strip()[-2000:]}")


class Worker:
    """`blogpulse worker` as a child process in its own session (Ctrl-C reaches only the demo,
    which then stops the worker cleanly)."""

    def __init__(self, env: dict[str, str], port: int, log_path: Path) -> None:
        self.port = port
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(
            [*CLI, "worker", "--loglevel", "warning"],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise DemoError(
                f"the worker exited with code {self.proc.returncode}; the end of "
                f"{self.log_path}:\n{self.log_tail()}"
            )

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            if read_progress(self.port) is not None:
                return
            time.sleep(0.5)
        raise DemoError(
            f"the worker's web port {self.port} did not answer in {timeout:.0f}s; "
            f"see {self.log_path}"
        )

    def stop(self) -> None:
        stop_process(self.proc)
        self._log.close()


# --- publishing -----------------------------------------------------------------------------------


class PublishJob(threading.Thread):
    """Publishes FILE in the background so the progress display keeps running."""

    def __init__(self, path: Path, settings: Settings) -> None:
        super().__init__(daemon=True)
        self.path, self.settings = path, settings
        self.published = 0
        self.done = False
        self.error: BaseException | None = None

    def _on_progress(self, counts) -> None:
        self.published = sum(counts.values())

    def run(self) -> None:
        try:
            from streams.publisher import publish_file

            self.published = publish_file(self.path, self.settings, on_progress=self._on_progress)
        except BaseException as exc:  # reported by the main thread
            self.error = exc
        finally:
            self.done = True


def published_posts(path: Path, settings: Settings) -> list[str]:
    """SITE/ID of every post in FILE, in first-seen order."""
    from schemas.readers import read_events

    seen: dict[str, None] = {}
    for event in read_events(path, keyer=settings.author_keyer):
        seen.setdefault(f"{event['site']}/{event['post_id']}")
    return list(seen)


# --- the command ----------------------------------------------------------------------------------


def run_demo(args: argparse.Namespace, base: Settings) -> int:
    out = sys.stdout

    def say(msg: str) -> None:
        print(f"demo: {msg}", file=out, flush=True)

    path = args.file or SAMPLE
    if not path.is_file():
        print(f"blogpulse demo: FILE {path} does not exist or is not a file", file=sys.stderr)
        return 2

    # The demo's own database and app id, unless the environment names them.
    db_url = base.db_url if "db" in base.model_fields_set else DEMO_DB
    app_id = base.app_id if "app_id" in base.model_fields_set else DEMO_APP_ID
    started_broker = False
    worker: Worker | None = None
    keep = False
    try:
        started_broker = ensure_broker(base, say)
        port = pick_web_port(base)
        env = child_env(
            str(REPO), BLOGPULSE_DB=db_url, BLOGPULSE_APP_ID=app_id, BLOGPULSE_WEB_PORT=str(port)
        )
        say(f"database {db_url}: blogpulse db upgrade")
        run_checked([*CLI, "db", "upgrade"], env, "blogpulse db upgrade")

        # A first demo on a broker that already carries blogpulse traffic: start at the end of
        # the shared topics, so the demo shows (and its database holds) its own events only.
        try:
            pinned = start_new_group_at_ends(
                base, app_id, [*INPUT_TOPICS.values(), TICK_TOPIC, *base.output_topics.values()]
            )
        except (BrokerUnavailable, KafkaError) as exc:
            raise DemoError(f"cannot set the demo's consumer group offsets: {exc}") from None
        if pinned:
            say(
                f"new consumer group {app_id}: starts at the end of {pinned} partitions of the "
                f"existing topics"
            )
            _start_sink_at_ends(base, db_url)
        say(f"starting the worker (app id {app_id}, log {Path(WORKER_LOG).resolve()})")
        worker = Worker(env, port, Path(WORKER_LOG).resolve())
        worker.wait_ready()
        say(f"worker up: metrics at http://127.0.0.1:{port}/metrics")

        say(f"publishing {path}")
        job = PublishJob(path, base)
        job.start()
        _follow(worker, job, args.timeout, out, list(base.output_topics.values()))

        say("summary from the database (blogpulse stats):")
        out.flush()
        stats = subprocess.run([*CLI, "stats"], env=env)
        if stats.returncode != 0:
            raise DemoError("blogpulse stats failed (its message above says why)")
        # Threads of the posts this run published (the sample set is one post).
        for post in published_posts(path, base)[:DETAIL_POSTS]:
            print(file=out, flush=True)
            if subprocess.run([*CLI, "stats", "--post", post], env=env).returncode != 0:
                raise DemoError(f"blogpulse stats --post {post} failed")
        print(f"\nmetrics:  http://127.0.0.1:{port}/metrics (while the worker runs)", file=out)
        print(f"database: {db_url}", file=out)
        print(f"worker log: {worker.log_path}", file=out)
        keep = args.keep_running
        if keep:
            say(
                f"--keep-running: worker pid {worker.proc.pid} keeps running (stop it with "
                f"kill {worker.proc.pid})"
                + ("; stop the broker with deploy/local/down kafka" if started_broker else "")
            )
        return 0
    except DemoError as exc:
        print(f"blogpulse demo: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ndemo: interrupted; stopping what the demo started", file=out)
        return 130
    finally:
        if not keep:
            if worker is not None:
                say("stopping the worker")
                worker.stop()
            if started_broker:
                stop_broker(base, say)


def _follow(worker: Worker, job: PublishJob, timeout: float, out, output_topics) -> None:
    """Live progress until the worker caught up with everything published."""
    tty = out.isatty()
    deadline = time.monotonic() + timeout
    settled_since: float | None = None
    last_line = ""
    last_print = 0.0
    while True:
        worker.check_alive()
        if job.error is not None:
            raise DemoError(f"publishing failed: {job.error}")
        p = read_progress(worker.port) or Progress()
        lag = "?" if p.lag is None else f"{p.lag:.0f}"
        line = (
            f"published {job.published:>6} | consumed {p.consumed:>6.0f} | "
            f"rows written {p.rows:>6.0f} | uncommitted {lag:>6}"
        )
        now = time.monotonic()
        if tty:
            print("\r" + line, end="", file=out, flush=True)
        elif line != last_line and now - last_print >= 2:
            print(line, file=out, flush=True)
            last_print = now
        last_line = line
        if job.done and caught_up(p, job.published, output_topics):
            # Two readings LAG_SETTLE apart: the second lag refresh ran after the consumption.
            settled_since = settled_since or now
            if now - settled_since >= LAG_SETTLE:
                print(("\r" if tty else "") + line, file=out, flush=True)
                return
        else:
            settled_since = None
        if now > deadline:
            raise DemoError(
                f"the worker did not catch up in {timeout:.0f}s ({line}); see {worker.log_path}"
            )
        time.sleep(0.5)
