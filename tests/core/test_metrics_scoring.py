from __future__ import annotations

import math

import numpy as np
import pytest

from quantcraft_dagster.core.metrics import phase_metrics
from quantcraft_dagster.core.scoring import ScoringConfig, latency_score, score, throughput_score


def test_percentiles_are_observed_values_and_losses_are_unbounded():
    start = np.arange(1000, dtype=np.int64) * 1_000_000
    lat_us = np.arange(1, 1001, dtype=np.int64)
    recv = start + lat_us * 1_000
    m = phase_metrics(start, recv, np.ones(1000, dtype=bool))
    assert (m.p50_us, m.p90_us, m.p99_us, m.p999_us) == (500.0, 900.0, 990.0, 999.0)
    assert m.errors == 0 and m.answered == 1000
    assert m.orders_per_s == pytest.approx(1000 / ((999_000_000 + 1_000_000) / 1e9))
    assert [(w.second, w.orders) for w in m.windows] == [(0, 999), (1, 1)]
    recv[-20:] = 0  # 2 % lost: p99 must not look fine
    m = phase_metrics(start, recv, np.ones(1000, dtype=bool))
    assert math.isinf(m.p99_us) and m.to_obj()["p99_us"] is None
    assert m.p50_us == 500.0


def test_phase_with_no_answers_measures_zero_throughput():
    m = phase_metrics(np.ones(5, dtype=np.int64), np.zeros(5, dtype=np.int64), np.zeros(5, dtype=bool))
    assert m.orders_per_s == 0.0 and m.error_rate == 1.0


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
