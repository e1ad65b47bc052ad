from __future__ import annotations

import math

import numpy as np
import pytest

from quantcraft_dagster.core.metrics import (
    CURVE_PERCENTILES,
    NS_PER_S,
    STRETCH_WINDOWS,
    latency_curves,
    phase_metrics,
    sustained_rate,
    with_judge_figures,
)
from quantcraft_dagster.core.scoring import ScoringConfig, latency_score, score, throughput_score


def test_percentiles_are_observed_values_and_losses_are_unbounded():
    start = NS_PER_S + np.arange(1000, dtype=np.int64) * 1_000_000  # 0 is "never sent"
    lat_us = np.arange(1, 1001, dtype=np.int64)
    recv = start + lat_us * 1_000
    m = phase_metrics(start, start, recv, np.ones(1000, dtype=bool))
    assert (m.p50_us, m.p90_us, m.p99_us, m.p999_us) == (500.0, 900.0, 990.0, 999.0)
    assert m.errors == 0 and m.answered == 1000
    assert m.orders_per_s == pytest.approx(1000 / ((999_000_000 + 1_000_000) / 1e9))
    assert [(w.second, w.orders) for w in m.windows] == [(0, 999), (1, 1)]
    recv[-20:] = 0  # 2 % lost: p99 must not look fine
    m = phase_metrics(start, start, recv, np.ones(1000, dtype=bool))
    assert math.isinf(m.p99_us) and m.to_obj()["p99_us"] is None
    assert m.p50_us == 500.0


def test_a_phase_cut_short_is_timed_from_its_first_send_not_from_the_clocks_zero():
    """Phase A stopped by its time limit after 44 of 2,000 orders: the 1,956 never sent read 0."""
    boot_to_phase = 33_350 * 1_000_000_000  # the monotonic clock counts from the host's boot
    start = np.zeros(2000, dtype=np.int64)
    start[:44] = boot_to_phase + np.arange(44, dtype=np.int64) * 1_000_000
    recv = np.where(start != 0, start + 50_000, 0)
    m = phase_metrics(start, start, recv, recv != 0)
    assert [(w.second, w.orders) for w in m.windows] == [(0, 44)]
    assert m.orders_per_s == pytest.approx(44 / (43_050_000 / 1e9))


def test_phase_with_no_answers_measures_zero_throughput():
    ones = np.ones(5, dtype=np.int64)
    m = phase_metrics(ones, ones, np.zeros(5, dtype=np.int64), np.zeros(5, dtype=bool))
    assert m.orders_per_s == 0.0 and m.error_rate == 1.0


def test_three_distributions_separate_the_judges_lateness_from_the_engines():
    intended = np.arange(100, dtype=np.int64) * 50_000  # 20k orders/s
    lag = np.zeros(100, dtype=np.int64)
    lag[::10] = 400_000  # every tenth order sent 400 µs late by the judge
    sent = intended + lag
    recv = sent + 20_000  # the engine always answers in 20 µs
    m = phase_metrics(intended, sent, recv, np.ones(100, dtype=bool), cpu_ns=5_000_000, client_busy=0.5)
    assert m.service_p99_us == 20.0  # what the engine did
    assert m.send_lag_p50_us == 0.0 and m.send_lag_p99_us == 400.0  # what the judge did
    assert m.p99_us == 420.0  # corrected: charged from the intended time
    assert m.send_rate == pytest.approx(99 / ((sent.max() - sent.min()) / 1e9))
    assert m.cpu_us_per_order == 50.0 and m.client_busy == 0.5


def test_latency_curves_are_observed_values_of_the_three_series():
    intended = np.arange(1000, dtype=np.int64) * 50_000
    sent = intended + 2_000  # the judge always 2 µs late
    recv = sent + np.arange(1, 1001, dtype=np.int64) * 1_000  # the engine answers in 1..1000 µs
    recv[-1] = 0  # one order never answered
    sent[0] = 0  # one order never sent: no send lag of it
    curves = latency_curves(intended, sent, recv)
    assert curves["percentiles"] == list(CURVE_PERCENTILES)
    at = dict(
        zip(
            CURVE_PERCENTILES,
            zip(curves["corrected"], curves["service"], curves["send_lag"], strict=True),
            strict=True,
        )
    )
    assert at[50.0] == (502.0, 500.0, 2.0)
    assert at[0.0] == (3.0, 2.0, 2.0)  # corrected: the unsent order (3 µs); service: order 1 (2 µs)
    assert at[99.9] == (1001.0, 999.0, 2.0)
    assert at[100.0] == (None, None, 2.0)  # the lost order: unbounded, never a number


def test_judge_figures_join_the_telemetrys():
    ones = np.ones(4, dtype=np.int64)
    m = phase_metrics(ones, ones, ones * 3_000, np.ones(4, dtype=bool))
    judged = {
        "cpu_us_per_order": 2.5,
        "client_busy": 0.95,
        "client_limited": True,
        "interference": 0.001,
        "p99_us": 1.0,
    }
    joined = with_judge_figures(m, judged)
    assert (joined.cpu_us_per_order, joined.client_busy, joined.client_limited, joined.interference) == (
        2.5,
        0.95,
        True,
        0.001,
    )
    assert joined.p99_us == m.p99_us  # latencies stay the telemetry's own


def test_seed_curves():
    cfg = ScoringConfig()
    assert latency_score(1_000, cfg) == 100.0  # p99 1 ms
    assert latency_score(10_000, cfg) == pytest.approx(80.0)
    assert latency_score(math.inf, cfg) == 0.0
    assert latency_score(None, cfg) == pytest.approx(100 - 20 * math.log10(1.5))
    assert throughput_score(0, cfg) == 0.0
    assert throughput_score(None, cfg) == pytest.approx(100 * (1 - math.exp(-0.000032188 * 5000)))
    s = score(10_000, 100_000, 90, 100)
    assert s.final == pytest.approx(0.4 * 80 + 0.3 * throughput_score(100_000, cfg) + 0.3 * 90)
    assert score(1000, 1e9, 0, 0).correctness == 0.0


def test_a_pipelined_replay_is_rated_by_its_sustained_stretches_not_its_slow_mode():
    """The host switches the same engine between two speeds within one replay: the replay's rate
    is the fast stretches' (the host's noise only slows), unless it is too short to cut."""
    fast, slow = np.arange(60_000) * 350, 60_000 * 350 + np.arange(140_000) * 600  # ns apart
    recv = np.concatenate([fast, slow]).astype(np.int64)
    start = np.zeros_like(recv)
    m = phase_metrics(start, start, recv + 1, np.ones(len(recv), dtype=bool), in_flight=1_280)
    assert m.orders_per_s == pytest.approx(1e9 / 350, rel=1e-3)
    assert sustained_rate(recv, 1_280) == m.orders_per_s
    whole = phase_metrics(start, start, recv + 1, np.ones(len(recv), dtype=bool))
    assert whole.orders_per_s == pytest.approx(len(recv) * 1e9 / (recv[-1] + 1), rel=1e-6)
    short = recv[:10_000]  # fewer than two stretches of 8 windows' worth: the whole replay
    assert sustained_rate(short, 640) is None
    bursts = (np.arange(200_000) // 1_280) * 1_280 * 350  # a window's reports held, sent at once
    assert sustained_rate(bursts, 1_280) <= 1e9 / 350 * (1 + 1 / STRETCH_WINDOWS)
