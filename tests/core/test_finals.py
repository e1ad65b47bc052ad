"""Finals statistics: who qualifies, the judging order, bootstrap intervals, ties and the final order."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantcraft_dagster.core.finals import (
    Finalist,
    difference_ci,
    final_ranking,
    final_table,
    finalists,
    median_ci,
    round_robin,
    run_record,
)
from quantcraft_dagster.core.scoring import RankingConfig

# Final scores live in [0, 100]; a finals judges each finalist a handful of times.
scores = st.floats(min_value=0.0, max_value=100.0, allow_nan=False, allow_infinity=False)
samples = st.lists(scores, min_size=1, max_size=9)
FAST = {"resamples": 2_000}


def finalist(who: str, finals: list[float], correct: bool = True, cpu: float | None = None, q: int = 1):
    return Finalist(who, tuple(finals), correct, cpu, q)


@settings(max_examples=60, deadline=None)
@given(samples)
def test_the_median_lies_in_its_interval(xs):
    lo, hi = median_ci(xs, **FAST)
    assert lo <= float(np.median(xs)) <= hi
    assert min(xs) <= lo and hi <= max(xs)


@settings(max_examples=60, deadline=None)
@given(samples, st.integers(min_value=0, max_value=2**32))
def test_identical_samples_tie(xs, seed):
    lo, hi = difference_ci(xs, list(reversed(xs)), seed=seed, **FAST)
    assert lo <= 0.0 <= hi
    table = final_ranking([finalist("a", xs), finalist("b", xs, q=2)], seed=seed, **FAST)
    assert [(s.rank, s.tied) for s in table] == [(1, True), (1, True)]


@settings(max_examples=60, deadline=None)
@given(samples, st.floats(min_value=1e-6, max_value=50.0))
def test_a_shift_beyond_the_noise_never_ties(xs, margin):
    shifted = [x + (max(xs) - min(xs)) + margin for x in xs]
    lo, _ = difference_ci(shifted, xs, **FAST)
    assert lo > 0.0
    table = final_ranking([finalist("slow", xs), finalist("fast", shifted, q=2)], **FAST)
    assert [(s.finalist.contestant, s.rank, s.tied) for s in table] == [
        ("fast", 1, False),
        ("slow", 2, False),
    ]


@settings(max_examples=30, deadline=None)
@given(st.lists(samples, min_size=1, max_size=5))
def test_the_table_is_reproducible_and_ordered_by_median(runs):
    entries = [finalist(f"f{i}", xs, q=i + 1) for i, xs in enumerate(runs)]
    table = final_ranking(entries, **FAST)
    assert table == final_ranking(list(reversed(entries)), **FAST)
    medians = [s.median for s in table]
    assert medians == sorted(medians, reverse=True)
    assert table[0].rank == 1
    for i in range(1, len(table)):
        above, below = table[i - 1], table[i]
        assert below.rank in (above.rank, i + 1)
        if below.rank == above.rank:
            assert above.tied and below.tied


def test_correct_first_puts_a_wrong_report_below_every_correct_engine():
    lifo = finalist("carol", [95.0, 95.2, 95.1], correct=False)
    fifo = finalist("alice", [90.0, 90.1, 90.2], q=2)
    table = final_ranking([lifo, fifo], **FAST)
    assert [(s.finalist.contestant, s.rank, s.tied) for s in table] == [
        ("alice", 1, False),
        ("carol", 2, False),
    ]
    composite = final_ranking([lifo, fifo], RankingConfig("composite"), **FAST)
    assert [s.finalist.contestant for s in composite] == ["carol", "alice"]


def test_ties_chain_through_neighbours_and_stop_at_a_clear_gap():
    table = final_ranking(
        [
            finalist("a", [90.0, 91.0, 92.0]),
            finalist("b", [89.5, 90.5, 91.5], q=2),
            finalist("c", [89.0, 90.0, 91.0], q=3),
            finalist("d", [50.0, 50.5, 51.0], q=4),
        ],
        **FAST,
    )
    assert [(s.finalist.contestant, s.rank, s.tied) for s in table] == [
        ("a", 1, True), ("b", 1, True), ("c", 1, True), ("d", 4, False),
    ]  # fmt: skip


def test_equal_medians_are_broken_by_cpu_time_then_qualifying_position():
    table = final_ranking(
        [
            finalist("late", [90.0, 90.0], cpu=2.0, q=1),
            finalist("frugal", [90.0, 90.0], cpu=1.0, q=3),
            finalist("early", [90.0, 90.0], cpu=2.0, q=0),
        ],
        **FAST,
    )
    assert [s.finalist.contestant for s in table] == ["frugal", "early", "late"]
    assert {s.rank for s in table} == {1}


def test_finalists_are_the_top_n_and_everyone_tied_with_them():
    rows = [{"rank": r, "contestant": c} for r, c in [(1, "a"), (2, "b"), (2, "c"), (2, "d"), (5, "e")]]
    assert [r["contestant"] for r in finalists(rows, 1)] == ["a"]
    assert [r["contestant"] for r in finalists(rows, 2)] == ["a", "b", "c", "d"]
    assert [r["contestant"] for r in finalists(rows, 4)] == ["a", "b", "c", "d"]
    assert [r["contestant"] for r in finalists(rows, 9)] == ["a", "b", "c", "d", "e"]
    with pytest.raises(ValueError):
        finalists(rows, 0)


def test_round_robin_judges_every_finalist_once_per_round():
    assert round_robin(["f1", "f2", "f3"], 2) == [
        (0, "f1"), (0, "f2"), (0, "f3"), (1, "f1"), (1, "f2"), (1, "f3"),
    ]  # fmt: skip
    with pytest.raises(ValueError):
        round_robin(["f1"], 0)


def verdict(final: float | None, exact: int, orders: int = 100, cpu: float | None = 1.5) -> dict:
    """The public verdict's fields a finals judging reads (``Verdict.to_obj``)."""
    return {
        "status": "finished" if final is not None else "failed",
        "reason": "ok" if final is not None else "engine crashed",
        "scores": {"final": final} if final is not None else None,
        "phases": {
            "A": {"orders": orders, "exact": exact},
            "B": {"orders": 0, "exact": 0, "cpu_us_per_order": cpu},
        },
    }


def test_the_final_table_needs_every_judging_correct_and_counts_a_crash_as_zero():
    chosen = [
        {"rank": 1, "contestant": "carol", "partition": "carol-1"},
        {"rank": 2, "contestant": "alice", "partition": "alice-1"},
        {"rank": 3, "contestant": "bob", "partition": "bob-1"},
    ]
    runs = [
        run_record(0, chosen[0], verdict(96.0, 100)),
        run_record(0, chosen[1], verdict(90.0, 100)),
        run_record(0, chosen[2], verdict(93.0, 100)),
        run_record(1, chosen[0], verdict(96.5, 99)),  # one wrong report in one judging
        run_record(1, chosen[1], verdict(90.5, 100)),
        run_record(1, chosen[2], verdict(None, 0)),  # crashed: scored 0, and not fully correct
    ]
    rows = final_table(chosen, runs, **FAST)
    assert [
        (r["contestant"], r["rank"], r["fully_correct"], r["finals"], r["qualifying_rank"]) for r in rows
    ] == [
        ("alice", 1, True, [90.0, 90.5], 2),
        ("carol", 2, False, [96.0, 96.5], 1),
        ("bob", 3, False, [93.0, 0.0], 3),
    ]
    assert rows[0]["cpu_us_per_order"] == 1.5
