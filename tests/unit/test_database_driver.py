"""PostgreSQL's driver is the `postgres` extra: SQLite users run without it, and a PostgreSQL URL
without it is a one-line error naming the extra. "Without it" is a subprocess where importing psycopg
fails, as it does when the package is not installed."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from sinks import db

REPO = Path(__file__).resolve().parents[2]
WITHOUT_PSYCOPG = (
    "import sys; sys.modules['psycopg'] = None; from streams.cli import main; sys.exit(main())"
)


def cli_without_psycopg(*args: str, db_url: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "BLOGPULSE_DB": db_url,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_PSYCOPG, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("command", [["db", "upgrade"], ["stats"], ["worker"]])
@pytest.mark.parametrize(
    "url",
    [
        "postgresql://blogpulse:pw@127.0.0.1:1/blogpulse",
        "postgresql+psycopg://blogpulse:pw@127.0.0.1:1/blogpulse",
    ],
)
def test_postgresql_url_without_the_driver_names_the_extra(tmp_path, command, url):
    result = cli_without_psycopg(*command, db_url=url, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "blogpulse: BLOGPULSE_DB is a PostgreSQL URL but its driver psycopg is not installed: "
        "install the postgres extra (pip install 'blogpulse[postgres]')"
    ]
    assert "pw" not in result.stderr  # the URL's password is never printed


def test_sqlite_needs_no_postgres_driver(tmp_path):
    result = cli_without_psycopg("db", "upgrade", db_url=f"sqlite:///{tmp_path}/s.db", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    result = cli_without_psycopg("stats", db_url=f"sqlite:///{tmp_path}/s.db", cwd=tmp_path)
    assert result.returncode == 0 and "no posts yet" in result.stdout, result.stderr


def test_plain_postgresql_url_uses_psycopg_3():
    # SQLAlchemy's default for postgresql:// is psycopg2, which blogpulse does not install.
    engine = db.make_engine("postgresql://u:p@127.0.0.1:1/d")
    assert engine.dialect.driver == "psycopg"
    assert db.make_engine("sqlite://").dialect.driver == "pysqlite"


def test_other_missing_drivers_are_one_line_errors():
    with pytest.raises(db.BadDatabaseUrl, match=r"BLOGPULSE_DB: the driver of postgresql\+nosuch"):
        db.make_engine("postgresql+nosuch://u:p@h/d")


def test_psycopg_is_an_extra_that_the_tests_pull_in():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert not any(d.startswith("psycopg") for d in project["dependencies"])
    extras = project["optional-dependencies"]
    assert any(d.startswith("psycopg[binary]") for d in extras["postgres"])
    assert "blogpulse[postgres]" in extras["test"]
