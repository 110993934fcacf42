"""`blogpulse worker`, as a module the benchmark can start with the interpreter it runs on."""

from __future__ import annotations

import sys

from streams.cli import main

if __name__ == "__main__":
    sys.exit(main(["worker", *sys.argv[1:]]))
