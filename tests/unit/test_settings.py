"""streams/settings.py through the real CLI: every setting with a bad value is one line on
stderr and exit 2 (parametrized over the model's fields, so a new field is tried too), and
`--help` works whatever the environment holds."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from streams.cli import build_parser
from streams.settings import SettingError, Settings, env_name
from tests.conftest import REPO, free_port

FIELDS = list(Settings.model_fields)


def _extra(field: str) -> dict:
    return Settings.model_fields[field].json_schema_extra or {}


BAD = {field: _extra(field)["bad"] for field in FIELDS if _extra(field).get("bad") is not None}


def _env(**variables: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("BLOGPULSE_") and k != "XDG_STATE_HOME"
    }
    # Should a bad value get through, the worker stops at once: no broker answers there.
    env.update(
        PYTHONPATH=str(REPO), BLOGPULSE_BROKER=f"127.0.0.1:{free_port()}", BLOGPULSE_DB="sqlite://"
    )
    env.update(variables)
    return env


def _cli(*args: str, **variables: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(**variables),
    )


def test_every_field_is_declared_with_what_it_expects():
    for field in FIELDS:
        extra = _extra(field)
        assert extra.get("expected") and "bad" in extra, (
            f"Settings.{field}: declare it with setting(default, expected, bad)"
        )


@pytest.mark.parametrize("field", BAD)
def test_a_bad_value_is_one_line_and_exit_2(field):
    var, bad = env_name(field), BAD[field]
    done = _cli("worker", **{var: bad})
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr[-2000:])
    expected = _extra(field)["expected"]
    assert done.stderr.splitlines() == [f"blogpulse: {var}: expected {expected}, got {bad!r}"]
    assert done.stdout == ""


def test_help_and_version_work_whatever_the_environment_holds():
    bad = {env_name(field): value for field, value in BAD.items()}
    commands = build_parser()._subparsers._group_actions[0].choices
    for args in [("--help",), *((name, "--help") for name in commands)]:
        done = _cli(*args, **bad)
        assert done.returncode == 0 and "usage: blogpulse" in done.stdout, (args, done.stderr)
    done = _cli("--version", **bad)
    assert done.returncode == 0 and done.stdout.startswith("blogpulse "), done.stderr


@pytest.mark.parametrize(
    "variables, line",
    [
        (
            {"BLOGPULSE_REPLICATION_FACTOR": "2", "BLOGPULSE_MIN_INSYNC_REPLICAS": "3"},
            "BLOGPULSE_MIN_INSYNC_REPLICAS: expected 1..BLOGPULSE_REPLICATION_FACTOR (2), got '3'",
        ),
        (
            {"BLOGPULSE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"},
            "BLOGPULSE_KAFKA_SASL_USERNAME and BLOGPULSE_KAFKA_SASL_PASSWORD: expected both with "
            "BLOGPULSE_KAFKA_SECURITY_PROTOCOL=SASL_SSL",
        ),
        (
            {"BLOGPULSE_KAFKA_SSL_CAFILE": __file__},
            f"BLOGPULSE_KAFKA_SSL_CAFILE: expected unset with BLOGPULSE_KAFKA_SECURITY_PROTOCOL=PLAINTEXT "
            f"(files are for SSL or SASL_SSL), got {__file__!r}",
        ),
    ],
)
def test_rules_between_settings_are_one_line_too(variables, line):
    done = _cli("stats", **variables)
    assert (done.returncode, done.stderr.splitlines()) == (2, [f"blogpulse: {line}"])


def test_secrets_stay_out_of_the_line():
    done = _cli("stats", BLOGPULSE_DB="postgresql//user:pw-1234@db.example/x")
    assert (
        done.returncode == 2 and "pw-1234" not in done.stderr and "***@db.example/x" in done.stderr
    )


def test_empty_means_unset_and_blanks_are_stripped(monkeypatch):
    for name in ("BLOGPULSE_PARTITIONS", "BLOGPULSE_APP_ID", "BLOGPULSE_KAFKA_SASL_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BLOGPULSE_PARTITIONS", "")
    monkeypatch.setenv("BLOGPULSE_APP_ID", "  pulse ")
    monkeypatch.setenv("BLOGPULSE_KAFKA_SASL_PASSWORD", "ends in a space ")
    s = Settings()
    assert (s.partitions, s.app_id, s.kafka_sasl_password) == (4, "pulse", "ends in a space ")
    assert "partitions" not in s.model_fields_set and "app_id" in s.model_fields_set


def test_values_given_in_code_are_validated_too():
    with pytest.raises(SettingError, match="BLOGPULSE_PARTITIONS: expected an integer >= 1"):
        Settings(partitions=0)
    assert Settings(generation=3).output_topics["posts"] == "engagement.posts.g3"
    assert Settings(generation=3, app_id="bp").sink_group == "bp-g3-sink"


def test_faust_keeps_its_data_directory_with_the_worker_state(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    state = tmp_path / "state"
    monkeypatch.setenv("XDG_STATE_HOME", str(state))
    s = Settings(app_id="bp", generation=2)
    from streams.app import create_app

    app = create_app(s)
    assert app.conf.datadir == state / "blogpulse" / "faust" / "bp-g2"
    app._create_directories()  # what the worker does at start
    assert (state / "blogpulse" / "faust" / "bp-g2").is_dir()
    assert list(tmp_path.iterdir()) == [state]  # nothing in the working directory
