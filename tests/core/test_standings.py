"""Standings: best submission per contestant, ranking policy, ties within the judge's noise."""

from __future__ import annotations

import pytest

from quantcraft_dagster.core.scoring import RankingConfig
from quantcraft_dagster.core.standings import rank

COMPOSITE = RankingConfig("composite")


def record(who: str, final: float, spread: float = 0.0, correct: bool = True, **extra) -> dict:
    return {
        "contestant": who,
        "final": final,
        "final_range": [final - spread, final + spread],
        "fully_correct": correct,
        "uploaded_at": extra.pop("uploaded_at", 1.0),
        "status": "finished",
        **extra,
    }


def test_correct_first_puts_any_wrong_report_below_every_correct_engine():
    alice, carol = record("alice", 90.45), record("carol", 90.90, correct=False)
    table = rank([carol, alice])
    assert [s.contestant for s in table] == ["alice", "carol"]
    assert [s.rank for s in table] == [1, 2]
    assert [s.contestant for s in rank([carol, alice], COMPOSITE)] == ["carol", "alice"]


def test_overlapping_ranges_share_a_rank_and_chains_extend_it():
    rows = [record("a", 95.0, 0.5), record("b", 94.8, 0.4), record("c", 94.2, 0.3), record("d", 90.0, 0.1)]
    table = rank(rows)
    assert [(s.contestant, s.rank, s.tied) for s in table] == [
        ("a", 1, True), ("b", 1, True), ("c", 1, True), ("d", 4, False),
    ]  # fmt: skip


def test_ties_never_cross_the_correctness_groups():
    table = rank([record("a", 95.0, 1.0), record("b", 95.5, 1.0, correct=False)])
    assert [(s.contestant, s.rank, s.tied) for s in table] == [("a", 1, False), ("b", 2, False)]
    table = rank([record("a", 95.0, 1.0), record("b", 95.5, 1.0, correct=False)], COMPOSITE)
    assert [(s.rank, s.tied) for s in table] == [(1, True), (1, True)]


def test_cpu_per_order_then_upload_time_break_equal_scores():
    rows = [
        record("late_cheap", 90.0, cpu_us_per_order=2.0, uploaded_at=5.0),
        record("early_costly", 90.0, cpu_us_per_order=4.0, uploaded_at=1.0),
        record("early_cheap", 90.0, cpu_us_per_order=2.0, uploaded_at=2.0),
    ]
    assert [s.contestant for s in rank(rows)] == ["early_cheap", "late_cheap", "early_costly"]


def test_best_submission_per_contestant_and_rejected_never_rank():
    rows = [
        record("alice", 80.0),
        record("alice", 85.0, correct=False),
        record("alice", 82.0),
        {**record("bob", 0.0), "status": "rejected"},
    ]
    table = rank(rows)
    assert len(table) == 1 and table[0].best["final"] == 82.0 and table[0].submissions == 3


def test_unknown_policy_is_refused():
    with pytest.raises(ValueError, match="ranking policy"):
        RankingConfig("fastest")
