"""blogpulse against a broker that only lets clients in over SASL_SSL (SCRAM-SHA-512, TLS with a CA
made at start; tests/faults/services.py SecureKafka): publish, the ingest endpoint, replay, the
worker and a reprocess rebuild end to end with rows in the database; and a wrong password or an
untrusted certificate fails in one line, in seconds, for each command."""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import select

from sinks import db, generations
from tests.conftest import REPO, free_port
from tests.integration.worker_proc import CLI, running_worker, wait_until, worker_env

SAMPLE = REPO / "schemas" / "sample" / "sample-export.xml"
SECRET = "sasl-ssl-author-secret"
INGEST_SECRET = "sasl-ssl-ingest-secret"
COLUMNS = (
    "post_id",
    "comments",
    "replies",
    "pingbacks",
    "trackbacks",
    "threads",
    "participants",
    "max_depth",
)


def _env(secure_kafka, db_url: str = "sqlite://", **override: str) -> dict[str, str]:
    env = worker_env(
        secure_kafka.broker,
        "sasl-unused",
        0,
        db_url,
        BLOGPULSE_AUTHOR_SECRET=SECRET,
        BLOGPULSE_INGEST_SECRET=INGEST_SECRET,
        **secure_kafka.client_env,
    )
    env.pop("BLOGPULSE_WEB_PORT")
    env.update(override)
    return env


def _cli(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLI, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )


def _posts(db_url: str, site: str, generation: int = 1) -> set[tuple]:
    engine = db.make_engine(db_url)
    try:
        table = generations.tables_for(generation).aggregates["posts"]
        with engine.connect() as conn:
            return set(
                conn.execute(
                    select(*(table.c[c] for c in COLUMNS)).where(table.c.site == site)
                ).all()
            )
    except Exception:  # tables not there yet (the worker migrates at start)
        return set()
    finally:
        engine.dispose()


def _ingest_one_comment(env: dict[str, str], site: str, log: Path) -> dict:
    """Start `blogpulse ingest`, POST one signed WordPress delivery, return the 202 answer."""
    port = free_port()
    body = json.dumps(
        {
            "hook": "comment_post",
            "comment_ID": "42",
            "comment_post_ID": "7",
            "comment_parent": "0",
            "comment_type": "",
            "comment_approved": "1",
            "comment_date_gmt": "2024-05-01 09:30:00",
            "comment_author": "Reader",
            "comment_author_email": "reader@example.org",
            "comment_author_url": "",
            "user_id": "0",
            "post_author": "1",
        }
    ).encode()
    sig = "sha256=" + hmac.new(INGEST_SECRET.encode(), body, hashlib.sha256).hexdigest()
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [*CLI, "ingest", "--port", str(port), "--site", site],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()[-2000:]
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline, log.read_text()[-2000:]
                time.sleep(0.3)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/ingest/wordpress",
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "X-Blogpulse-Signature": sig},
        )
        with urllib.request.urlopen(request, timeout=60) as answer:
            assert answer.status == 202
            return json.loads(answer.read())
    finally:
        proc.terminate()
        proc.wait(30)


def test_every_command_end_to_end_over_sasl_ssl(secure_kafka, unique, tmp_path):
    published_site, ingested_site, replayed_site = (f"sasl-{unique}-{n}.example" for n in "pir")
    env = _env(secure_kafka)

    done = _cli(env, "publish", str(SAMPLE), "--site", published_site)
    assert done.returncode == 0, done.stderr[-2000:]
    assert _ingest_one_comment(env, ingested_site, tmp_path / "ingest.log")["accepted"] == 1
    done = _cli(env, "replay", str(SAMPLE), "--site", replayed_site)
    assert done.returncode == 0, done.stderr[-2000:]

    db_url = f"sqlite:///{tmp_path / 'sink.db'}"
    app_id = f"sasl-{unique}"
    with running_worker(
        secure_kafka.broker,
        app_id,
        db_url,
        tmp_path / "worker.log",
        BLOGPULSE_AUTHOR_SECRET=SECRET,
        **secure_kafka.client_env,
    ) as worker:
        # published and replayed: the same export under two sites, so the same rows once both
        # are complete (read afresh each time: the first rows are partial)
        def same_rows():
            published = _posts(db_url, published_site)
            return published if published and published == _posts(db_url, replayed_site) else None

        published = wait_until(same_rows, 180, "published and replayed rows equal", worker)
        wait_until(
            lambda: {r[:2] for r in _posts(db_url, ingested_site)} == {(7, 1)},
            180,
            "the ingested comment",
            worker,
        )
        assert sum(r[1] for r in published) > 0

        env = _env(secure_kafka, db_url, BLOGPULSE_APP_ID=app_id)
        done = _cli(
            env, "reprocess", "start", "--timeout", "240", "--log", str(tmp_path / "g2.log")
        )
        assert done.returncode == 0, (
            done.stdout + done.stderr + (tmp_path / "g2.log").read_text()[-3000:]
        )
        assert "generation 2 has caught up" in done.stdout
        worker.check_alive()
    for site in (published_site, replayed_site, ingested_site):
        assert _posts(db_url, site, generation=2) == _posts(db_url, site)


def _other_ca(tmp_path: Path) -> Path:
    """A CA that did not sign the broker's certificate."""
    key, pem = tmp_path / "other-ca.key", tmp_path / "other-ca.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=not the broker's CA",
            "-keyout",
            str(key),
            "-out",
            str(pem),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return pem


COMMANDS = {
    "publish": ("publish", str(SAMPLE), "--site", "refused.example"),
    "replay": ("replay", str(SAMPLE), "--site", "refused.example"),
    "worker": ("worker",),
    "reprocess": ("reprocess", "start", "--timeout", "60"),
}


@pytest.mark.parametrize("refusal", ["wrong password", "untrusted certificate"])
def test_refused_login_is_one_clear_line(secure_kafka, refusal, tmp_path):
    if refusal == "wrong password":
        override = {"BLOGPULSE_KAFKA_SASL_PASSWORD": "not-" + secure_kafka.password}
        expected = "rejected the SCRAM-SHA-512 login of user 'blogpulse'"
    else:
        override = {"BLOGPULSE_KAFKA_SSL_CAFILE": str(_other_ca(tmp_path))}
        expected = "TLS certificate not trusted"
    env = _env(
        secure_kafka,
        f"sqlite:///{tmp_path / 'refused.db'}",
        BLOGPULSE_WEB_PORT=str(free_port()),
        **override,
    )
    for name, args in COMMANDS.items():
        t0 = time.monotonic()
        done = _cli(env, *args, timeout=60)
        took = time.monotonic() - t0
        lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
        assert done.returncode == 1, (name, done.returncode, lines)
        assert len(lines) == 1 and expected in lines[0], (name, lines)
        assert secure_kafka.password not in lines[0]
        assert took < 20, (name, took)
