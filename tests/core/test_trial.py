"""Trial validity, the median summary of trials and scoring over trial sets."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from quantcraft_dagster.core.metrics import PhaseMetrics, phase_metrics
from quantcraft_dagster.core.scoring import ScoringConfig, latency_score, score_trials, throughput_score
from quantcraft_dagster.core.trial import ValidityConfig, client_limited, invalid_reason, summarize

CFG = ValidityConfig()


def run(p99_us: float = 50.0, rate: float = 100_000.0, exact: int = 100, lag_us: float = 1.0) -> PhaseMetrics:
    """A trial's figures with the ones these tests vary."""
    return PhaseMetrics(
        100, 100, exact, 100 - exact, 10.0, 20.0, p99_us, p99_us, rate, (100 - exact) / 100,
        send_lag_p99_us=lag_us, send_rate=20_000.0,
    )  # fmt: skip


def test_open_loop_trial_is_invalid_when_the_judge_sent_late_or_off_rate():
    assert invalid_reason(run(), 20_000.0, CFG) is None
    late = invalid_reason(run(lag_us=CFG.max_send_lag_p99_us + 1), 20_000.0, CFG)
    assert late and "send-lag p99" in late
    slow = replace(run(), send_rate=20_000.0 * (1 - 2 * CFG.max_rate_error))
    assert "missed its rate" in invalid_reason(slow, 20_000.0, CFG)
    # a closed loop's pace is the engine's: never the judge's fault
    assert invalid_reason(run(lag_us=10_000.0), None, CFG) is None


def test_any_timed_trial_is_invalid_when_the_host_kept_the_engine_off_its_cpus():
    held = replace(run(), interference=CFG.max_interference * 2)
    for target in (20_000.0, None):  # open loop (phase C) and closed loop (phase B) alike
        assert "kept the engine off its CPUs" in invalid_reason(held, target, CFG)
    assert invalid_reason(replace(run(), interference=CFG.max_interference / 2), None, CFG) is None
    assert invalid_reason(replace(run(), interference=None), None, CFG) is None  # not measured (phase A)


def test_client_limited_when_the_load_generator_was_busy_all_along():
    assert client_limited(replace(run(), client_busy=0.99), CFG)
    assert not client_limited(replace(run(), client_busy=0.3), CFG)
    assert not client_limited(run(), CFG)


def test_summary_takes_medians_and_sums_counts():
    trials = [run(p99_us=40.0, exact=100), run(p99_us=900.0, exact=99), run(p99_us=60.0, exact=100)]
    s = summarize(trials)
    assert s.p99_us == 60.0 and s.orders == 300 and s.exact == 299 and s.errors == 1
    assert s.error_rate == pytest.approx(1 / 300)
    unbounded = summarize([run(p99_us=math.inf), run(p99_us=math.inf), run(p99_us=10.0)])
    assert math.isinf(unbounded.p99_us)


@given(st.lists(st.floats(1.0, 1e6), min_size=1, max_size=7))
def test_one_outlier_trial_cannot_move_the_median_beyond_the_others(p99s):
    s = summarize([run(p99_us=p) for p in p99s])
    ordered = sorted(p99s)
    assert ordered[0] <= s.p99_us <= ordered[-1]
    if len(p99s) >= 3:
        worse = summarize([run(p99_us=p) for p in [*ordered[:-1], 1e12]])  # one trial hit by a stall
        assert worse.p99_us == s.p99_us


def test_scores_are_medians_over_trial_sets_with_their_range():
    cfg = ScoringConfig()
    a = [run()]
    b = [run(rate=r) for r in (100_000.0, 150_000.0, 120_000.0)]
    c = [run(p99_us=p) for p in (2_000.0, 30_000.0, 5_000.0)]
    scored = score_trials({"A": a, "B": b, "C": c}, cfg)
    assert scored.scores.latency == pytest.approx(latency_score(5_000.0, cfg))
    assert scored.scores.throughput == pytest.approx(throughput_score(120_000.0, cfg))
    s = scored.scores
    assert s.final == pytest.approx(0.4 * s.latency + 0.3 * s.throughput + 0.3 * s.correctness)
    lo, hi = scored.ranges["latency"]
    assert lo == pytest.approx(latency_score(30_000.0, cfg)) and hi == pytest.approx(
        latency_score(2_000.0, cfg)
    )
    assert scored.ranges["final"][0] <= s.final <= scored.ranges["final"][1]
    assert len(scored.per_trial) == 3


def test_a_phase_that_stopped_early_lends_its_last_trial():
    scored = score_trials({"A": [run()], "B": [run(exact=0)], "C": [run(), run()]})
    assert len(scored.per_trial) == 2
    assert scored.scores.correctness == pytest.approx(100 * 200 / 300)


def test_metrics_of_real_arrays_feed_validity():
    intended = np.arange(1000, dtype=np.int64) * 50_000
    sent = intended.copy()
    sent[500:] += 3_000_000  # a 3 ms stall halfway: half the orders late
    m = phase_metrics(intended, sent, sent + 10_000, np.ones(1000, dtype=bool))
    assert "send-lag p99" in invalid_reason(m, 20_000.0, CFG)
