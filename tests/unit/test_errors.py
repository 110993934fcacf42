"""Every exception class of blogpulse derives from schemas.errors.BlogpulseError, so that the CLI
can turn each expected error into one line and an exit code (streams/cli.py)."""

from __future__ import annotations

import importlib
import inspect

from schemas.errors import BlogpulseError, SettingError
from tests.conftest import REPO

# Alembic's migration scripts run only inside Alembic.
SKIP = ("sinks.migrations",)


def _modules() -> list[str]:
    names = []
    for layer in ("schemas", "sinks", "streams"):
        for path in sorted((REPO / layer).rglob("*.py")):
            name = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
            if not name.startswith(SKIP):
                names.append(name)
    return names


def test_every_exception_class_derives_from_the_base():
    found = {}
    for name in _modules():
        module = importlib.import_module(name)  # also: no module needs the environment to import
        for cls_name, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == name and issubclass(cls, BaseException):
                found[f"{name}.{cls_name}"] = cls
    assert len(found) >= 17, sorted(found)
    outside = sorted(name for name, cls in found.items() if not issubclass(cls, BlogpulseError))
    assert not outside, f"derive these from schemas.errors.BlogpulseError: {outside}"


def test_bad_settings_exit_2_and_the_rest_1():
    from sinks.db import BadDatabaseUrl
    from streams.kafka_security import KafkaSecurityError
    from streams.publisher import BrokerUnavailable

    assert BadDatabaseUrl.exit_code == KafkaSecurityError.exit_code == SettingError.exit_code == 2
    assert BrokerUnavailable.exit_code == BlogpulseError.exit_code == 1
