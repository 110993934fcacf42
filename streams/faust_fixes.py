"""Fixes for faust-streaming bugs that lose events. Applied once, by streams.app, before the app
is built.

Seek before resume (faust/tables/recovery.py, Recovery.on_recovery_completed, 0.15.x): when table
recovery ends, faust resumes the stream partitions and *then* seeks them to their committed
offsets, waiting up to the broker request timeout for the seek. In between, the fetcher delivers
records from wherever the consumer stood, the agents process and acknowledge them, and the
consumer commits them. When the seek lands, faust's read offset (the last offset it handed to a
stream) has moved past records that the seek threw away from the fetch buffer; they come again
and are dropped as "already read", and the later offsets are committed over them. Seen in
tests/faults (worker restarted after SIGKILL): a run of ~10-15 records per input partition never
reached the agent, 40-170 entries missing from the totals. Seeking while the partitions are still
paused and resuming afterwards leaves no window: nothing is fetched until the positions and read
offsets agree."""
from __future__ import annotations

import asyncio
import inspect
import logging
from typing import Any, cast

from faust.tables.recovery import Recovery

log = logging.getLogger(__name__)

_applied = False


async def _on_recovery_completed(self: Recovery, generation_id: int = 0) -> None:
    """faust 0.15.3's Recovery.on_recovery_completed with perform_seek() moved before
    resume_partitions(); every other step is unchanged."""
    consumer = self.app.consumer
    self.log.info("Restore complete!")
    await self.app.on_rebalance_complete.send()
    self._set_recovery_ended()
    callback_coros = [
        asyncio.ensure_future(
            table.on_recovery_completed(
                self.actives_for_table[table], self.standbys_for_table[table]
            )
        )
        for table in self.tables.values()
    ]
    if callback_coros:
        await asyncio.wait(callback_coros)
    assignment = consumer.assignment()
    if self.app.consumer_generation_id != generation_id:
        self.log.warning(
            "Recovery rebalancing again app id %s param %s",
            self.app.consumer_generation_id, generation_id,
        )
        return
    if assignment:
        self.log.info("Seek stream partitions to committed offsets (still paused).")
        await self._wait(consumer.perform_seek(), timeout=self.app.conf.broker_request_timeout)
    consumer.resume_partitions({tp for tp in assignment if not self._is_changelog_tp(tp)})
    self.completed.set()
    self.app.flow_control.resume()
    consumer.resume_flow()
    await cast(Any, self.app)._fetcher.maybe_start()
    self.tables.on_actives_ready()
    if not self.app.assignor.assigned_standbys():
        self.tables.on_standbys_ready()
    self.app.on_rebalance_end()
    self.log.info("Worker ready")


def _original_resumes_before_seek() -> bool:
    """True while the installed faust still has the order this module fixes (so an upgrade that
    changes the method is noticed instead of silently replaced)."""
    source = inspect.getsource(Recovery.on_recovery_completed)
    resume, seek = source.find("consumer.resume_partitions("), source.find("perform_seek()")
    return 0 <= resume < seek


def apply() -> None:
    global _applied
    if _applied:
        return
    if not _original_resumes_before_seek():
        log.warning("faust's Recovery.on_recovery_completed changed; the seek-before-resume fix "
                    "in streams/faust_fixes.py is not applied (check the new code for the race)")
        return
    Recovery.on_recovery_completed = _on_recovery_completed  # type: ignore[method-assign]
    _applied = True
