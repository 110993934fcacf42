"""A worker killed in the middle of a flush: the next owner's outputs must end up right.

Found by the soak (tests/faults/test_soak.py, 2026-12-01: a thread row left at 2 replies where
the recount had 1). Then a flush sent its outputs before its changelog records; a worker killed
between the two left outputs of a state no changelog held, and when the events replayed after
it reverted the change (a reply, then its moderation to trash), the replay emitted nothing and
the killed worker's rows stood. Now the changelog goes first, and after loading a partition the
agent emits again every aggregate of the posts its newest flush wrote, with tombstones for the
threads and windows they no longer have (streams/agents.py module doc). Reproduced here
without a broker: the recording producer is the topics, and a "killed" flush is one whose
records are dropped from it."""

from __future__ import annotations

import contextlib

import pytest

from streams import agents
from tests.unit.test_agents_aggregate import KEY, event, feed, latest, mod, outputs, restart  # noqa: F401  (fixtures)


@contextlib.contextmanager
def _killed_before_persisting():
    """A worker killed before its flush ended never told the store that the flush was
    delivered: the RocksDB store's database does not have it (streams/rocks_store.py)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(agents.store, "persist", lambda delivered: None)
        yield


def _drop(producer, since: int, changelog: bool) -> None:
    """Forget the records sent since `since`: the changelog's or the outputs' ones."""
    producer.records[since:] = [
        r for r in producer.records[since:] if (r[0] == agents.CHANGELOG_TOPIC) != changelog
    ]


async def test_changelog_is_delivered_before_the_outputs(outputs):
    producer = outputs["producer"]
    agents.app.flow_control.resume()
    async with agents.aggregate.test_context() as a:
        await feed(a, [event(1), event(2, type="reply", parent=1, minute=1)])
    topics = [r[0] for r in producer.records]
    last_changelog = max(i for i, t in enumerate(topics) if t == agents.CHANGELOG_TOPIC)
    first_output = min(i for i, t in enumerate(topics) if t != agents.CHANGELOG_TOPIC)
    assert last_changelog < first_output


async def test_outputs_lost_after_the_changelog_are_emitted_after_the_load(outputs):
    producer = outputs["producer"]
    agents.app.flow_control.resume()
    async with agents.aggregate.test_context() as a:
        await feed(a, [event(1)])
        saved = len(producer.records)
        with _killed_before_persisting():
            await feed(a, [event(2, type="reply", parent=1, minute=1)])
        _drop(producer, saved, changelog=False)  # killed after the changelog, before the outputs
        assert latest(outputs["threads"], f"{KEY}/1")["replies"] == 0
    restart()
    agents.app.flow_control.resume()
    async with agents.aggregate.test_context() as a:
        # the reply is read again (offsets not committed) and changes nothing in the loaded state
        await feed(a, [event(2, type="reply", parent=1, minute=1)])
    assert latest(outputs["posts"], KEY)["replies"] == 1
    assert latest(outputs["threads"], f"{KEY}/1")["replies"] == 1


async def test_a_lost_deletion_comes_as_a_tombstone_after_the_load(outputs):
    producer = outputs["producer"]
    agents.app.flow_control.resume()
    async with agents.aggregate.test_context() as a:
        await feed(a, [event(1), event(5, minute=30)])
        assert latest(outputs["threads"], f"{KEY}/5")["deleted"] is False
        saved = len(producer.records)
        with _killed_before_persisting():
            await feed(a, [mod(5, "trash", 40)])
        _drop(producer, saved, changelog=False)  # the thread's deletion never went out
    restart()
    agents.app.flow_control.resume()
    async with agents.aggregate.test_context() as a:
        await feed(a, [mod(5, "trash", 40)])
    assert latest(outputs["threads"], f"{KEY}/5")["deleted"] is True
    assert latest(outputs["threads"], f"{KEY}/1")["deleted"] is False
    assert latest(outputs["posts"], KEY)["comments"] == 1


async def test_replay_corrects_outputs_of_a_flush_whose_state_was_lost(outputs):
    """The soak's case in the old order (outputs delivered, changelog lost): corrected too."""
    producer = outputs["producer"]
    agents.app.flow_control.resume()
    async with agents.aggregate.test_context() as a:
        await feed(a, [event(1), event(10, type="reply", parent=1, minute=8)])
        assert latest(outputs["threads"], f"{KEY}/1")["replies"] == 1
        saved = len(producer.records)
        await feed(a, [event(2, type="reply", parent=1, minute=1)])
        assert latest(outputs["threads"], f"{KEY}/1")["replies"] == 2
        _drop(producer, saved, changelog=True)
    restart()
    agents.app.flow_control.resume()
    async with agents.aggregate.test_context() as a:
        # the new owner reads the reply again, and right after it the reply's moderation to trash
        await feed(a, [event(2, type="reply", parent=1, minute=1), mod(2, "trash", 11)])
    assert latest(outputs["posts"], KEY)["replies"] == 1
    assert latest(outputs["threads"], f"{KEY}/1")["replies"] == 1


def test_a_refresh_added_while_a_flush_runs_waits_for_the_next_flush():
    pending = agents.Pending()
    pending.refresh = {KEY}  # as ensure_loaded adds it, after the flush took its own
    pending.release()
    assert pending.refresh == {KEY} and pending and pending.since is not None
    assert pending.due()
