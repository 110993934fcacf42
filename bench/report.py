"""The results table and the JSON file."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import orjson

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_mb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_mb = int(line.split()[1]) // 1024
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "memory_mb": mem_mb,
        "cpu": cpu,
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def _eps(r: dict | None) -> float | None:
    return (r or {}).get("events_per_s")


def _ratio(a: float | None, b: float | None) -> str:
    if not a or not b:
        return "-"
    return f"{a / b:.2f}" if a / b >= 0.1 else f"{a / b:.4f}"


def rows(results: dict) -> list[tuple[str, str, str]]:
    """(figure, value, ratio to baseline) for every measured figure. The baseline is the first
    shape's (or an older result file's top-level one)."""
    shape_runs = results.get("shapes", [])
    base = _eps(results.get("baseline")) or next(
        (_eps(r.get("baseline")) for r in shape_runs if _eps(r.get("baseline"))), None
    )
    out: list[tuple[str, str, str]] = []

    def rate(label: str, eps: float | None) -> None:
        out.append(
            (
                label,
                "failed" if eps is None else f"{eps:,.0f} events/s",
                "-" if eps is None else _ratio(eps, base),
            )
        )

    for r in shape_runs:
        what = (
            f"shape {r['shape']} ({r['entries']:,} entries, {r['posts']:,} posts, "
            f"{r.get('store', 'memory')} store)"
        )
        one = _eps(r.get("e2e"))
        if "baseline" in r:
            rate(f"{what}: baseline, aiokafka + orjson read", _eps(r["baseline"]))
        if "floor" in r:
            rate(f"{what}: faust floor, no-op take_events agent + orjson", _eps(r["floor"]))
        if "floor_fixed" in r:
            rate(f"{what}: the same floor with blogpulse's faust fixes", _eps(r["floor_fixed"]))
        if "quix" in r:
            rate(f"{what}: Quix Streams app, RocksDB state", _eps(r["quix"]))
        if "e2e" in r:
            rate(f"{what}: blogpulse to the database, 1 worker (published before)", one)
        for key, name in (
            ("quix", "Quix"),
            ("floor", "faust floor"),
            ("floor_fixed", "floor with the fixes"),
        ):
            if key in r:
                out.append((f"{what}: blogpulse / {name}", _ratio(one, _eps(r[key])), "-"))
        # CPU per event does not depend on what else runs on the machine, events/s does
        cpu = (r.get("e2e") or {}).get("cpu_us_per_event") or {}
        if cpu.get("worker") is not None:
            out.append(
                (
                    f"{what}: CPU µs per event, blogpulse worker / its sink",
                    f"{cpu['worker']:,.0f} / {cpu.get('sink') or 0:,.0f}",
                    "-",
                )
            )
        for key, name in (
            ("floor", "faust floor"),
            ("floor_fixed", "floor with the fixes"),
            ("quix", "Quix"),
        ):
            theirs = (r.get(key) or {}).get("cpu_us_per_event")
            if theirs is not None:
                out.append((f"{what}: CPU µs per event, {name}", f"{theirs:,.0f}", "-"))
                if cpu.get("worker"):
                    out.append(
                        (
                            f"{what}: {name} CPU / blogpulse worker+sink CPU per event",
                            _ratio(theirs, cpu["worker"] + (cpu.get("sink") or 0)),
                            "-",
                        )
                    )
    for key, label in (
        ("e2e_1_worker", "blogpulse to the database, 1 worker"),
        ("e2e_2_workers", "blogpulse to the database, 2 workers (published before)"),
    ):
        r = results.get(key)
        if r:
            rate(f"{label} ({r['events']:,} events, {r['posts']:,} posts)", _eps(r))
    for r in _huge_runs(results):
        label = (
            f"huge, {r.get('store', 'memory')} store: to the database, 1 worker (published before)"
        )
        rate(f"{label} ({r['events']:,} events, {r['posts']:,} posts)", _eps(r))
    one, two = (
        _eps(results.get("e2e_1_worker") or (shape_runs[0].get("e2e") if shape_runs else None)),
        _eps(results.get("e2e_2_workers")),
    )
    if one and two:
        out.append(("scaling: 2 workers / 1 worker", f"{two / one:.2f}x", "-"))
    for key, who in (
        ("latency", "1 worker"),
        ("latency_high", "1 worker"),
        ("latency_2_workers", "2 workers"),
    ):
        lat = results.get(key)
        if not lat:
            continue
        for q in ("p50", "p95", "p99", "max"):
            value = lat.get(f"{q}_ms")
            out.append(
                (
                    f"latency publish -> database {q} at {lat['rate']:,} events/s, {who}",
                    "failed" if value is None else f"{value:,.0f} ms",
                    "-",
                )
            )
    pair = results.get("changelog_pair") or []
    for c in pair:
        value = c.get("bytes_per_event")
        out.append(
            (
                f"changelog bytes per event, {c['entries'] / c['posts']:,.0f} entries per "
                f"post ({c['entries']:,} events)",
                "failed" if value is None else f"{value:,.0f} B",
                "-",
            )
        )
    if len(pair) == 2 and all(c.get("bytes_per_event") for c in pair):
        out.append(
            (
                "changelog bytes per event: big posts / small posts",
                f"{pair[0]['bytes_per_event'] / pair[1]['bytes_per_event']:.1f}x",
                "-",
            )
        )
    for r in shape_runs:
        q = r.get("quix") or {}
        if q.get("changelog"):
            out.append(
                (
                    f"shape {r['shape']}: Quix changelog bytes per event / output messages "
                    f"per event",
                    f"{q['changelog']['bytes_per_event']:,.0f} B / "
                    f"{q['output_messages'] / q['events']:.2f}",
                    "-",
                )
            )
    for label, r in _memory_runs(results):
        value = (
            (r.get("peak_rss_mb") or [None])[0]
            if isinstance(r.get("peak_rss_mb"), list)
            else r.get("peak_rss_mb")
        )
        out.append((f"peak RSS, {label}", "failed" if value is None else f"{value:,.0f} MB", "-"))
    return out


def _huge_runs(results: dict) -> list[dict]:
    huge = results.get("huge") or []
    return huge if isinstance(huge, list) else [huge]  # one run, memory store, before --stores


def _memory_runs(results: dict):
    """(label, run) of every process whose VmHWM was taken."""
    for r in results.get("shapes", []):
        what = f"shape {r['shape']} ({r['entries']:,} entries, {r['posts']:,} posts)"
        if r.get("e2e"):
            yield f"blogpulse worker, {r['store']} store, {what}", r["e2e"]
        if r.get("quix"):
            yield f"Quix app, {what}", r["quix"]
    for r in _huge_runs(results):
        label = f"blogpulse worker, {r.get('store', 'memory')} store, huge"
        yield f"{label} ({r['events']:,} events, {r['posts']:,} posts)", r
    r = results.get("e2e_2_workers")
    if r:
        label = "blogpulse worker 1 of 2, memory store"
        yield f"{label} ({r['events']:,} events, {r['posts']:,} posts)", r
    for c in results.get("changelog_pair") or []:
        if str(c.get("shape", "")).startswith("cl"):  # runs of their own (shape runs: above)
            yield (
                (
                    f"blogpulse worker, memory store, changelog run ({c['entries']:,} events, "
                    f"{c['posts']:,} posts)"
                ),
                c,
            )
    for key, who in (
        ("latency", "1 worker"),
        ("latency_high", "1 worker"),
        ("latency_2_workers", "2 workers, the first"),
    ):
        lat = results.get(key)
        if lat and lat.get("peak_rss_mb"):
            yield f"blogpulse worker, latency at {lat['rate']:,} events/s, {who}", lat
    for m in results.get("memory", []):  # result files of older runs
        yield f"{m['store']} store ({m['events']:,} events, {m['posts']:,} posts)", m


def table(results: dict) -> str:
    data = rows(results)
    header = ("figure", "value", "ratio to baseline")
    widths = [max(len(r[i]) for r in data + [header]) for i in range(3)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in data]
    return "\n".join([line, sep, *body])


def save(results: dict, run_id: str) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{run_id}.json"
    path.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    return path
