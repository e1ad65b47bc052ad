"""Trial validity, the summary of trials and scoring over trial sets."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from quantcraft_dagster.core.metrics import PhaseMetrics, phase_metrics
from quantcraft_dagster.core.scoring import ScoringConfig, latency_score, score_trials, throughput_score
from quantcraft_dagster.core.trial import (
    Sample,
    ValidityConfig,
    client_limited,
    disturbed_orders,
    host_stalls,
    invalid_reason,
    replay_interference,
    summarize,
)

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


def test_summary_takes_the_best_trials_figures_medians_of_the_rest_and_sums_counts():
    trials = [run(p99_us=40.0, exact=100), run(p99_us=900.0, exact=99), run(p99_us=60.0, exact=100)]
    trials = [replace(t, cpu_us_per_order=c) for t, c in zip(trials, (1.0, 3.0, 2.0), strict=True)]
    s = summarize(trials)
    assert s.p99_us == 40.0 and s.orders == 300 and s.exact == 299 and s.errors == 1
    assert s.cpu_us_per_order == 2.0  # not a ranking figure: the median
    assert s.error_rate == pytest.approx(1 / 300)
    unbounded = summarize([run(p99_us=math.inf), run(p99_us=10.0), run(p99_us=10.0)])
    assert math.isinf(unbounded.p99_us)  # a lost order is never hidden behind a better trial
    rates = [replace(run(rate=r), client_limited=r > 2e5) for r in (1e5, 3e5, 2e5)]
    fastest = summarize(rates)
    assert fastest.orders_per_s == 3e5 and fastest.client_limited


@given(st.lists(st.floats(1.0, 1e6), min_size=1, max_size=7), st.floats(1.0, 1e12))
def test_a_trial_the_host_slowed_cannot_move_the_summary(p99s, slower):
    s = summarize([run(p99_us=p, rate=1e6 / p) for p in p99s])
    assert min(p99s) == s.p99_us and s.orders_per_s == max(1e6 / p for p in p99s)
    worse = max(slower, max(p99s))
    hit = summarize([run(p99_us=p, rate=1e6 / p) for p in [*p99s, worse]])  # one more, stalled
    assert (hit.p99_us, hit.orders_per_s) == (s.p99_us, s.orders_per_s)


def test_scores_are_the_best_trials_with_every_sets_range():
    cfg = ScoringConfig()
    a = [run()]
    b = [run(rate=r) for r in (100_000.0, 150_000.0, 120_000.0)]
    c = [run(p99_us=p) for p in (2_000.0, 30_000.0, 5_000.0)]
    scored = score_trials({"A": a, "B": b, "C": c}, cfg)
    assert scored.scores.latency == pytest.approx(latency_score(2_000.0, cfg))
    assert scored.scores.throughput == pytest.approx(throughput_score(150_000.0, cfg))
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


US = 1_000  # ns


def watch(*windows: tuple) -> list[Sample]:
    """StallWatch samples from per-window increments, µs: (length, idle, engine CPU, run delay),
    and optionally every task's CPU time on the engine's CPUs (None: unknown, the default)."""
    t = idle = own = delay = tasks = 0
    samples: list[Sample] = [(0, 0, 0, 0, None)]
    for length, idle_us, own_us, delay_us, *rest in windows:
        tasks_us = rest[0] if rest else None
        t, own, delay = t + length * US, own + own_us * US, delay + delay_us * US
        idle = None if idle_us is None or idle is None else idle + idle_us * US
        tasks = None if tasks_us is None or tasks is None else tasks + tasks_us * US
        samples.append((t, idle, own, delay, tasks))
    if any(len(w) > 4 for w in windows):
        samples[0] = (0, 0, 0, 0, 0)
    return samples


def test_a_stall_is_the_run_of_windows_with_foreign_work_and_the_wait_credited_after_it():
    samples = watch(
        (250, 0, 250, 0),  # the engine busy
        (250, 0, 0, 0),  # something else ran; the engine's wait is not credited yet
        (250, 0, 100, 0),  # ... 150 µs more
        (250, 0, 250, 400),  # the engine back: its 400 µs wait credited now
        (250, 200, 50, 0),  # idle: nothing held it
    )
    assert host_stalls(samples, 1, 20 * US) == [(250 * US, 750 * US, 400 * US)]


def test_an_engine_competing_with_itself_or_sleeping_is_never_stalled():
    self_competing = watch((250, 0, 250, 250), (250, 0, 250, 250))  # run delay, no foreign time
    idle_unaccounted = watch((250, 0, 0, 0), (250, 250, 0, 0))  # cpuidle credits an idle period late
    assert host_stalls(self_competing, 1, 20 * US) == host_stalls(idle_unaccounted, 1, 20 * US) == []


def test_every_tasks_time_tells_other_work_from_idle_not_yet_credited():
    """An engine that sleeps and wakes (Go's runtime) and waits for its own threads: cpuidle has
    not credited the idle period yet, so elapsed minus idle shows 200 µs of "foreign" time; the
    tasks' CPU time says nothing else ran. A competitor shows in both."""
    asleep = watch((250, 0, 50, 100, 50), (250, 0, 50, 100, 50))
    competitor = watch((250, 0, 50, 100, 250), (250, 0, 50, 100, 250))
    assert host_stalls(asleep, 1, 20 * US) == []
    assert host_stalls([(*s[:4], None) for s in asleep], 1, 20 * US) != []  # cpuidle alone: fooled
    assert host_stalls(competitor, 1, 20 * US) == [(0, 500 * US, 200 * US)]


def test_a_replays_interference_is_the_smaller_of_other_work_and_the_engines_wait():
    replay = watch((1000, 0, 600, 0, 700), (1000, 0, 900, 300, 1000))  # 200 µs of other work
    assert replay_interference(replay[0], replay[-1], 1) == pytest.approx(200 / 2000)
    self_only = watch((1000, 0, 1000, 900, 1000))  # its threads waited for each other
    assert replay_interference(self_only[0], self_only[-1], 1) == 0.0
    assert replay_interference(replay[0], replay[0], 1) is None


def test_without_idle_figures_run_delay_decides():
    assert host_stalls(watch((250, None, 100, 150)), 1, 20 * US) == [(0, 250 * US, 150 * US)]


def orders(latency_us: list[int], period_us: int = 100, lag_us: int = 0) -> tuple[np.ndarray, ...]:
    intended = np.arange(len(latency_us), dtype=np.int64) * period_us * US
    sent = intended + lag_us * US
    recv = np.where(np.array(latency_us) > 0, intended + np.array(latency_us, dtype=np.int64) * US, 0)
    return intended, sent, recv


def test_orders_held_up_by_a_stall_are_left_out_but_never_a_slow_or_lost_one():
    intended, sent, recv = orders([10, 300, 250, 10, 5_000, 0, 10, 10])
    stall = [(60 * US, 300 * US, 240 * US)]  # held the engine from 60 µs on; caught up by 540 µs
    disturbed = disturbed_orders(intended, sent, recv, stall, 100 * US, CFG.min_held_share)
    # orders 1 and 2 waited out the stall; 3 was in flight within its window (the judge cannot
    # tell when in it the engine was held); order 4 (5 ms) spent a sliver of its latency on it;
    # order 5 was never answered (unbounded, whatever held it up); 0, 6 and 7 came before or after
    assert disturbed.tolist() == [False, True, True, True, False, False, False, False]
    late = disturbed_orders(*orders([10] * 4, lag_us=150), [], 100 * US, CFG.min_held_share)
    assert late.all()  # the judge sent them late: their latency is partly the judge's


@given(
    st.lists(st.integers(0, 3_000), min_size=1, max_size=60),
    st.lists(st.tuples(st.integers(0, 3_000), st.integers(1, 500), st.integers(1, 500)), max_size=6),
)
def test_more_stalls_only_leave_out_more_and_a_lost_order_never(latency_us, raw_stalls):
    intended, sent, recv = orders(latency_us)
    stalls = [(start * US, (start + length) * US, held * US) for start, length, held in raw_stalls]
    fewer = disturbed_orders(intended, sent, recv, stalls[:-1], 100 * US, CFG.min_held_share)
    more = disturbed_orders(intended, sent, recv, stalls, 100 * US, CFG.min_held_share)
    assert not (fewer & ~more).any() and not (more & (recv == 0)).any()


def test_disturbed_orders_are_left_out_of_the_latency_and_too_many_invalidate_the_trial():
    intended, sent, recv = orders([10] * 97 + [900] * 3)
    disturbed = np.arange(100) >= 97
    kept = phase_metrics(intended, sent, recv, np.ones(100, dtype=bool), disturbed=disturbed)
    charged = phase_metrics(intended, sent, recv, np.ones(100, dtype=bool))
    assert kept.p99_us == 10.0 and charged.p99_us == 900.0 and kept.disturbed == 3
    assert kept.orders == 100 and charged.disturbed is None
    assert invalid_reason(kept, None, CFG) is None
    too_many = replace(kept, disturbed=11, interference=CFG.max_interference * 2)
    assert "held up 11.0% of the orders" in invalid_reason(too_many, None, CFG)
    assert invalid_reason(too_many, None, CFG, own_disturbance=True) is None  # the engine's own doing
    # watched order by order, the share of the whole replay no longer decides
    assert invalid_reason(replace(kept, interference=CFG.max_interference * 2), None, CFG) is None
    nothing = phase_metrics(intended, sent, recv, np.ones(100, dtype=bool), disturbed=np.ones(100, bool))
    assert nothing.p99_us is None and nothing.disturbed == 100
