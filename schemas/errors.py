"""The one base class of blogpulse's exceptions, here because every layer may import schemas/.

`blogpulse` (streams/cli.py) prints an expected error as one line, `blogpulse: <message>`, and
exits with its `exit_code`: 2 for a setting or usage the user must change, 1 for a failure at run
time (a broker that cannot be reached, a broken input file). Anything else is a bug and keeps its
traceback."""

from __future__ import annotations


class BlogpulseError(Exception):
    """An expected failure; the message says what went wrong and, where it can, what to do."""

    exit_code = 1


class SettingError(BlogpulseError, ValueError):
    """A setting (a BLOGPULSE_* variable or a command-line value) cannot be used; the message
    names it."""

    exit_code = 2
