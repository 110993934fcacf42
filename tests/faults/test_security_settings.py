"""Kafka TLS/SASL settings from the environment reach both clients, and the secrets stay out of reprs.
No services needed."""

from __future__ import annotations

import ssl

import faust
import pytest

from streams.settings import SettingError, Settings

SECRET = "s3cr3t-kafka-pw"


@pytest.fixture
def env(monkeypatch):
    for name in ("PROTOCOL", "MECHANISM", "USERNAME", "PASSWORD", "CAFILE", "CERTFILE", "KEYFILE"):
        monkeypatch.delenv(f"BLOGPULSE_KAFKA_SECURITY_{name}", raising=False)
        monkeypatch.delenv(f"BLOGPULSE_KAFKA_SASL_{name}", raising=False)
        monkeypatch.delenv(f"BLOGPULSE_KAFKA_SSL_{name}", raising=False)
    return monkeypatch


def test_default_is_plaintext(env):
    sec = Settings().kafka_security
    assert sec.kafka_python_config() == {"security_protocol": "PLAINTEXT"}
    assert sec.faust_credentials() is None


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_scram_over_plaintext(env, mechanism):
    env.setenv("BLOGPULSE_KAFKA_SECURITY_PROTOCOL", "sasl_plaintext")
    env.setenv("BLOGPULSE_KAFKA_SASL_MECHANISM", mechanism)
    env.setenv("BLOGPULSE_KAFKA_SASL_USERNAME", "pulse")
    env.setenv("BLOGPULSE_KAFKA_SASL_PASSWORD", SECRET)
    settings = Settings()
    cfg = settings.kafka_security.kafka_python_config()
    assert cfg == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": mechanism,
        "sasl_plain_username": "pulse",
        "sasl_plain_password": SECRET,
    }
    creds = settings.kafka_security.faust_credentials()
    assert isinstance(creds, faust.SASLCredentials)
    assert (creds.mechanism.value, creds.protocol.value, creds.username, creds.password) == (
        mechanism,
        "SASL_PLAINTEXT",
        "pulse",
        SECRET,
    )
    assert SECRET not in repr(settings)


def test_scram_over_tls_with_ca_file(env):
    ca = ssl.get_default_verify_paths().cafile
    if not ca:
        pytest.fail("the test needs the system CA bundle (ssl.get_default_verify_paths().cafile)")
    env.setenv("BLOGPULSE_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    env.setenv("BLOGPULSE_KAFKA_SASL_USERNAME", "pulse")
    env.setenv("BLOGPULSE_KAFKA_SASL_PASSWORD", SECRET)
    env.setenv("BLOGPULSE_KAFKA_SSL_CAFILE", ca)
    sec = Settings().kafka_security
    cfg = sec.kafka_python_config()
    assert cfg["security_protocol"] == "SASL_SSL" and cfg["sasl_mechanism"] == "SCRAM-SHA-512"
    assert isinstance(cfg["ssl_context"], ssl.SSLContext) and cfg["ssl_context"].check_hostname
    creds = sec.faust_credentials()
    assert creds.protocol.value == "SASL_SSL" and isinstance(creds.ssl_context, ssl.SSLContext)


def test_tls_only(env):
    env.setenv("BLOGPULSE_KAFKA_SECURITY_PROTOCOL", "SSL")
    creds = Settings().kafka_security.faust_credentials()
    assert isinstance(creds, faust.SSLCredentials) and creds.protocol.value == "SSL"


@pytest.mark.parametrize(
    "settings_env, names",
    [
        ({"BLOGPULSE_KAFKA_SECURITY_PROTOCOL": "SASL"}, "BLOGPULSE_KAFKA_SECURITY_PROTOCOL"),
        ({"BLOGPULSE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "BLOGPULSE_KAFKA_SASL_USERNAME"),
        (
            {
                "BLOGPULSE_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                "BLOGPULSE_KAFKA_SASL_USERNAME": "u",
                "BLOGPULSE_KAFKA_SASL_PASSWORD": SECRET,
                "BLOGPULSE_KAFKA_SASL_MECHANISM": "MD5",
            },
            "BLOGPULSE_KAFKA_SASL_MECHANISM",
        ),
        (
            {
                "BLOGPULSE_KAFKA_SECURITY_PROTOCOL": "SSL",
                "BLOGPULSE_KAFKA_SSL_CAFILE": "/nonexistent/ca.pem",
            },
            "BLOGPULSE_KAFKA_SSL_CAFILE",
        ),
        ({"BLOGPULSE_KAFKA_SSL_CAFILE": __file__}, "BLOGPULSE_KAFKA_SSL_CAFILE"),
    ],
)
def test_bad_settings_name_the_variable_and_hide_the_password(env, settings_env, names):
    for k, v in settings_env.items():
        env.setenv(k, v)
    with pytest.raises(SettingError) as exc:
        Settings()
    assert names in str(exc.value) and SECRET not in str(exc.value)


def test_db_password_not_in_settings_repr(env):
    env.setenv("BLOGPULSE_DB", "postgresql+psycopg://u:dbpw-9876@host/db")
    assert "dbpw-9876" not in repr(Settings())
