"""Secrets, e-mail addresses and IP addresses stay out of the worker's log, /metrics, the database
and the topics the worker writes, and out of the ingest endpoint's log and answers: a run with an
author-key secret, a database password, a (unused) Kafka SASL password, an ingest secret; events
published from the sample export and the shared WordPress test exports (../shared/wxr, their
commenters' and authors' e-mail and IP addresses), WordPress webhook deliveries carrying IPv4 and
IPv6 commenter addresses (accepted and refused ones), bad events carrying e-mails and IPs, and a
database outage (the code path that logs the database URL).

Two checks on every output: patterns (any e-mail address, any IPv4 or IPv6 address other than the
services' own) and the inputs' own personal data, literally and case-insensitively (which also
catches a non-ASCII address such as `ădmĩn@ℓocalhost.com` in one of the shared exports)."""

from __future__ import annotations

import ipaddress
import re
import subprocess
import time
import urllib.error
import urllib.request

import orjson
import sqlalchemy as sa
from kafka import KafkaProducer

from schemas.topic_names import INPUT_TOPICS
from streams.ingest.http import sign
from streams.process import stop_process
from tests.conftest import REPO, SHARED, free_port
from tests.faults.harness import Database, start_worker, stop_worker, wait_for_progress
from tests.integration.worker_proc import CLI

EMAIL = re.compile(rb"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")
IPV4 = re.compile(
    rb"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?![\d.])"
)
# Candidates only (a log's "21:47:26" has colons too): ipv6_addresses() keeps those that parse.
IPV6 = re.compile(
    rb"(?<![0-9A-Za-z:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|"
    rb"(?:\d{1,3}\.){3}\d{1,3})?(?![0-9A-Za-z:.])"
)
# Addresses of the services themselves, which the worker's log names (broker, database, web port):
# not a person's. Any other IP in a log is a leak.
SERVICE_IPS = {b"127.0.0.1", b"0.0.0.0", b"::", b"::1"}
SAMPLE = REPO / "schemas" / "sample" / "sample-export.xml"
# The shared WordPress importer test exports whose comments become events (the others hold none,
# are broken, or, wxr-with-sub-data, have a comment without any date, which is skipped).
SHARED_EXPORTS = [
    SHARED / "wxr" / f"{name}.xml"
    for name in (
        "slashes",
        "small-export",
        "test-serialized-comment-meta",
        "valid-wxr-1.0",
        "valid-wxr-1.1",
    )
]
# WordPress webhook deliveries (the ingest endpoint): the commenters' addresses in the row and in
# the proxy header. Documentation ranges (RFC 3849, RFC 5737).
WEBHOOK_IPS = [
    "2001:db8:85a3::8a2e:370:7334",
    "2001:0db8:0000:0000:0000:ff00:0042:8329",
    "::ffff:198.51.100.23",
    "203.0.113.77",
]
WEBHOOK_EMAILS = ["ipv6.reader@webhook.example", "Refused.Reader@Webhook.Example"]
EXPORT_PERSONAL = re.compile(
    rb"<wp:(?:comment_author_email|comment_author_IP|author_email)>(?:<!\[CDATA\[)?([^<\]]+)"
)


def export_personal_data(paths) -> set[bytes]:
    """Every commenter's and author's e-mail and IP address in the exports."""
    found: set[bytes] = set()
    for path in paths:
        found |= {m.group(1).strip() for m in EXPORT_PERSONAL.finditer(path.read_bytes())}
    return {v for v in found if v}


def ipv6_addresses(text: bytes) -> set[bytes]:
    out = set()
    for m in IPV6.finditer(text):
        try:
            ipaddress.IPv6Address(m.group(0).decode())
        except ValueError:
            continue
        out.add(m.group(0))
    return out


def leaks(text: bytes, personal: set[bytes]) -> list[bytes]:
    """E-mail and IP addresses in `text` (any, except the services' own), and any of the inputs'
    personal data, whatever its case."""
    found = {m.group(0) for m in EMAIL.finditer(text)}
    found |= ({m.group(0) for m in IPV4.finditer(text)} | ipv6_addresses(text)) - SERVICE_IPS
    folded = text.decode("utf-8", "replace").casefold()
    found |= {p for p in personal if p.decode().casefold() in folded}
    return sorted(found)


def test_no_secret_or_email_in_log_or_metrics(kafka, postgres_server, unique, tmp_path):
    author_secret = f"author-secret-{unique}"
    db_password = f"dbpw{unique}"
    sasl_password = f"saslpw-{unique}"
    postgres_server.create_role(f"scan_{unique}", db_password)
    postgres_server.create_database(f"scan_{unique}", owner=f"scan_{unique}")
    db_url = f"postgresql+psycopg://scan_{unique}:{db_password}@127.0.0.1:{postgres_server.port}/scan_{unique}"
    emails = set(re.findall(rb"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", SAMPLE.read_bytes()))
    assert len(emails) >= 3, "the sample export should carry e-mail addresses"
    # every shared export's addresses, also those of exports without comments (not published)
    personal = export_personal_data([SAMPLE, *sorted((SHARED / "wxr").glob("*.xml"))])
    personal |= {v.encode() for v in WEBHOOK_IPS + WEBHOOK_EMAILS}
    personal |= {
        b"eve@leak.example",
        b"mallory@leak.example",
        b"203.0.113.9",
        b"198.51.100.7",
        b"2001:db8::dead:beef",
    }
    assert {b"wapuu@wordpress.example", b"johndoe@example.org", b"192.0.2.11"} <= personal, (
        "the scan must know the exports' personal data"
    )
    ingest_secret = f"ingestsecret{unique}"

    log = tmp_path / "worker.log"
    extra = {
        "BLOGPULSE_AUTHOR_SECRET": author_secret,
        "BLOGPULSE_KAFKA_SASL_PASSWORD": sasl_password,
    }
    worker = start_worker(kafka.broker, f"scan-{unique}", db_url, log, **extra)
    db = Database(db_url, unique)
    try:
        wait_for_progress(db, -1, 120, [worker])
        published = subprocess.run(
            [*CLI, "publish", str(SAMPLE), "--site", f"fault-{unique}-0.example"],
            cwd=REPO,
            env=worker.env,
            capture_output=True,
            timeout=120,
        )
        assert published.returncode == 0, published.stderr.decode()[-2000:]
        for i, export in enumerate(SHARED_EXPORTS):
            shared = subprocess.run(
                [*CLI, "publish", str(export), "--site", f"fault-{unique}-s{i}.example"],
                cwd=REPO,
                env=worker.env,
                capture_output=True,
                timeout=120,
            )
            assert shared.returncode == 0, shared.stderr.decode()[-2000:]
            published.stdout += shared.stdout
            published.stderr += shared.stderr
        ingest_log = tmp_path / "ingest.log"
        answers = deliver_webhooks(
            worker.env, ingest_secret, f"fault-{unique}-w.example", ingest_log
        )
        # invalid events whose fields hold e-mail addresses: dead-lettered, must not be logged
        producer = KafkaProducer(bootstrap_servers=[kafka.broker])
        key = f"fault-{unique}-0.example/1".encode()
        for value in (
            b'{"type": "comment", "site": "x", "author_key": "eve@leak.example"}',
            b'{"status": "mallory@leak.example", "ip": "203.0.113.9"}',
            b"not json mallory@leak.example 198.51.100.7",
            b'{"type": "reply", "author_key": "2001:db8::dead:beef"}',
        ):
            producer.send(INPUT_TOPICS["comment"], key=key, value=value)
        producer.flush(30)
        producer.close()
        wait_for_progress(db, 0, 120, [worker])

        postgres_server.stop()  # the sink logs the outage with the database URL
        again = subprocess.run(
            [*CLI, "publish", str(SAMPLE), "--site", f"fault-{unique}-1.example"],
            cwd=REPO,
            env=worker.env,
            capture_output=True,
            timeout=120,
        )
        assert again.returncode == 0, again.stderr.decode()[-2000:]
        deadline = time.monotonic() + 30
        while b"sink: database" not in log.read_bytes() and time.monotonic() < deadline:
            time.sleep(0.5)
        postgres_server.start()
        sites = {
            f"fault-{unique}-{site}.example"
            for site in ["0", "1", *(f"s{i}" for i in range(len(SHARED_EXPORTS))), "w"]
        }
        wait_for_sites(db, sites, 120, worker)
        time.sleep(3)
        worker.check_alive()
        metrics = worker.metrics().encode()
        for _ in range(3):
            metrics += b"\n" + worker.metrics().encode()
    finally:
        stop_worker(worker)
        db.dispose()
    tables, scanned_tables = database_text(db_url)
    topics = written_topics_text(kafka.broker, f"scan-{unique}")
    # the scan must see what it checks: rows and records of every input (sample, shared exports,
    # webhooks), and the tables the sink writes
    for site in ["0", *(f"s{i}" for i in range(len(SHARED_EXPORTS))), "w"]:
        name = f"fault-{unique}-{site}.example".encode()
        assert name in tables, f"no database rows of {name!r}"
        assert name in topics, f"no output records of {name!r}"
    assert {"post_engagement", "thread_engagement", "engagement_window"} <= set(scanned_tables)
    outputs = {
        "database": tables,
        "topics the worker writes": topics,
        "worker log": log.read_bytes(),
        "/metrics": metrics,
        "publish output": published.stdout + published.stderr,
        "ingest log": ingest_log.read_bytes(),
        "ingest answers": answers,
    }
    for name, text in outputs.items():
        for secret in (author_secret, db_password, sasl_password, ingest_secret):
            assert secret.encode() not in text, f"{secret!r} appears in the {name}"
        if name == "ingest answers":
            # A refusal names the bad value (e.g. a status holding an e-mail address) to the
            # sender, which sent it: its own data, not a leak. Secrets only.
            continue
        found = leaks(text, personal)
        assert not found, f"e-mail or IP addresses in the {name}: {found[:5]}"
    assert b"sink: database" in outputs["worker log"], (
        "the outage path must have run for the scan to mean much"
    )
    assert b"/ingest/wordpress" in outputs["ingest log"], "the ingest log must show the deliveries"


def wait_for_sites(db: Database, sites: set[str], timeout: float, worker) -> None:
    """Until post_engagement has rows of every site (the sink is past the outage)."""
    deadline = time.monotonic() + timeout
    seen: set[str] = set()
    while time.monotonic() < deadline:
        worker.check_alive()
        try:
            with db.engine.connect() as conn:
                seen = set(
                    conn.execute(sa.text("select distinct site from post_engagement")).scalars()
                )
        except sa.exc.SQLAlchemyError:
            pass
        if sites <= seen:
            return
        time.sleep(0.5)
    raise AssertionError(f"no rows of {sorted(sites - seen)} after {timeout} s")


def test_leak_patterns_find_what_they_must():
    """The scan's own check: each kind of leak is found, service addresses and times are not."""
    assert leaks(b"at 2026-12-01 21:47:26,123 on 127.0.0.1:9092 and [::1]:80, ::", set()) == []
    for text in (
        b"x 2001:db8::1 y",
        b"(2001:0db8:0000:0000:0000:ff00:0042:8329)",
        b"from ::ffff:198.51.100.23",
        b"ip=203.0.113.9;",
        b"a@b.example",
    ):
        assert leaks(text, set()), text
    assert leaks("Ădmĩn@ℓocalhost.COM".encode(), {"ădmĩn@ℓocalhost.com".encode()})


def row(cid: int, email: str, ip: str, approved: str = "1") -> dict:
    """A wp_comments row as webhook plugins send it."""
    return {
        "comment_ID": str(cid),
        "comment_post_ID": "7",
        "comment_author": "A Reader",
        "comment_author_email": email,
        "comment_author_url": "",
        "comment_author_IP": ip,
        "comment_date_gmt": "2012-03-01 10:00:00",
        "comment_content": "Nice post",
        "comment_approved": approved,
        "comment_agent": "Mozilla/5.0",
        "comment_type": "",
        "comment_parent": "0",
        "user_id": "0",
    }


def deliver_webhooks(env: dict, secret: str, site: str, log) -> bytes:
    """Run `blogpulse ingest` and send it WordPress deliveries that carry commenters' IPv4 and IPv6
    addresses and e-mails (in the row and in X-Forwarded-For), accepted and refused (a status or a
    post id holding personal data, a bad signature). Returns the answers' bodies."""
    port = free_port()
    out = open(log, "wb")
    proc = subprocess.Popen(
        [*CLI, "ingest", "--port", str(port), "--site", site],
        cwd=REPO,
        env={**env, "BLOGPULSE_INGEST_SECRET": secret},
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    out.close()
    bodies = [
        (row(1, WEBHOOK_EMAILS[0], WEBHOOK_IPS[0]), 202),
        (row(2, WEBHOOK_EMAILS[0], WEBHOOK_IPS[1]), 202),
        (row(3, WEBHOOK_EMAILS[0], WEBHOOK_IPS[2]), 202),
        (row(4, WEBHOOK_EMAILS[1], WEBHOOK_IPS[3], approved=WEBHOOK_EMAILS[1]), 400),
        ({**row(5, WEBHOOK_EMAILS[1], WEBHOOK_IPS[0]), "comment_post_ID": WEBHOOK_IPS[0]}, 400),
    ]
    answers = []
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).read()
                break
            except OSError:
                assert proc.poll() is None, log.read_text(errors="replace")[-2000:]
                assert time.monotonic() < deadline, "the ingest endpoint did not answer"
                time.sleep(0.3)
        for body, expected in bodies + [(row(6, WEBHOOK_EMAILS[1], WEBHOOK_IPS[3]), 401)]:
            raw = orjson.dumps({**body, "hook": "comment_post"})
            signature = sign(secret.encode(), raw) if expected != 401 else "sha256=" + "0" * 64
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/ingest/wordpress",
                data=raw,
                method="POST",
                headers={
                    "Content-Type": "application/json",
                    "X-Blogpulse-Signature": signature,
                    "X-Forwarded-For": f"{body['comment_author_IP']}, 10.1.2.3",
                },
            )
            try:
                with urllib.request.urlopen(request, timeout=30) as answer:
                    status, text = answer.status, answer.read()
            except urllib.error.HTTPError as exc:
                status, text = exc.code, exc.read()
            assert status == expected, (status, text)
            answers.append(text)
    finally:
        stop_process(proc)
    return b"\n".join(answers)


def database_text(db_url: str) -> tuple[bytes, list[str]]:
    """Every column of every row of every table of the scan's database, as text; and the tables."""
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            out = []
            tables = sa.inspect(conn).get_table_names()
            for table in tables:
                out += [repr(tuple(r)) for r in conn.execute(sa.text(f'select * from "{table}"'))]
    finally:
        engine.dispose()
    return "\n".join(out).encode(), tables


def written_topics_text(broker: str, app_id: str) -> bytes:
    """Keys and values of every topic the worker writes: outputs, its changelogs and internal
    topics, ticks. Not the inputs (the test wrote raw invalid events there) nor the dead-letter
    topic (it keeps those bytes by contract, docs/security.md)."""
    from kafka import KafkaConsumer

    from schemas.topic_names import BASE_OUTPUT_TOPICS, TICK_TOPIC

    consumer = KafkaConsumer(
        bootstrap_servers=broker,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=5000,
    )
    try:
        topics = [
            t
            for t in consumer.topics()
            if t in (*BASE_OUTPUT_TOPICS.values(), TICK_TOPIC) or t.startswith(app_id)
        ]
        assert set(BASE_OUTPUT_TOPICS.values()) <= set(topics), topics
        consumer.subscribe(topics)
        return b"\n".join((m.key or b"") + b" " + (m.value or b"") for m in consumer)
    finally:
        consumer.close()
