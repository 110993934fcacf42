"""Secrets and e-mail addresses stay out of the worker's log and /metrics: a run with an author-key
secret, a database password, a (unused) Kafka SASL password, events published from an export full of
e-mail addresses, bad events carrying e-mails, and a database outage (the code path that logs the
database URL)."""
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
                      b'{"status": "mallory@leak.example"}', b"not json mallory@leak.example"):
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

    outputs = {"worker log": log.read_bytes(), "/metrics": metrics,
               "publish output": published.stdout + published.stderr}
    for name, text in outputs.items():
        for secret in (author_secret, db_password, sasl_password):
            assert secret.encode() not in text, f"{secret!r} appears in the {name}"
        found = {m.group(0) for m in EMAIL.finditer(text)}
        assert not found, f"e-mail addresses in the {name}: {sorted(found)[:5]}"
    assert b"sink: database" in outputs["worker log"], "the outage path must have run for the scan to mean much"
