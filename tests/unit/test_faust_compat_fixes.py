"""streams/faust_compat.py: stream partitions are seeked to their committed offsets before they are
resumed when table recovery ends (the other order let the fetcher run ahead of the seek and lose
records, see the module docstring)."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from types import SimpleNamespace

from faust.tables.recovery import Recovery
from faust.transport.consumer import Consumer
from faust.types import TP
from intervaltree import IntervalTree

import streams.app  # noqa: F401  (applies the fixes)
from streams import faust_compat


class FakeConsumer:
    def __init__(self, calls: list) -> None:
        self.calls = calls

    def assignment(self):
        return {TP("blog.comments", 0), TP("app-post-state-changelog", 0)}

    async def perform_seek(self) -> None:
        self.calls.append("seek")
        await asyncio.sleep(0)

    def resume_partitions(self, tps) -> None:
        self.calls.append(("resume", sorted(tp.topic for tp in tps)))

    def resume_flow(self) -> None:
        self.calls.append("resume_flow")


def _recovery(calls: list) -> SimpleNamespace:
    async def nothing(*args, **kwargs):
        return None

    async def wait(coro, timeout=None):
        await coro

    app = SimpleNamespace(
        consumer=FakeConsumer(calls),
        consumer_generation_id=3,
        on_rebalance_complete=SimpleNamespace(send=nothing),
        conf=SimpleNamespace(broker_request_timeout=1.0),
        flow_control=SimpleNamespace(resume=lambda: calls.append("flow_control")),
        _fetcher=SimpleNamespace(maybe_start=nothing),
        assignor=SimpleNamespace(assigned_standbys=lambda: set()),
        on_rebalance_end=lambda: None,
    )
    return SimpleNamespace(
        app=app,
        log=SimpleNamespace(info=lambda *a: None, warning=lambda *a: None),
        _set_recovery_ended=lambda: None,
        tables={},
        _wait=wait,
        _is_changelog_tp=lambda tp: tp.topic.endswith("-changelog"),
        completed=SimpleNamespace(set=lambda: calls.append("completed")),
        actives_for_table={},
        standbys_for_table={},
    )


def test_the_fix_is_installed():
    assert Recovery.on_recovery_completed is faust_compat._on_recovery_completed


def test_seek_happens_before_stream_partitions_resume():
    calls: list = []
    rec = _recovery(calls)
    rec.tables = SimpleNamespace(
        values=lambda: [], on_actives_ready=lambda: None, on_standbys_ready=lambda: None
    )
    asyncio.run(faust_compat._on_recovery_completed(rec, generation_id=3))
    assert calls[:2] == ["seek", ("resume", ["blog.comments"])]
    assert calls.index("flow_control") > calls.index("seek")


def test_nothing_resumes_when_a_new_rebalance_started():
    calls: list = []
    rec = _recovery(calls)
    rec.tables = SimpleNamespace(
        values=lambda: [], on_actives_ready=lambda: None, on_standbys_ready=lambda: None
    )
    asyncio.run(faust_compat._on_recovery_completed(rec, generation_id=2))  # app is at 3
    assert calls == []


# --- commits over compacted offsets ---------------------------------------------------------------


class Partition:
    """One partition as faust's consumer sees it: the same bookkeeping as Consumer (acked list and
    index, gap tree, committed and read offsets), driven like faust drives it -- the drain loop's
    gap rule on every record read, ack()'s rule on every acknowledged one, a commit now and then --
    with the Consumer methods under test bound to it."""

    TP = TP("engagement.posts", 0)

    def __init__(self, new_offset, add_gap, committed: int | None = None) -> None:
        self._acked, self._acked_index = defaultdict(list), defaultdict(set)
        self._gap = defaultdict(IntervalTree)
        self._committed_offset = defaultdict(lambda: None)
        self._committed_offset[self.TP] = committed
        self.read = committed  # faust: after a seek the read offset is the committed offset
        self._new_offset_fn, self._add_gap_fn = new_offset, add_gap

    def read_record(self, offset: int) -> None:  # Consumer._drain_messages
        gap = offset - (self.read or 0)
        if gap > 1 and self.read:
            asyncio.run(self._add_gap_fn(self, self.TP, self.read + 1, offset))
        self.read = offset

    def ack(self, offset: int) -> None:  # Consumer.ack
        committed = self._committed_offset[self.TP]
        if (committed is None or offset >= committed) and offset not in self._acked_index[self.TP]:
            self._acked_index[self.TP].add(offset)
            self._acked[self.TP].append(offset)

    def commit(self) -> int | None:  # Consumer._filter_committable_offsets + _commit_offsets
        offset = self._new_offset_fn(self, self.TP)
        committed = self._committed_offset[self.TP]
        if offset is not None and (committed is None or offset > committed):
            self._committed_offset[self.TP] = offset
        return self._committed_offset[self.TP]


def _consume(partition: Partition, offsets: list[int], rnd: random.Random) -> None:
    """Read ahead, ack in order in batches, commit at random moments; checks at every commit that
    it does not pass a record not yet acknowledged."""
    unacked: list[int] = []
    acked: set[int] = set()
    i = 0
    while i < len(offsets) or unacked:
        for _ in range(rnd.randint(0, 40)):
            if i < len(offsets):
                partition.read_record(offsets[i])
                unacked.append(offsets[i])
                i += 1
        batch = unacked[: rnd.randint(0, 30)]
        del unacked[: len(batch)]
        for offset in batch:
            partition.ack(offset)
            acked.add(offset)
        if rnd.random() < 0.3:
            committed = partition.commit()
            if committed is not None:  # everything below it that exists was processed
                assert all(o in acked for o in offsets if o < committed)


def _compacted(rnd: random.Random, start: int, n: int, kept: float) -> list[int]:
    return [o for o in range(start, start + n) if o == start or rnd.random() < kept]


def test_commits_reach_the_end_of_a_compacted_partition_and_never_pass_unprocessed_records():
    for seed in range(60):
        rnd = random.Random(seed)
        offsets = _compacted(rnd, 0, 3000, kept=rnd.choice([0.3, 0.7, 0.95]))
        p = Partition(Consumer._new_offset, Consumer._add_gap)
        _consume(p, offsets, rnd)
        assert p.commit() == offsets[-1] + 1, f"seed {seed}"
        assert p._acked[p.TP] == [] and not p._acked_index[p.TP]  # nothing left to grow


def test_after_a_restart_commits_pass_offsets_compacted_away_at_the_committed_one():
    # Committed 1000, and 1000-1004 no longer exist: the first record read is 1005.
    for seed in range(20):
        rnd = random.Random(seed)
        offsets = [o for o in _compacted(rnd, 1000, 2000, kept=0.5) if o >= 1005]
        p = Partition(Consumer._new_offset, Consumer._add_gap, committed=1000)
        _consume(p, offsets, rnd)
        assert p.commit() == offsets[-1] + 1, f"seed {seed}"


def test_faust_own_bookkeeping_stops_committing_on_the_same_partitions():
    """The bug the fix is for: with faust 0.15's methods the committed offset stops early and the
    acked list keeps growing."""
    original_new_offset = faust_compat.replaced["Consumer._new_offset"]
    original_add_gap = faust_compat.replaced["Consumer._add_gap"]
    rnd = random.Random(0)
    offsets = _compacted(rnd, 0, 3000, kept=0.5)
    p = Partition(original_new_offset, original_add_gap)
    unacked = []
    for offset in offsets:  # the same drive without the safety check (faust passes it)
        p.read_record(offset)
        unacked.append(offset)
        if len(unacked) >= 25:
            for o in unacked:
                p.ack(o)
            unacked.clear()
            p.commit()
    for o in unacked:
        p.ack(o)
    assert p.commit() < offsets[-1] + 1
    assert len(p._acked[p.TP]) > len(offsets) // 2


def test_the_commit_fix_is_installed():
    assert Consumer._new_offset is faust_compat._new_offset
    assert Consumer._add_gap is faust_compat._add_gap


# ---------------------------------------------------------------- 3. wait_first fast path
class _Service:
    """What Consumer.wait_first uses of the service: its stopped/crashed events and loop."""

    def __init__(self) -> None:
        from mode.utils.locks import Event

        self._stopped, self._crashed = Event(), Event()
        self.loop = asyncio.get_running_loop()


def test_wait_first_is_replaced_on_the_consumer():
    assert Consumer.wait_first is faust_compat._wait_first


def test_a_callback_that_needs_no_wait_runs_without_tasks():
    async def main():
        service = _Service()
        ran = []

        async def callback():
            ran.append("callback")
            return 42

        suspend = asyncio.Event()
        tasks_before = len(asyncio.all_tasks())
        result = await faust_compat._wait_first(service, callback(), suspend.wait())
        assert len(asyncio.all_tasks()) == tasks_before
        return ran, result

    ran, result = asyncio.run(main())
    assert ran == ["callback"]
    assert result.done and result.results == [42] and result.stopped is False


def test_a_callback_that_waits_finishes_in_mode_wait_first():
    async def main():
        service = _Service()
        space = asyncio.get_running_loop().create_future()
        steps = []

        async def callback():
            steps.append("first step")
            got = await space  # a full buffer: waits for room
            steps.append(f"resumed with {got}")
            return got

        asyncio.get_running_loop().call_later(0.01, space.set_result, "room")
        result = await faust_compat._wait_first(service, callback(), asyncio.Event().wait())
        return steps, result

    steps, result = asyncio.run(main())
    assert steps == ["first step", "resumed with room"]
    assert result.results[0] == "room"


def test_flow_suspension_still_interrupts_a_waiting_callback():
    async def main():
        service = _Service()
        suspend = asyncio.Event()
        seen = []

        async def callback():
            try:
                await asyncio.get_running_loop().create_future()  # never gets room
            except asyncio.CancelledError:
                seen.append("cancelled inside the callback")
                raise
            finally:
                seen.append("cleanup ran")

        asyncio.get_running_loop().call_later(0.01, suspend.set)
        result = await faust_compat._wait_first(service, callback(), suspend.wait())
        await asyncio.sleep(0)
        return seen, result

    seen, result = asyncio.run(main())
    assert seen == ["cancelled inside the callback", "cleanup ran"]
    assert len(result.done) == 1 and not result.stopped


def test_a_failing_callback_raises_and_a_stopping_service_takes_mode_path():
    async def failing():
        raise ValueError("bad message")

    async def main():
        service = _Service()
        try:
            await faust_compat._wait_first(service, failing(), asyncio.Event().wait())
        except ValueError as exc:
            raised = str(exc)
        service._stopped.set()

        async def quick():
            return 1

        stopping = await faust_compat._wait_first(service, quick())
        return raised, stopping

    raised, stopping = asyncio.run(main())
    assert raised == "bad message"
    assert stopping.stopped is True  # mode's own answer while the service stops
