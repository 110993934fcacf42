"""py-spy on a running worker: a raw (collapsed stacks) profile file and its top functions by
inclusive share, for docs/performance.md. Optional: needs `pip install py-spy`."""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from pathlib import Path


def start(pid: int, out: Path, seconds: float, rate: int = 100) -> subprocess.Popen | None:
    exe = shutil.which("py-spy")
    if exe is None:
        print("note: py-spy not installed (pip install py-spy): no worker profile")
        return None
    return subprocess.Popen(
        [
            exe,
            "record",
            "-p",
            str(pid),
            "-f",
            "raw",
            "-o",
            str(out),
            "-d",
            str(int(seconds)),
            "-r",
            str(rate),
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def summary(raw: Path, top: int = 40) -> list[tuple[float, str]]:
    """(percent of samples, function file) by inclusive time; a function counts once per stack."""
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        if not line.strip():
            continue
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue  # a frame name with a line break in it splits a stack over two lines
        n = int(count)
        total += n
        seen = set()
        for frame in stack.split(";"):
            name, _, where = frame.partition(" (")
            key = f"{name} ({where.split(':')[0].rsplit('/', 1)[-1]}" + ")" if where else name
            if key not in seen:
                seen.add(key)
                inclusive[key] += n
    return [(round(100 * n / total, 1), k) for k, n in inclusive.most_common(top)] if total else []
