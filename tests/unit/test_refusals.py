"""RefusalBudget: which door refusals are audited singly, and the summaries of the rest."""

from __future__ import annotations

from gateway.refusals import MAX_SUMMARY_NAMES, RefusalBudget, summaries
from govshare.transparency import record


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def refusal(actor: str = "urn:govshare:agency:a", action: str = "directory.get",
            resources: tuple[str, ...] = ()) -> record.Event:
    return record.Event(actor=actor, action=action, outcome=record.REFUSED, resources=resources,
                        reason="RATE_LIMITED: slow down", agencies=("agencies/a",))


def test_the_burst_is_audited_then_refusals_are_counted():
    budget = RefusalBudget(rate=1.0, burst=3, clock=Clock())
    assert [budget.admit(refusal(), "RATE_LIMITED") for _ in range(5)] == \
        [True, True, True, False, False]
    [summary] = summaries(budget.take())
    assert summary.outcome == record.REFUSED
    assert (summary.actor, summary.action) == ("urn:govshare:agency:a", "directory.get")
    assert summary.reason.startswith("RATE_LIMITED: 2 more refusals like this from ")
    assert summary.subjects == ["agencies/a"]
    assert summaries(budget.take()) == []  # counted once


def test_tokens_come_back_at_the_rate():
    clock = Clock()
    budget = RefusalBudget(rate=2.0, burst=1, clock=clock)
    assert budget.admit(refusal(), "X")
    assert not budget.admit(refusal(), "X")
    clock.now = 0.5
    assert budget.admit(refusal(), "X")


def test_counts_are_kept_per_caller_action_and_reason():
    budget = RefusalBudget(rate=0.0, burst=0, clock=Clock())
    for actor, action, code in [("a", "x", "R"), ("a", "x", "R"), ("a", "y", "R"),
                                ("a", "x", "S"), ("b", "x", "R")]:
        assert not budget.admit(refusal(actor, action), code)
    counts = {(e.actor, e.action, e.reason.split(":")[0], e.reason.split()[1])
              for e in summaries(budget.take())}
    assert counts == {("a", "x", "R", "2"), ("a", "y", "R", "1"), ("a", "x", "S", "1"),
                      ("b", "x", "R", "1")}


def test_full_buckets_are_forgotten():
    clock = Clock()
    budget = RefusalBudget(rate=1.0, burst=2, clock=clock)
    budget.admit(refusal("a"), "X")
    summaries(budget.take())
    assert "a" in budget._buckets
    clock.now = 10.0
    summaries(budget.take())
    assert budget._buckets == {}


def test_a_summary_keeps_a_bounded_set_of_names():
    budget = RefusalBudget(rate=0.0, burst=0, clock=Clock())
    for n in range(MAX_SUMMARY_NAMES + 5):
        budget.admit(refusal(resources=(f"agencies/b/datasets/d{n}", "agencies/b")), "X")
    [summary] = summaries(budget.take())
    assert summary.resources == ("agencies/b/datasets/d0", "agencies/b",
                                 *(f"agencies/b/datasets/d{n}"
                                   for n in range(1, MAX_SUMMARY_NAMES - 1)))
    assert f"{MAX_SUMMARY_NAMES + 5} more refusals" in summary.reason
    assert "(and other names not listed)" in summary.reason
    assert "agencies/b" in summary.subjects


def test_counts_put_back_are_merged_with_those_counted_since():
    clock = Clock()
    budget = RefusalBudget(rate=1.0, burst=5, clock=clock)
    budget.count(refusal(resources=("agencies/b",)), "STORAGE_FULL")  # the log refused it
    taken = budget.take()
    budget.count(refusal(resources=("agencies/c",)), "STORAGE_FULL")
    budget.restore(taken)  # its summary could not be written either
    [summary] = summaries(budget.take())
    assert summary.reason.startswith("STORAGE_FULL: 2 more refusals like this from ")
    assert set(summary.resources) == {"agencies/b", "agencies/c"}
    assert budget.admit(refusal(), "X")  # counting by force takes no token
