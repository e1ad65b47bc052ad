"""Official traces: every judging has its own, so answers replayed from a public trace or from an
earlier judging score nothing, while a correct engine scores the same on any of them."""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping

import pytest

from quantcraft_dagster.core.bundle import PhaseBundle, official_bundles
from quantcraft_dagster.core.protocol import encode_report
from quantcraft_dagster.judge.bundles import public_bundles
from quantcraft_dagster.judge.config import JudgeConfig
from quantcraft_dagster.judge.judging import judge_binary

QUICK = JudgeConfig(profile="quick", trials=1)
SECRET = "organisers-only"


def answers_header(path, bundles: Mapping[str, PhaseBundle]) -> None:
    """Every phase's expected reports as a sorted C table, as a cheater would embed those collected
    from a judging (its divergences and the engine's own stderr reveal them)."""
    rows = sorted((r.order_id, encode_report(r).decode()) for b in bundles.values() for r in b.expected)
    body = ",\n".join(f"{{{json.dumps(i)}, {json.dumps(r)}}}" for i, r in rows)
    table = f"static const char *const ANSWERS[][2] = {{\n{body}\n}};\n"
    path.write_text(table + f"static const size_t N_ANSWERS = {len(rows)};\n")


def test_an_answer_table_scores_100_on_public_traces_and_nothing_on_official_ones(tmp_path, build_variant):
    header = tmp_path / "answers.h"
    answers_header(header, public_bundles("quick"))
    cheat = build_variant("answer_table", ANSWERS_H=str(header))
    public = judge_binary(cheat, QUICK).verdict
    assert public.traces == "public" and public.scores.correctness == 100.0, public.reason
    official = judge_binary(cheat, QUICK, bundles=official_bundles("quick", SECRET, "alice-1")).verdict
    assert official.traces == "official"
    assert official.scores.correctness < 20.0, official.reason
    assert official.trace_id != public.trace_id


def test_answers_revealed_by_one_judging_score_nothing_on_the_next(tmp_path, build_variant):
    """The cheat built from judging alice-1's expected reports replays them perfectly on alice-1
    (so the table works) and scores near 0 on alice-2, the same binary's next judging."""
    first, second = (official_bundles("quick", SECRET, p) for p in ("alice-1", "alice-2"))
    header = tmp_path / "answers.h"
    answers_header(header, first)
    cheat = build_variant("answer_table", ANSWERS_H=str(header))
    replayed = judge_binary(cheat, QUICK, bundles=first).verdict
    assert replayed.scores.correctness == 100.0, replayed.reason
    next_one = judge_binary(cheat, QUICK, bundles=second).verdict
    assert next_one.trace_id != replayed.trace_id
    assert next_one.scores.correctness < 20.0, next_one.reason


def _spread(values: list[float]) -> float:
    return max(values) - min(values)


@pytest.mark.slow
def test_a_correct_engine_scores_the_same_on_different_official_traces_as_on_one(engines):
    """The statistical claim behind per-judging traces (docs/official-traces.md): 5 different
    official traces score the correct engine no more apart than 5 judgings of one trace.

    Interleaved (one, other, one, other …) so the host's drift falls on both sets alike.
    Correctness is compared exactly: a correct engine is exact on every trace, so both spreads are
    0. Latency and throughput are printed, not asserted: on this 2-core VM the spread of 5
    judgings of one trace is itself milliseconds of scheduling noise, and comparing two such
    spreads of 5 would fail by chance; the workload that would make traces differ in speed is
    asserted exactly instead (tests/core/test_trace.py), and the figures below are in docs/official-traces.md.
    """
    one = official_bundles("quick", SECRET, "same-trace")
    same, different = [], []
    for i in range(5):
        same.append(judge_binary(engines / "engine", QUICK, bundles=one).verdict)
        other = official_bundles("quick", SECRET, f"contestant-{i}")
        different.append(judge_binary(engines / "engine", QUICK, bundles=other).verdict)
    assert len({v.trace_id for v in same}) == 1 and len({v.trace_id for v in different}) == 5
    for verdicts in (same, different):
        assert all(v.status == "finished" for v in verdicts), [v.reason for v in verdicts]
    correctness = {
        name: [v.scores.correctness for v in vs] for name, vs in (("same", same), ("different", different))
    }
    assert correctness["different"] == correctness["same"] == [100.0] * 5
    assert _spread(correctness["different"]) <= _spread(correctness["same"])
    for figure in ("latency", "throughput", "final"):
        s = [getattr(v.scores, figure) for v in same]
        d = [getattr(v.scores, figure) for v in different]
        print(
            f"{figure}: one trace median {statistics.median(s):.2f} spread {_spread(s):.2f};"
            f" 5 traces median {statistics.median(d):.2f} spread {_spread(d):.2f}"
        )
