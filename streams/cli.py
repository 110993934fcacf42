"""The `blogpulse` command. Each command module registers its subcommands (a
`register(subparsers)` function); a subcommand's function gets the parsed arguments and the
settings, read from the environment here, once, when a command runs (so `--help` works whatever
the environment holds). An expected error (schemas.errors.BlogpulseError) is one line on stderr
and an exit code; anything else is a bug and keeps its traceback."""

from __future__ import annotations

import argparse
import importlib
import sys
from importlib.metadata import PackageNotFoundError, version

from schemas.errors import BlogpulseError
from streams.settings import load_settings

# Order is the order of `blogpulse --help`.
COMMAND_MODULES = (
    "streams.event_commands",
    "streams.commands",
    "streams.ingest.commands",
    "streams.database_commands",
    "streams.history_commands",
)


def _version() -> str:
    try:
        return version("blogpulse")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "(not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="blogpulse",
        description="Event-driven engagement pipeline for blogs: comments, replies, pingbacks and "
        "moderation changes from Kafka, aggregated per post and thread, written to SQL, exposed "
        "to Prometheus. Settings come from BLOGPULSE_* environment variables (docs/architecture.md).",
    )
    parser.add_argument("--version", action="version", version=f"blogpulse {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args, load_settings()) or 0)
    except BlogpulseError as exc:  # a bad setting (exit 2), a broker that does not answer (1)...
        print(f"blogpulse: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
