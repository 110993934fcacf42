"""streams/group_offsets.pin: kafka-python's alter_group_offsets returns the broker's errors per
partition instead of raising them, so a pin that did not take must not pass as done (a demo on a
busy broker then printed that it starts at the end of the topics and read them from the start)."""

from __future__ import annotations

import pytest
from kafka import TopicPartition
from kafka.errors import CoordinatorLoadInProgressError, NoError, UnknownMemberIdError

from streams.group_offsets import pin

A, B = TopicPartition("blog.comments", 0), TopicPartition("blog.comments", 1)


class Admin:
    """alter_group_offsets answering from a script, one answer per call."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.calls = []

    def alter_group_offsets(self, group, offsets):
        self.calls.append((group, {tp: om.offset for tp, om in offsets.items()}))
        return self.answers.pop(0)


def test_every_partition_committed_is_done_at_once():
    admin = Admin({A: NoError, B: NoError})
    pin(admin, "g", {A: 5, B: 7})
    assert admin.calls == [("g", {A: 5, B: 7})]


def test_a_partition_the_coordinator_could_not_take_yet_is_retried():
    admin = Admin({A: NoError, B: CoordinatorLoadInProgressError}, {A: NoError, B: NoError})
    pin(admin, "g", {A: 5, B: 7}, patience=5)
    assert len(admin.calls) == 2


def test_a_partition_refused_raises_and_names_it():
    admin = Admin({A: NoError, B: UnknownMemberIdError})
    with pytest.raises(UnknownMemberIdError, match="blog.comments"):
        pin(admin, "g", {A: 5, B: 7})


def test_a_partition_without_an_answer_is_not_taken_as_pinned():
    admin = Admin({A: NoError}, {A: NoError})
    with pytest.raises(Exception, match="no answer"):
        pin(admin, "g", {A: 5, B: 7}, patience=0)
