"""Scoring with the seed's curves and weights, all constants in one config object."""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from .metrics import PhaseMetrics


@dataclass(frozen=True, slots=True)
class ScoringConfig:
    """Seed defaults; an organiser may change any of them for a contest."""

    latency_weight: float = 0.4
    throughput_weight: float = 0.3
    correctness_weight: float = 0.3
    latency_ceiling: float = 100.0
    latency_slope: float = 20.0  # points lost per decade of p99 in ms
    throughput_k: float = 0.000032188  # 1 - e^(-k·TPS): ~50 points at 21,500 orders/s
    # Used only when a phase produced no measurement at all, never to hide a crash.
    default_p99_us: float = 1_500.0
    default_tps: float = 5_000.0


@dataclass(frozen=True, slots=True)
class Scores:
    latency: float
    throughput: float
    correctness: float
    final: float

    def to_obj(self) -> dict[str, float]:
        return {k: round(v, 3) for k, v in asdict(self).items()}


def latency_score(p99_us: float | None, cfg: ScoringConfig) -> float:
    """``max(0, 100 − 20·log10(max(1, p99_ms)))``; an unbounded p99 scores 0."""
    p99 = cfg.default_p99_us if p99_us is None else p99_us
    if math.isinf(p99) or math.isnan(p99):
        return 0.0
    return max(0.0, cfg.latency_ceiling - cfg.latency_slope * math.log10(max(1.0, p99 / 1_000.0)))


def throughput_score(tps: float | None, cfg: ScoringConfig) -> float:
    """``100·(1 − e^(−k·TPS))``."""
    rate = cfg.default_tps if tps is None else tps
    return 100.0 * (1.0 - math.exp(-cfg.throughput_k * max(0.0, rate)))


def correctness_score(exact: int, orders: int) -> float:
    """100 × exact reports / orders over all phases."""
    return 100.0 * exact / orders if orders else 0.0


def score(
    p99_us: float | None,
    tps: float | None,
    exact: int,
    orders: int,
    cfg: ScoringConfig | None = None,
) -> Scores:
    """Final score; ``None`` means the phase measured nothing (seed default applies)."""
    cfg = cfg or ScoringConfig()
    lat = latency_score(p99_us, cfg)
    thr = throughput_score(tps, cfg)
    cor = correctness_score(exact, orders)
    final = cfg.latency_weight * lat + cfg.throughput_weight * thr + cfg.correctness_weight * cor
    return Scores(lat, thr, cor, final)


def score_phases(
    phases: Mapping[str, PhaseMetrics], exact: int, orders: int, cfg: ScoringConfig | None = None
) -> Scores:
    """Which phase feeds which score: p99 from phase C, orders/s from phase B.

    A phase absent from the profile (or with no orders) measured nothing, so the seed default
    applies; a phase that ran keeps whatever it measured, zero and unbounded included.
    """

    def measured(phase: str, attr: str) -> float | None:
        m = phases.get(phase)
        return None if m is None or m.orders == 0 else getattr(m, attr)

    return score(measured("C", "p99_us"), measured("B", "orders_per_s"), exact, orders, cfg)


@dataclass(frozen=True, slots=True)
class ScoredTrials:
    """The verdict's scores: each component the median over trial sets, and every set's range."""

    scores: Scores
    ranges: dict[str, tuple[float, float]]
    per_trial: list[Scores]

    def ranges_obj(self) -> dict[str, list[float]]:
        return {k: [round(lo, 3), round(hi, 3)] for k, (lo, hi) in self.ranges.items()}


def score_trials(trials: Mapping[str, list[PhaseMetrics]], cfg: ScoringConfig | None = None) -> ScoredTrials:
    """Score every trial set (phase A with the i-th trial of B and of C) with the seed formula,
    then take the median of each component; the final score is the seed formula of those medians.

    A phase with fewer trials than the others (the engine failed and the judge stopped early)
    lends its last trial to the remaining sets.
    """
    cfg = cfg or ScoringConfig()
    sets = max((len(runs) for runs in trials.values()), default=0) or 1
    per_trial = []
    for i in range(sets):
        chosen = {phase: runs[min(i, len(runs) - 1)] for phase, runs in trials.items() if runs}
        exact = sum(m.exact for m in chosen.values())
        orders = sum(m.orders for m in chosen.values())
        per_trial.append(score_phases(chosen, exact, orders, cfg))
    lat, thr, cor = (
        statistics.median(getattr(s, name) for s in per_trial)
        for name in ("latency", "throughput", "correctness")
    )
    final = cfg.latency_weight * lat + cfg.throughput_weight * thr + cfg.correctness_weight * cor
    scores = Scores(lat, thr, cor, final)
    ranges = {}
    for name in ("latency", "throughput", "correctness", "final"):
        values = [getattr(s, name) for s in per_trial] + [getattr(scores, name)]
        ranges[name] = (min(values), max(values))
    return ScoredTrials(scores, ranges, per_trial)


RANKING_POLICIES = ("correct_first", "composite")


@dataclass(frozen=True, slots=True)
class RankingConfig:
    """How the standings order contestants; the final score itself is always the seed formula.

    ``correct_first``: an engine with any wrong report ranks below every fully correct one, then
    by final score within each group. ``composite``: the final score alone. In both, entries whose
    final-score ranges over trials overlap share a rank (tied within the judge's noise), and the
    engine's CPU time per order breaks what the final score leaves equal.
    """

    policy: str = "correct_first"

    def __post_init__(self) -> None:
        if self.policy not in RANKING_POLICIES:
            raise ValueError(f"unknown ranking policy {self.policy!r}: use one of {RANKING_POLICIES}")

    def group(self, fully_correct: bool) -> int:
        """The policy's tier, ranked before the score: under ``correct_first`` every fully correct
        engine (0) above any engine with a wrong report (1); ``composite`` has one tier."""
        return 0 if self.policy == "composite" or fully_correct else 1
