"""The worker process: the faust app with the aggregation agent, faust's Prometheus sensor and
/metrics, and the database sink in a child process (streams/sink_process.py)."""

from __future__ import annotations

import asyncio
import logging

import faust

from streams import agents, faust_compat, gc_tuning, observability
from streams.app import create_app
from streams.settings import Settings

log = logging.getLogger(__name__)


async def _flush_held_events() -> None:
    """During a clean stop: write what the agent holds, again as long as the stop waits, so its
    events are acknowledged and faust's stop does not wait for them for ever (the agent's flush
    timer no longer runs then; streams/faust_compat.py, patch 4). A failed flush leaves its events
    unacknowledged: the next owner reads them again."""
    while True:
        try:
            async with agents._flush_lock:
                if agents.pending:
                    await agents.flush()
        except Exception:  # noqa: BLE001 - the stop goes on; faust's wait then times the rest
            log.exception("flush during the stop failed; its events stay unacknowledged")
            return
        await asyncio.sleep(agents.BATCH_WITHIN)


faust_compat.WHILE_WAIT_EMPTY.append(_flush_held_events)


def build(settings: Settings):
    """The worker's faust app with the aggregation agent and /metrics (consumer lag, top-N
    gauges; prometheus-client's default registry, faust's metrics and the product's own)."""
    app = create_app(settings)
    agents.register_agents(app, settings)
    inputs = [*settings.input_topics.values(), settings.tick_topic]
    observability.install(app, settings.output_topics.values(), inputs)
    return app


def run(settings: Settings, loglevel: str = "info") -> int:
    """Check faust, create missing topics with the configured partition count, then run until
    stopped. Refuses to start (FaustMismatch, exit 2) when the installed faust is not the one the
    patches in streams/faust_compat.py were written for (unless BLOGPULSE_FAUST_COMPAT=ignore)."""
    faust_compat.check(settings.faust_compat)
    from streams import sink_process
    from streams.publisher import ensure_topics

    app = build(settings)
    ensure_topics(settings, compacted=[agents.CHANGELOG_TOPIC])
    sink = sink_process.install(app)
    worker = faust.Worker(app, loglevel=loglevel)
    # faust's start-up spinner (shown at --loglevel warning and above) sets the root logger to
    # DEBUG so that it turns on every record: every aiokafka debug call then builds a LogRecord,
    # ~11 % of a busy worker's CPU (docs/performance.md). The log lines say more than a spinner.
    worker.spinner = None
    gc_tuning.tune()
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0)
    finally:
        sink.stop()
    return 0
