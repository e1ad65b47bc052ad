"""Scoring presets, trial sets and scoring a stored record again on another preset."""

from __future__ import annotations

import math
from dataclasses import fields

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from quantcraft_dagster.core.metrics import PhaseMetrics
from quantcraft_dagster.core.scoring import (
    CONTEST,
    DEFAULT_PRESET,
    PRESETS,
    SEED,
    ScoringConfig,
    TrialSet,
    latency_score,
    preset,
    rescored,
    score,
    score_sets,
    score_trials,
    throughput_score,
    trial_sets,
)

# The seed's constants, as its scoring code states them.
SEED_CONSTANTS = {
    "latency_weight": 0.4,
    "throughput_weight": 0.3,
    "correctness_weight": 0.3,
    "latency_ceiling": 100.0,
    "latency_slope": 20.0,
    "latency_ref_us": 1_000.0,  # its max(1, p99_ms): a p99 of 1 ms or less scores the ceiling
    "latency_percentile": 99,
    "throughput_k": 0.000032188,
    "default_p99_us": 1_500.0,
    "default_tps": 5_000.0,
}


def test_the_seed_preset_is_the_seeds_formula_field_by_field():
    assert preset("seed") == SEED == ScoringConfig()
    assert {f.name: getattr(SEED, f.name) for f in fields(SEED) if f.name != "name"} == SEED_CONSTANTS


def test_the_seed_preset_reproduces_the_seeds_points():
    assert latency_score(999.0, SEED) == 100.0  # p99 under 1 ms
    assert latency_score(10_000.0, SEED) == pytest.approx(80.0)
    assert latency_score(300_000.0, SEED) == pytest.approx(50.0, abs=0.5)
    assert throughput_score(50_000.0, SEED) == pytest.approx(80.0, abs=0.05)


def test_the_contest_preset_keeps_the_seeds_shape_and_weights_on_the_judges_range():
    assert preset(DEFAULT_PRESET) == CONTEST and CONTEST.latency_percentile == 90
    same = ("latency_weight", "throughput_weight", "correctness_weight", "latency_ceiling", "latency_slope")
    assert all(getattr(CONTEST, name) == getattr(SEED, name) for name in same)
    # Where this judge measures correct engines (p99 tens of µs, up to millions of orders/s) the
    # seed saturates and the contest scale does not.
    for p99_us, tps in ((50.0, 2_500_000.0), (60.0, 100_000.0), (150.0, 25_000.0)):
        assert latency_score(p99_us, SEED) == 100.0
        assert 0.0 < latency_score(p99_us, CONTEST) < 100.0
        assert 0.0 < throughput_score(tps, CONTEST) < 100.0
    assert latency_score(50.0, CONTEST) - latency_score(60.0, CONTEST) > 1.0
    assert throughput_score(2_500_000.0, SEED) > 99.99 and throughput_score(2_500_000.0, CONTEST) < 99.0


def test_an_unknown_preset_names_the_known_ones():
    with pytest.raises(ValueError, match="contest, seed"):
        preset("fast")


def test_a_trial_set_survives_json_unbounded_and_unmeasured_alike():
    sets = (
        TrialSet((30.0, 40.0, math.inf), 10.0, 1, 2),
        TrialSet((None,) * 3, None, 0, 0),
        TrialSet((12.0, 20.0, 55.5), 2e6, 9, 9),
    )
    for t in sets:
        back = TrialSet.from_obj(orjson.loads(orjson.dumps(t.to_obj())))
        assert back == t
    assert score(math.inf, 1.0, 1, 1, CONTEST).latency == 0.0  # unbounded latency, never a default
    assert sets[0].latency(99) == math.inf and sets[0].latency(90) == 40.0


def metrics(p99_us: float, tps: float, exact: int, orders: int) -> PhaseMetrics:
    """A trial with p50 and p90 below its p99, as every trial has them."""
    return PhaseMetrics(orders, orders, exact, 0, p99_us / 3, p99_us / 2, p99_us, p99_us, tps, 0.0)


figures = st.builds(
    metrics,
    st.floats(1.0, 1e7) | st.just(math.inf),
    st.floats(0.0, 1e8),
    st.integers(0, 1_000),
    st.integers(1_000, 2_000),
)


@given(st.lists(figures, min_size=1, max_size=5), st.lists(figures, min_size=1, max_size=5), figures)
def test_a_stored_record_scores_as_its_judging_did_on_every_preset(b, c, a):
    trials = {"A": [a], "B": b, "C": c}
    stored = {"contestant": "x", "trial_sets": [t.to_obj() for t in trial_sets(trials)]}
    record = orjson.loads(orjson.dumps(stored))
    for cfg in PRESETS.values():
        judged = score_trials(trials, cfg)
        again = rescored(record, cfg)
        assert again["final"] == judged.scores.to_obj()["final"]
        assert again["final_range"] == judged.ranges_obj()["final"]
        assert again["scoring"] == cfg.name and again["contestant"] == "x"


def test_another_preset_reorders_engines_the_seed_cannot_tell_apart():
    quick = [TrialSet((20.0, 30.0, 40.0), 2_000_000.0, 100, 100).to_obj()]
    slow = [TrialSet((200.0, 300.0, 400.0), 300_000.0, 100, 100).to_obj()]
    on_seed = [rescored({"trial_sets": t}, SEED)["final"] for t in (quick, slow)]
    on_contest = [rescored({"trial_sets": t}, CONTEST)["final"] for t in (quick, slow)]
    assert abs(on_seed[0] - on_seed[1]) < 0.3  # both ≈ 100: the seed's curves saturate
    assert on_contest[0] - on_contest[1] > 20


def test_a_record_without_trial_sets_keeps_its_scores():
    old = {"final": 91.0, "final_range": [90.0, 92.0]}
    assert rescored(old, CONTEST) == old


def test_a_judging_scores_its_best_latency_and_rate_and_its_median_correctness():
    """The host's noise only ever slows an engine: latency and throughput are the best trial's;
    a lost order (unbounded latency) is never hidden behind a better trial."""
    sets = [
        TrialSet((10.0, 17.0, 30.0), 1_700_000.0, 98, 100),
        TrialSet((10.0, 13.0, 20.0), 2_900_000.0, 100, 100),
        TrialSet((10.0, 15.0, 25.0), 2_100_000.0, 100, 100),
    ]
    scored = score_sets(sets, CONTEST).scores
    assert scored.latency == pytest.approx(latency_score(13.0, CONTEST))
    assert scored.throughput == pytest.approx(throughput_score(2_900_000.0, CONTEST))
    assert scored.correctness == 100.0
    lost = [*sets, TrialSet((10.0, math.inf, math.inf), 3_000_000.0, 99, 100)]
    assert score_sets(lost, CONTEST).scores.latency == 0.0


def test_a_set_stored_with_a_host_corrected_rate_still_loads():
    stored = [[12.0, 13.0, 20.0], 2_000_000.0, 100, 100, 2_600_000.0]
    assert TrialSet.from_obj(stored) == TrialSet((12.0, 13.0, 20.0), 2_000_000.0, 100, 100)
