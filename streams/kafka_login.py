"""One TLS handshake and SASL login to a broker, to say in one line why Kafka refuses us.

Both Kafka clients hide the cause: kafka-python and aiokafka log a failed login or an untrusted
certificate and keep retrying until their bootstrap timeout (30 s), then report "unable to
bootstrap". The commands call check_login() first (through streams.publisher.check_reachable),
so a wrong password or a wrong CA fails in well under a second with the reason and the setting
to fix. The password never appears in a message."""

from __future__ import annotations

import asyncio
import ssl
import threading

from schemas.errors import BlogpulseError
from streams.kafka_security import KafkaSecurity


class KafkaLoginError(BlogpulseError, RuntimeError):
    """The broker answered but refused our TLS or SASL settings; the message says which."""


def check_login(host: str, port: int, security: KafkaSecurity, timeout: float = 10.0) -> None:
    """Raise KafkaLoginError if the broker at host:port rejects `security`; no-op for PLAINTEXT.
    A broker that does not answer in `timeout` seconds is left to the caller's own check."""
    if not (security.uses_tls or security.uses_sasl):
        return
    outcome: list[BaseException | None] = []
    # A thread of its own: callers may run inside an event loop (the ingest endpoint).
    worker = threading.Thread(
        target=lambda: outcome.append(_run(host, port, security, timeout)), daemon=True
    )
    worker.start()
    worker.join(timeout + 5)
    error = outcome[0] if outcome else None
    if error is not None:
        raise KafkaLoginError(explain(error, f"{host}:{port}", security)) from None


def _run(host: str, port: int, security: KafkaSecurity, timeout: float) -> BaseException | None:
    try:
        asyncio.run(asyncio.wait_for(_login(host, port, security), timeout))
    except (TimeoutError, ConnectionError):
        return None  # not a refusal: the caller reports an unreachable broker its own way
    except BaseException as exc:  # noqa: BLE001 (handed to explain())
        return exc
    return None


async def _login(host: str, port: int, security: KafkaSecurity) -> None:
    from aiokafka.conn import create_conn

    sasl = {}
    if security.uses_sasl:
        sasl = dict(
            sasl_mechanism=security.mechanism,
            sasl_plain_username=security.username,
            sasl_plain_password=security.password,
        )
    conn = await create_conn(
        host,
        port,
        client_id="blogpulse-login-check",
        security_protocol=security.protocol,
        ssl_context=security.ssl_context(),
        **sasl,
    )
    conn.close()


def explain(error: BaseException, where: str, security: KafkaSecurity) -> str:
    from aiokafka.errors import SaslAuthenticationFailed, UnsupportedSaslMechanismError

    if isinstance(error, ssl.SSLCertVerificationError):
        return (
            f"Kafka at {where}: TLS certificate not trusted ({error.verify_message}); set "
            "BLOGPULSE_KAFKA_SSL_CAFILE to the CA that signed the broker's certificate"
        )
    if isinstance(error, ssl.SSLError):
        return (
            f"Kafka at {where}: TLS handshake failed ({error.reason or error}); is "
            f"BLOGPULSE_KAFKA_SECURITY_PROTOCOL={security.protocol} right for this listener?"
        )
    if isinstance(error, SaslAuthenticationFailed):
        return (
            f"Kafka at {where} rejected the {security.mechanism} login of user "
            f"{security.username!r}: check BLOGPULSE_KAFKA_SASL_USERNAME and "
            "BLOGPULSE_KAFKA_SASL_PASSWORD"
        )
    if isinstance(error, UnsupportedSaslMechanismError):
        return (
            f"Kafka at {where} does not offer SASL mechanism {security.mechanism} "
            "(BLOGPULSE_KAFKA_SASL_MECHANISM)"
        )
    first = (str(error).splitlines() or [""])[0]
    return f"Kafka at {where} refused the connection: {type(error).__name__}: {first[:200]}"
