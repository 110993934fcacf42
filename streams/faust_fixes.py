"""Fixes for faust-streaming bugs that lose events or stop commits, and for one per-message cost.
Applied once, by streams.app, before the app is built. Each replaces one faust method and is
applied only while the installed faust still has the code it fixes (checked on its source; a
warning otherwise).

1. Seek before resume (faust/tables/recovery.py, Recovery.on_recovery_completed, 0.15.x): when table
recovery ends, faust resumes the stream partitions and *then* seeks them to their committed
offsets, waiting up to the broker request timeout for the seek. In between, the fetcher delivers
records from wherever the consumer stood, the agents process and acknowledge them, and the
consumer commits them. When the seek lands, faust's read offset (the last offset it handed to a
stream) has moved past records that the seek threw away from the fetch buffer; they come again
and are dropped as "already read", and the later offsets are committed over them. Seen in
tests/faults (worker restarted after SIGKILL): a run of ~10-15 records per input partition never
reached the agent, 40-170 entries missing from the totals. Seeking while the partitions are still
paused and resuming afterwards leaves no window: nothing is fetched until the positions and read
offsets agree.

2. Commits over compacted offsets (faust/transport/consumer.py, Consumer._new_offset and _add_gap,
0.15.x): faust commits the longest run of acknowledged offsets after the committed one, counting
offsets that are known not to exist (a "gap": a compacted topic, or transaction markers) as done.
Its bookkeeping goes wrong once gaps appear: merging a gap appends its offsets to the acked list
even when they are there already, and only the first run of that list is removed at a commit, so
duplicates and offsets below the committed one stay in it for good. From then on each commit finds
the stale run first, computes an offset that is not new, and commits nothing; the list grows with
every acknowledged message and is sorted on every commit. Seen in the 1,000,000-event rebuild
(bench/reprocess_bench.py): the sink reads the compacted output topics 1 M messages behind their
head, the broker compacts under it; commits for engagement.posts and engagement.windows stopped,
the event loop then spent 97 % of its time sorting those lists (py-spy) and the rebuild never
finished. Also, faust's gap included the record that revealed it, so that record counted as done
before it was processed. Replaced by a walk from the committed offset over acknowledged offsets
and gaps (the gap now ends before the record that revealed it), which removes what it passed.

3. Four tasks per consumed message (mode's Service.wait_first, called by faust's
Consumer._drain_messages for every record as wait_first(callback(message),
suspend_flow.wait())): wait_first wraps each argument and the service's stopped/crashed events
in a task, waits for the first, and cancels the other three. The callback (hand the event to the
stream's queue) almost always finishes without waiting, so this machinery was the largest single
cost of faust's per-message path (docs/performance.md). The consumer's wait_first now runs the
first coroutine's first step itself; when that finishes it, the result is what wait_first would
have returned (the others are closed unstarted). When it has to wait (a full stream buffer), or
the service is stopping, the coroutine goes on inside mode's wait_first exactly as before, so
flow suspension during a rebalance still interrupts it.

4. Held events at a clean stop (faust/app/base.py, App._stop_consumer, 0.15.x): on SIGTERM faust
suspends the streams, stops the fetcher and its timers, then waits (`wait_empty`, no time limit)
until every message handed to a stream is acknowledged. The aggregation agent acknowledges events
only after the flush that wrote their effects (streams/agents.py, Pending), and a flush held back
while catching up is done by the next batch or by a timer, neither of which runs any more: the
stop waited until the process was killed (seen in the soak, tests/faults/test_soak.py: a SIGTERM
under load never finished; the test killed it after 60 s, Docker would after 10 s, and the group
then waited for the session timeout). The coroutine functions in WHILE_WAIT_EMPTY (the worker
registers one that flushes what the agent holds, streams/worker.py) run as tasks during that wait
and are cancelled after it: a batch the stream still hands to the agent after the first flush is
flushed too."""
from __future__ import annotations

import asyncio
import inspect
import logging
from typing import Any, cast

from faust.app.base import App
from faust.tables.recovery import Recovery
from faust.transport.consumer import Consumer
from faust.types import TP
from mode.services import Service, WaitResults

log = logging.getLogger(__name__)

_applied = False
# faust's methods that apply() replaced, by "Class.method" (the tests run them to show the bug).
replaced: dict[str, Any] = {}
# Coroutine functions run as tasks while faust waits for unacknowledged messages at a stop, and
# cancelled when it is done (fix 4).
WHILE_WAIT_EMPTY: list[Any] = []


async def _consumer_wait_empty(self: App, consumer: Any, logger: Any) -> None:
    """faust 0.15.3's App._consumer_wait_empty with the WHILE_WAIT_EMPTY tasks running."""
    tasks = [asyncio.ensure_future(fn()) for fn in WHILE_WAIT_EMPTY]
    try:
        await replaced["App._consumer_wait_empty"](self, consumer, logger)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _original_waits_without_flush() -> bool:
    """True while faust's stop waits for acknowledgements as described in fix 4."""
    stop, wait = inspect.getsource(App._stop_consumer), inspect.getsource(App._consumer_wait_empty)
    return ("await self._stop_fetcher()" in stop and "_consumer_wait_empty" in stop
            and "await consumer.wait_empty()" in wait)


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


def _new_offset(self: Consumer, tp: TP) -> int | None:
    """The offset to commit for tp (one past the last done offset), or None when the committed one
    is still the right one. Walks from the committed offset over acknowledged offsets and known
    gaps, then forgets what it walked over."""
    acked = self._acked[tp]
    if not acked:
        return None
    index, gaps = self._acked_index[tp], self._gap[tp]
    committed = self._committed_offset[tp]
    start = pos = min(acked) if committed is None else committed
    while True:
        if pos in index:
            pos += 1
        elif gaps and (covering := gaps.at(pos)):
            pos = max(interval.end for interval in covering)
        elif pos == start and committed is not None \
                and (after := _next_done(acked, gaps)) is not None and (after == pos + 1 or pos == 1):
            # Two holes in faust's gap records, both at the head: after a seek the read offset is
            # the committed offset itself, so a gap found by the first record read starts one
            # later (faust's own rule skipped that one offset); and the drain loop records no gap
            # after offset 0 (it tests the read offset for truth). A partition's records reach its
            # stream in order, so with a later offset done these cannot be records still waiting.
            pos = after
        else:
            break
    if pos == start:
        return None
    # acked and its index hold the same offsets (Consumer.ack adds to both); a gap can span
    # millions of offsets, so drop what the walk passed by what is held, not by the range.
    index.difference_update([offset for offset in acked if offset < pos])
    acked[:] = [offset for offset in acked if offset >= pos]
    if gaps:
        gaps.chop(0, pos)
    return pos


def _next_done(acked: list[int], gaps: Any) -> int | None:
    """The lowest offset known to be done (acked, or the start of a gap)."""
    candidates = [min(acked)] if acked else []
    if gaps:
        candidates.append(gaps.begin())
    return min(candidates, default=None)


async def _add_gap(self: Consumer, tp: TP, offset_from: int, offset_to: int) -> None:
    """Record that offsets offset_from .. offset_to - 1 do not exist: offset_to is the record
    that revealed the gap, and it is done only once it is processed and acknowledged."""
    committed = self._committed_offset[tp]
    if committed is not None:
        offset_from = max(offset_from, committed)
    if offset_from < offset_to:
        self._gap[tp].addi(offset_from, offset_to)


def _original_commit_bookkeeping() -> bool:
    """True while faust's _new_offset/_add_gap are the 0.15.x versions described above."""
    new_offset, add_gap = (inspect.getsource(Consumer._new_offset),
                           inspect.getsource(Consumer._add_gap))
    return ("acked.extend(stuff_to_add)" in new_offset and "consecutive_numbers" in new_offset
            and "offset_to + 1" in add_gap)


async def _wait_first(self: Consumer, *coros: Any, timeout: Any = None) -> WaitResults:
    """Service.wait_first with a fast path for a first coroutine that finishes without waiting."""
    first = coros[0] if coros else None
    if not asyncio.iscoroutine(first) or self._stopped.is_set() or self._crashed.is_set():
        return await _service_wait_first(self, *coros, timeout=timeout)
    try:
        yielded = first.send(None)
    except BaseException as exc:
        for other in coros[1:]:
            if asyncio.iscoroutine(other):
                other.close()  # never started: nothing to cancel
        if isinstance(exc, StopIteration):
            return WaitResults([first], [exc.value], False)
        raise
    return await _service_wait_first(self, _Continued(first, yielded), *coros[1:],
                                     timeout=timeout)


_service_wait_first = Service.wait_first


class _Continued:
    """Awaitable that goes on with a coroutine which already ran its first step and yielded
    `yielded` (what it waits on): that is handed to the task first, then the coroutine continues
    exactly as it would have in its own task (results, exceptions and cancellation pass through)."""

    def __init__(self, coro: Any, yielded: Any) -> None:
        self._coro, self._yielded = coro, yielded

    def __await__(self) -> Any:
        coro, value = self._coro, self._yielded
        while True:
            try:
                sent = yield value
            except BaseException as exc:  # noqa: B036 - cancellation goes to the coroutine
                try:
                    value = coro.throw(exc)
                except StopIteration as done:
                    return done.value
            else:
                try:
                    value = coro.send(sent)
                except StopIteration as done:
                    return done.value


def _original_wait_first() -> bool:
    """True while mode's wait_first is the one that makes a task per argument, and faust's drain
    loop calls it for each message."""
    wait_first = inspect.getsource(Service.wait_first)
    drain = inspect.getsource(Consumer._drain_messages).replace(" ", "").replace("\n", "")
    return ("futures[stopped] = asyncio.ensure_future" in wait_first
            and "self.wait_first(callback(message),self.suspend_flow.wait()" in drain)


def _replace(fits: bool, methods: list[tuple[type, str, Any]], warning: str) -> None:
    """Install the replacements (owner, method name, new function) when the installed faust
    still has the code they fix; else leave faust as it is and say so."""
    if not fits:
        log.warning(warning)
        return
    for owner, name, function in methods:
        replaced[f"{owner.__name__}.{name}"] = getattr(owner, name)
        setattr(owner, name, function)


def apply() -> None:
    global _applied
    if _applied:
        return
    _applied = True
    _replace(_original_resumes_before_seek(),
             [(Recovery, "on_recovery_completed", _on_recovery_completed)],
             "faust's Recovery.on_recovery_completed changed; the seek-before-resume fix "
             "in streams/faust_fixes.py is not applied (check the new code for the race)")
    _replace(_original_waits_without_flush(),
             [(App, "_consumer_wait_empty", _consumer_wait_empty)],
             "faust's App._stop_consumer changed; the flush-before-stop fix in "
             "streams/faust_fixes.py is not applied (check how a stop waits for acks)")
    _replace(_original_commit_bookkeeping(),
             [(Consumer, "_new_offset", _new_offset), (Consumer, "_add_gap", _add_gap)],
             "faust's Consumer._new_offset/_add_gap changed; the commit-over-gaps fix in "
             "streams/faust_fixes.py is not applied (check the new code)")
    _replace(_original_wait_first(), [(Consumer, "wait_first", _wait_first)],
             "mode's Service.wait_first or faust's drain loop changed; the per-message "
             "fast path in streams/faust_fixes.py is not applied")
