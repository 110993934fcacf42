"""streams/faust_fixes.py: stream partitions are seeked to their committed offsets before they are
resumed when table recovery ends (the other order let the fetcher run ahead of the seek and lose
records, see the module docstring)."""
from __future__ import annotations

import asyncio
from types import SimpleNamespace

from faust.tables.recovery import Recovery
from faust.types import TP

import streams.app  # noqa: F401  (applies the fixes)
from streams import faust_fixes


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
        consumer=FakeConsumer(calls), consumer_generation_id=3,
        on_rebalance_complete=SimpleNamespace(send=nothing),
        conf=SimpleNamespace(broker_request_timeout=1.0),
        flow_control=SimpleNamespace(resume=lambda: calls.append("flow_control")),
        _fetcher=SimpleNamespace(maybe_start=nothing),
        assignor=SimpleNamespace(assigned_standbys=lambda: set()),
        on_rebalance_end=lambda: None,
    )
    return SimpleNamespace(
        app=app, log=SimpleNamespace(info=lambda *a: None, warning=lambda *a: None),
        _set_recovery_ended=lambda: None, tables={}, _wait=wait,
        _is_changelog_tp=lambda tp: tp.topic.endswith("-changelog"),
        completed=SimpleNamespace(set=lambda: calls.append("completed")),
        actives_for_table={}, standbys_for_table={},
    )


def test_the_fix_is_installed():
    assert Recovery.on_recovery_completed is faust_fixes._on_recovery_completed


def test_seek_happens_before_stream_partitions_resume():
    calls: list = []
    rec = _recovery(calls)
    rec.tables = SimpleNamespace(values=lambda: [], on_actives_ready=lambda: None,
                                 on_standbys_ready=lambda: None)
    asyncio.run(faust_fixes._on_recovery_completed(rec, generation_id=3))
    assert calls[:2] == ["seek", ("resume", ["blog.comments"])]
    assert calls.index("flow_control") > calls.index("seek")


def test_nothing_resumes_when_a_new_rebalance_started():
    calls: list = []
    rec = _recovery(calls)
    rec.tables = SimpleNamespace(values=lambda: [], on_actives_ready=lambda: None,
                                 on_standbys_ready=lambda: None)
    asyncio.run(faust_fixes._on_recovery_completed(rec, generation_id=2))  # app is at 3
    assert calls == []
