"""The `blogpulse` command. Each package registers its own subcommands (a `register(subparsers)`
function in its `commands` module), so the command a user runs lives beside the code it drives."""
from __future__ import annotations

import argparse
import importlib
import sys

from streams.config import SettingError
from streams.kafka_security import KafkaSecurityError

# Order is the order of `blogpulse --help`.
COMMAND_MODULES = ("schemas.commands", "streams.commands", "streams.ingest.commands", "sinks.commands",
                   "streams.history_commands")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="blogpulse",
        description="Event-driven engagement pipeline for blogs: comments, replies, pingbacks and "
        "moderation changes from Kafka, aggregated per post and thread, written to SQL, exposed "
        "to Prometheus. Settings come from BLOGPULSE_* environment variables (docs/architecture.md).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (KafkaSecurityError, SettingError) as exc:  # a bad setting: say which, no traceback
        print(f"blogpulse: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
