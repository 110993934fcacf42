"""The incremental derive (engine.derive_more, added for throughput, docs/performance.md) must give
exactly what a full derive + diff gives. Random histories of one post, cut into random batches and
run the way streams.agents does: fast path when merge_batch says the batch only creates new
approved entries, full derive otherwise; after every batch both must agree."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from streams import engine
from tests.unit.test_engine_property import make

STATUSES = ["approved"] * 6 + ["hold", "spam"]
_FAST_USED: list[int] = []  # examples where the fast path ran (see the last test)


@st.composite
def batched_histories(draw):
    n = draw(st.integers(1, 25))
    clean = draw(st.booleans())  # live traffic: new approved entries, parents first
    statuses = ["approved"] if clean else STATUSES
    events = []
    for cid in range(1, n + 1):
        typ = draw(st.sampled_from(["comment", "reply", "reply", "reply", "pingback"]))
        # mostly earlier parents (the fast path), sometimes later, missing (99) or itself
        parents = (
            st.integers(1, max(1, cid - 1))
            if clean
            else st.one_of(st.integers(1, max(1, cid - 1)), st.integers(1, n + 1), st.just(99))
        )
        parent = draw(parents) if typ == "reply" else 0
        kind = draw(st.sampled_from(["pingback", "trackback"])) if typ == "pingback" else "comment"
        events.append(
            make(
                cid,
                typ,
                parent,
                kind,
                draw(st.integers(0, 3 * 86400)),
                draw(st.sampled_from(statuses)),
                draw(st.sampled_from(["ann", "bob", "cy", "owner", ""])),
            )
        )
        if not clean and draw(st.integers(0, 9)) == 0:  # an occasional moderation change or re-send
            events.append(
                make(
                    cid,
                    "moderation",
                    0,
                    "comment",
                    draw(st.integers(0, 4 * 86400)),
                    draw(st.sampled_from(STATUSES)),
                    "",
                )
            )
    if not clean and draw(st.booleans()):
        events = draw(st.permutations(events))
    cuts = sorted(draw(st.lists(st.integers(0, len(events)), max_size=6)))
    batches, last = [], 0
    for cut in cuts + [len(events)]:
        batches.append(events[last:cut])
        last = cut
    timeout = draw(st.sampled_from([0.0, 3600.0, 10**9]))
    return batches, timeout


def _changes_key(changes):
    return sorted(
        (c.aggregate, repr(c.ident), repr(sorted(c.value.items())), c.deleted) for c in changes
    )


@settings(max_examples=150, deadline=None)
@given(batched_histories())
def test_fast_path_equals_full_derive(case):
    batches, timeout = case
    state = engine.new_state()
    derived, totals = None, None
    fast_used = 0
    for batch in batches:
        _, new_ids = engine.merge_batch(state, batch)
        full, full_totals = engine.derive_with_totals(state, engine.now_of(state), timeout)
        full_changes = engine.diff(derived, full)
        fast = None
        if derived is not None and new_ids:
            fast = engine.derive_more(state, derived, totals, new_ids, timeout)
        if fast is not None:
            fast_used += 1
            _FAST_USED.append(1)
            got, got_totals, got_changes = fast
            assert got == full
            assert _changes_key(got_changes) == _changes_key(full_changes)
            derived, totals = got, got_totals  # keep going on the fast path's own totals
        else:
            derived, totals = full, full_totals


def test_fast_path_is_taken_for_new_replies_and_refused_for_moderation():
    state = engine.new_state()
    first = [make(1, "comment", 0, "comment", 0, "approved", "ann")]
    engine.merge_batch(state, first)
    derived, totals = engine.derive_with_totals(state, engine.now_of(state), 3600.0)
    _, ids = engine.merge_batch(state, [make(2, "reply", 1, "comment", 60, "approved", "owner")])
    got, totals2, changes = engine.derive_more(state, derived, totals, ids)
    assert (
        got.post["replies"],
        got.threads[1]["replies"],
        got.threads[1]["post_author_answered"],
    ) == (1, 1, True)
    assert {c.aggregate for c in changes} == {"posts", "threads", "windows"}
    assert got is not derived and totals2 is totals  # updated in place, not copied
    _, ids = engine.merge_batch(state, [make(1, "moderation", 0, "comment", 90, "spam", "")])
    assert ids is None  # moderation: full derive


def test_fast_path_refuses_the_missing_parent_of_a_promoted_orphan():
    state = engine.new_state()
    engine.merge_batch(
        state,
        [
            make(5, "reply", 4, "comment", 0, "approved", "ann"),
            make(6, "comment", 0, "comment", 7200, "approved", "bob"),
        ],
    )
    derived, totals = engine.derive_with_totals(state, engine.now_of(state), 3600.0)
    assert derived.threads[5]["depth"] == 0  # promoted after the timeout
    _, ids = engine.merge_batch(state, [make(4, "comment", 0, "comment", 10, "approved", "cy")])
    assert ids == [4]
    before = (repr(derived), repr(sorted(totals.placed.items())), repr(totals.threads))
    assert engine.derive_more(state, derived, totals, ids) is None
    # refused: nothing was changed, so the caller's full derive + diff start from the same place
    assert (repr(derived), repr(sorted(totals.placed.items())), repr(totals.threads)) == before


def test_the_property_exercised_the_fast_path():
    # runs after test_fast_path_equals_full_derive in file order; alone it runs the property first
    if not _FAST_USED:
        test_fast_path_equals_full_derive()
    assert len(_FAST_USED) >= 20


def test_fast_path_takes_replies_that_come_before_their_parent():
    """Comments and replies travel on different topics, so under a backlog a reply often comes a
    batch before its parent: it waits, then joins the thread, both without a full derive."""
    state = engine.new_state()
    engine.merge_batch(state, [make(1, "comment", 0, "comment", 0, "approved", "ann")])
    derived, totals = engine.derive_with_totals(state, engine.now_of(state), 3600.0)
    _, ids = engine.merge_batch(state, [make(3, "reply", 2, "comment", 120, "approved", "bob")])
    got, totals, _ = engine.derive_more(state, derived, totals, ids, 3600.0)
    assert got == engine.derive(state, engine.now_of(state), 3600.0)
    assert got.post["waiting_replies"] == 1
    _, ids = engine.merge_batch(state, [make(2, "reply", 1, "comment", 60, "approved", "cy")])
    got, totals, changes = engine.derive_more(state, got, totals, ids, 3600.0)
    full = engine.derive(state, engine.now_of(state), 3600.0)
    assert got == full
    assert (full.post["replies"], full.post["waiting_replies"], full.threads[1]["depth"]) == (
        2,
        0,
        2,
    )
