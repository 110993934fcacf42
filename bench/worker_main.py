"""`blogpulse worker` with the database sink agent loaded, whatever the state of the
`import sinks.agent` line in streams/worker.py (importing it twice is harmless). The benchmark
needs the sink: its "done" signal is rows in PostgreSQL."""
from __future__ import annotations

import sys

import sinks.agent  # noqa: F401  (registers the sink agent on the app)
from streams.cli import main

if __name__ == "__main__":
    sys.exit(main(["worker", *sys.argv[1:]]))
