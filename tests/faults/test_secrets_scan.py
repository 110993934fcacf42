"""Secrets, e-mail addresses and IP addresses stay out of the worker's log, /metrics, the database
and the topics the worker writes: a run with an author-key secret, a database password, a (unused)
Kafka SASL password, events published from an export full of commenters' e-mail and IP addresses,
bad events carrying e-mails and an IP, and a database outage (the code path that logs the database
URL)."""
from __future__ import annotations

import re
import subprocess
import time

import sqlalchemy as sa
from kafka import KafkaProducer

from streams.config import INPUT_TOPICS
from tests.conftest import REPO
from tests.faults.harness import start_worker, stop_worker, wait_for_progress, Database
from tests.integration.worker_proc import CLI

EMAIL = re.compile(rb"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")
IPV4 = re.compile(rb"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?![\d.])")
# Addresses of the services themselves, which the worker's log names (broker, database, web port):
# not a person's. Any other IP in a log is a leak.
SERVICE_IPS = {b"127.0.0.1", b"0.0.0.0"}
SAMPLE = REPO / "schemas" / "sample" / "sample-export.xml"


def test_no_secret_or_email_in_log_or_metrics(kafka, postgres_server, unique, tmp_path):
    author_secret = f"author-secret-{unique}"
    db_password = f"dbpw{unique}"
    sasl_password = f"saslpw-{unique}"
    postgres_server.create_role(f"scan_{unique}", db_password)
    postgres_server.create_database(f"scan_{unique}", owner=f"scan_{unique}")
    db_url = f"postgresql+psycopg://scan_{unique}:{db_password}@127.0.0.1:{postgres_server.port}/scan_{unique}"
    emails = set(re.findall(rb"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", SAMPLE.read_bytes()))
    assert len(emails) >= 3, "the sample export should carry e-mail addresses"

    log = tmp_path / "worker.log"
    extra = {"BLOGPULSE_AUTHOR_SECRET": author_secret, "BLOGPULSE_KAFKA_SASL_PASSWORD": sasl_password}
    worker = start_worker(kafka.broker, f"scan-{unique}", db_url, log, **extra)
    db = Database(db_url, unique)
    try:
        wait_for_progress(db, -1, 120, [worker])
        published = subprocess.run([*CLI, "publish", str(SAMPLE), "--site", f"fault-{unique}-0.example"],
                                   cwd=REPO, env=worker.env, capture_output=True, timeout=120)
        assert published.returncode == 0, published.stderr.decode()[-2000:]
        # invalid events whose fields hold e-mail addresses: dead-lettered, must not be logged
        producer = KafkaProducer(bootstrap_servers=[kafka.broker])
        key = f"fault-{unique}-0.example/1".encode()
        for value in (b'{"type": "comment", "site": "x", "author_key": "eve@leak.example"}',
                      b'{"status": "mallory@leak.example", "ip": "203.0.113.9"}',
                      b"not json mallory@leak.example 198.51.100.7"):
            producer.send(INPUT_TOPICS["comment"], key=key, value=value)
        producer.flush(30)
        producer.close()
        wait_for_progress(db, 0, 120, [worker])

        postgres_server.stop()   # the sink logs the outage with the database URL
        again = subprocess.run([*CLI, "publish", str(SAMPLE), "--site", f"fault-{unique}-1.example"],
                               cwd=REPO, env=worker.env, capture_output=True, timeout=120)
        assert again.returncode == 0, again.stderr.decode()[-2000:]
        deadline = time.monotonic() + 30
        while b"sink: database" not in log.read_bytes() and time.monotonic() < deadline:
            time.sleep(0.5)
        postgres_server.start()
        time.sleep(3)
        worker.check_alive()
        metrics = worker.metrics().encode()
        for _ in range(3):
            metrics += b"\n" + worker.metrics().encode()
    finally:
        stop_worker(worker)
        db.dispose()
    tables = database_text(db_url)
    topics = written_topics_text(kafka.broker, f"scan-{unique}")
    assert f"fault-{unique}-0.example".encode() in tables, "the scan must see the rows it checks"
    assert f"fault-{unique}-0.example".encode() in topics, "the scan must see the records it checks"
    for name, text in (("database", tables), ("topics the worker writes", topics)):
        for secret in (author_secret, db_password, sasl_password):
            assert secret.encode() not in text, f"{secret!r} appears in the {name}"
        found = {m.group(0) for m in EMAIL.finditer(text)} | {m.group(0) for m in IPV4.finditer(text)}
        assert not found, f"e-mail or IP addresses in the {name}: {sorted(found)[:5]}"

    outputs = {"worker log": log.read_bytes(), "/metrics": metrics,
               "publish output": published.stdout + published.stderr}
    for name, text in outputs.items():
        for secret in (author_secret, db_password, sasl_password):
            assert secret.encode() not in text, f"{secret!r} appears in the {name}"
        found = {m.group(0) for m in EMAIL.finditer(text)}
        assert not found, f"e-mail addresses in the {name}: {sorted(found)[:5]}"
        ips = {m.group(0) for m in IPV4.finditer(text)} - SERVICE_IPS
        assert not ips, f"IP addresses in the {name}: {sorted(ips)[:5]}"
    assert b"sink: database" in outputs["worker log"], "the outage path must have run for the scan to mean much"


def database_text(db_url: str) -> bytes:
    """Every row of every table of the scan's database, as text."""
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            out = []
            for table in sa.inspect(conn).get_table_names():
                out += [repr(tuple(r)) for r in conn.execute(sa.text(f'select * from "{table}"'))]
    finally:
        engine.dispose()
    return "\n".join(out).encode()


def written_topics_text(broker: str, app_id: str) -> bytes:
    """Keys and values of every topic the worker writes: outputs, its changelogs and internal
    topics, ticks. Not the inputs (the test wrote raw invalid events there) nor the dead-letter
    topic (it keeps those bytes by contract, docs/security.md)."""
    from kafka import KafkaConsumer

    from streams.config import BASE_OUTPUT_TOPICS, TICK_TOPIC

    consumer = KafkaConsumer(bootstrap_servers=broker, auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=5000)
    try:
        topics = [t for t in consumer.topics()
                  if t in (*BASE_OUTPUT_TOPICS.values(), TICK_TOPIC) or t.startswith(app_id)]
        assert set(BASE_OUTPUT_TOPICS.values()) <= set(topics), topics
        consumer.subscribe(topics)
        return b"\n".join((m.key or b"") + b" " + (m.value or b"") for m in consumer)
    finally:
        consumer.close()
