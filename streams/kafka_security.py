"""Kafka client security (TLS, SASL PLAIN/SCRAM) for both Kafka clients (read from the
BLOGPULSE_KAFKA_* variables by streams/settings.py):
faust/aiokafka in the worker (broker_credentials) and kafka-python in the publisher and admin.

The password is never part of a repr or an error message: settings objects end up in logs."""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass, field
from typing import Any

from schemas.errors import SettingError

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


class KafkaSecurityError(SettingError):
    """A Kafka security setting is wrong; the message names the environment variable."""


@dataclass(frozen=True)
class KafkaSecurity:
    protocol: str = "PLAINTEXT"
    mechanism: str = "SCRAM-SHA-512"
    username: str = ""
    password: str = field(default="", repr=False)
    cafile: str = ""  # CA bundle that signed the brokers' certificates (default: system CAs)
    certfile: str = ""  # client certificate (mutual TLS), PEM
    keyfile: str = ""  # its private key, PEM
    check_hostname: bool = True

    @property
    def uses_tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    def validate(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise KafkaSecurityError(
                f"BLOGPULSE_KAFKA_SECURITY_PROTOCOL: expected one of "
                f"{', '.join(PROTOCOLS)}, got {self.protocol!r:.40}"
            )
        if self.uses_sasl:
            if self.mechanism not in MECHANISMS:
                raise KafkaSecurityError(
                    f"BLOGPULSE_KAFKA_SASL_MECHANISM: expected one of "
                    f"{', '.join(MECHANISMS)}, got {self.mechanism!r:.40}"
                )
            if not self.username or not self.password:
                raise KafkaSecurityError(
                    "BLOGPULSE_KAFKA_SASL_USERNAME and BLOGPULSE_KAFKA_SASL_PASSWORD: expected both "
                    f"with BLOGPULSE_KAFKA_SECURITY_PROTOCOL={self.protocol}"
                )
        for var, path in (
            ("BLOGPULSE_KAFKA_SSL_CAFILE", self.cafile),
            ("BLOGPULSE_KAFKA_SSL_CERTFILE", self.certfile),
            ("BLOGPULSE_KAFKA_SSL_KEYFILE", self.keyfile),
        ):
            if path and not self.uses_tls:
                raise KafkaSecurityError(
                    f"{var}: expected unset with BLOGPULSE_KAFKA_SECURITY_PROTOCOL={self.protocol} "
                    f"(files are for SSL or SASL_SSL), got {path!r}"
                )
            if path and not os.path.isfile(path):
                raise KafkaSecurityError(f"{var}: expected the path of a file, got {path!r}")
        if bool(self.certfile) != bool(self.keyfile):
            raise KafkaSecurityError(
                "BLOGPULSE_KAFKA_SSL_CERTFILE and BLOGPULSE_KAFKA_SSL_KEYFILE: "
                "expected both or neither"
            )

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.uses_tls:
            return None
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.cafile or None)
        ctx.check_hostname = self.check_hostname
        if self.certfile:
            ctx.load_cert_chain(self.certfile, self.keyfile)
        return ctx

    def kafka_python_config(self) -> dict[str, Any]:
        """Keyword arguments for KafkaProducer/KafkaConsumer/KafkaAdminClient."""
        config: dict[str, Any] = {"security_protocol": self.protocol}
        if self.uses_tls:
            config["ssl_context"] = self.ssl_context()
            config["ssl_check_hostname"] = self.check_hostname
        if self.uses_sasl:
            config.update(
                sasl_mechanism=self.mechanism,
                sasl_plain_username=self.username,
                sasl_plain_password=self.password,
            )
        return config

    def aiokafka_config(self) -> dict[str, Any]:
        """Keyword arguments for AIOKafkaConsumer/AIOKafkaProducer (the sink and the state loader
        use aiokafka directly, as faust does)."""
        config: dict[str, Any] = {"security_protocol": self.protocol}
        if self.uses_tls:
            config["ssl_context"] = self.ssl_context()
        if self.uses_sasl:
            config.update(
                sasl_mechanism=self.mechanism,
                sasl_plain_username=self.username,
                sasl_plain_password=self.password,
            )
        return config

    def faust_credentials(self):
        """faust broker_credentials (None for PLAINTEXT)."""
        import faust

        if self.uses_sasl:
            return faust.SASLCredentials(
                username=self.username,
                password=self.password,
                mechanism=self.mechanism,
                ssl_context=self.ssl_context(),
            )
        if self.uses_tls:
            return faust.SSLCredentials(self.ssl_context())
        return None
