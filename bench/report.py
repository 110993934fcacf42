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
    return {"nproc": os.cpu_count(), "memory_mb": mem_mb, "cpu": cpu,
            "python": platform.python_version(), "kernel": platform.release()}


def rows(results: dict) -> list[tuple[str, str, str]]:
    """(figure, value, ratio to baseline) for every measured figure."""
    base = (results.get("baseline") or {}).get("events_per_s")
    out: list[tuple[str, str, str]] = []

    def rate(label: str, eps: float | None) -> None:
        if eps is None:
            out.append((label, "failed", "-"))
            return
        ratio = "-" if not base else (f"{eps / base:.2f}" if eps / base >= 0.1
                                      else f"{eps / base:.4f}")
        out.append((label, f"{eps:,.0f} events/s", ratio))

    if "baseline" in results:
        rate(f"baseline: aiokafka + orjson read ({results['baseline']['events']:,} events)", base)
    if "faust_floor" in results:
        rate(f"faust floor: no-op take_events agent + orjson ({results['faust_floor']['events']:,}"
             " events)", results["faust_floor"].get("events_per_s"))
    for key, label in (("e2e_1_worker", "blogpulse publish -> PostgreSQL, 1 worker"),
                       ("e2e_2_workers", "blogpulse publish -> PostgreSQL, 2 workers"),
                       ("e2e_rocksdb", "blogpulse publish -> PostgreSQL, 1 worker, RocksDB"),
                       ("memory_run_memory", "memory run: publish -> PostgreSQL, memory store"),
                       ("memory_run_rocksdb", "memory run: publish -> PostgreSQL, RocksDB")):
        r = results.get(key)
        if r:
            rate(f"{label} ({r['events']:,} events, {r['posts']:,} posts)", r.get("events_per_s"))
    if results.get("e2e_2_workers") and results.get("e2e_1_worker"):
        one, two = results["e2e_1_worker"].get("events_per_s"), \
            results["e2e_2_workers"].get("events_per_s")
        if one and two:
            out.append(("scaling: 2 workers / 1 worker", f"{two / one:.2f}x", "-"))
    for key, who in (("latency", "1 worker"), ("latency_2_workers", "2 workers")):
        lat = results.get(key)
        if not lat:
            continue
        for q in ("p50", "p95", "p99", "max"):
            value = lat.get(f"{q}_ms")
            out.append((f"latency publish -> PostgreSQL {q} at {lat['rate']:,} events/s, {who}",
                        "failed" if value is None else f"{value:,.0f} ms", "-"))
    for m in results.get("memory", []):
        value = m.get("peak_rss_mb")
        out.append((f"worker peak RSS, {m['store']} store ({m['events']:,} events, "
                    f"{m['posts']:,} posts)",
                    "failed" if value is None else f"{value:,.0f} MB", "-"))
    return out


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
