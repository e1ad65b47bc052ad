"""Scoring: the seed's curves and weights on a named scale (a preset), and the figures a score is
derived from, so a stored judging is scored again under another preset without judging again.

Two presets ship (``PRESETS``): ``seed`` is the seed's formula and constants exactly; ``contest``
(the default) keeps the seed's shape and weights with reference points set to the range this
judge measures (docs/scoring.md gives the measurements and the reasoning).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from .metrics import PhaseMetrics
from .trial import best_latency


@dataclass(frozen=True, slots=True)
class ScoringConfig:
    """One scale. The defaults are the seed's; ``PRESETS`` names the scales a contest picks from.

    Latency ``ceiling − slope·log10(max(1, pN / latency_ref_us))`` (at least 0) of phase C's
    ``latency_percentile`` (the seed's p99), throughput ``100·(1 − e^(−k·TPS))`` of phase B's
    orders/s, correctness ``100 × exact / orders``.
    """

    name: str = "seed"
    latency_weight: float = 0.4
    throughput_weight: float = 0.3
    correctness_weight: float = 0.3
    latency_ceiling: float = 100.0
    latency_slope: float = 20.0  # points lost per decade of p99 above latency_ref_us
    latency_ref_us: float = 1_000.0  # a latency at or under it scores the ceiling
    latency_percentile: int = 99  # which of phase C's percentiles (LATENCY_PERCENTILES) is scored
    throughput_k: float = 0.000032188  # 1 - e^(-k·TPS): ~50 points at 21,500 orders/s
    # Used only when a phase produced no measurement at all, never to hide a crash.
    default_p99_us: float = 1_500.0  # whichever percentile is scored
    default_tps: float = 5_000.0


SEED = ScoringConfig()
# The contest scale: the seed's shape and weights, its reference points where this judge's figures
# fall (docs/scoring.md, "Why the default is calibrated", has the measurements and the reasoning).
# Latency: phase C's p90, not its p99 (on a shared host a trial's p99 is more the host's noise than
# the engine's), 20 points per decade above 1 µs, which no loopback round trip reaches. Throughput:
# 50 points at 1.16M orders/s of phase B's sustained rate (``core.metrics.sustained_rate``).
CONTEST = replace(SEED, name="contest", latency_ref_us=1.0, latency_percentile=90, throughput_k=6e-7)
PRESETS: dict[str, ScoringConfig] = {cfg.name: cfg for cfg in (CONTEST, SEED)}
DEFAULT_PRESET = CONTEST.name


def preset(name: str) -> ScoringConfig:
    """The named scale; an unknown name is an error that lists the known ones."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown scoring preset {name!r}: use one of {', '.join(PRESETS)}") from None


@dataclass(frozen=True, slots=True)
class Scores:
    latency: float
    throughput: float
    correctness: float
    final: float

    def to_obj(self) -> dict[str, float]:
        return {k: round(v, 3) for k, v in asdict(self).items()}


def latency_score(latency_us: float | None, cfg: ScoringConfig) -> float:
    """``max(0, ceiling − slope·log10(max(1, latency / ref)))``; unbounded latency scores 0."""
    latency = cfg.default_p99_us if latency_us is None else latency_us
    if math.isinf(latency) or math.isnan(latency):
        return 0.0
    decades = math.log10(max(1.0, latency / cfg.latency_ref_us))
    return max(0.0, cfg.latency_ceiling - cfg.latency_slope * decades)


def throughput_score(tps: float | None, cfg: ScoringConfig) -> float:
    """``100·(1 − e^(−k·TPS))``."""
    rate = cfg.default_tps if tps is None else tps
    return 100.0 * (1.0 - math.exp(-cfg.throughput_k * max(0.0, rate)))


def correctness_score(exact: int, orders: int) -> float:
    """100 × exact reports / orders over all phases."""
    return 100.0 * exact / orders if orders else 0.0


def score(
    latency_us: float | None,
    tps: float | None,
    exact: int,
    orders: int,
    cfg: ScoringConfig | None = None,
) -> Scores:
    """Final score from phase C's scored percentile and phase B's rate; ``None`` means the phase
    measured nothing (the scale's default applies)."""
    cfg = cfg or ScoringConfig()
    lat = latency_score(latency_us, cfg)
    thr = throughput_score(tps, cfg)
    cor = correctness_score(exact, orders)
    final = cfg.latency_weight * lat + cfg.throughput_weight * thr + cfg.correctness_weight * cor
    return Scores(lat, thr, cor, final)


LATENCY_PERCENTILES = (50, 90, 99)  # phase C's percentiles a trial set keeps: any preset may score one


@dataclass(frozen=True, slots=True)
class TrialSet:
    """What one trial set is scored from: the percentiles of a phase C trial (µs, by
    ``LATENCY_PERCENTILES``), orders/s of a phase B trial and the exact reports of every phase in
    the set. ``None`` means the phase measured nothing (absent from the profile, or no orders):
    the scale's default applies; a phase that ran keeps whatever it measured, zero and unbounded
    included."""

    latency_us: tuple[float | None, ...]
    orders_per_s: float | None
    exact: int
    orders: int

    def latency(self, percentile: int) -> float | None:
        return self.latency_us[LATENCY_PERCENTILES.index(percentile)]

    def to_obj(self) -> list[Any]:
        """JSON: unbounded latency as the string "inf" (JSON has no infinity; null: unmeasured)."""
        latency = ["inf" if v is not None and math.isinf(v) else v for v in self.latency_us]
        return [latency, self.orders_per_s, self.exact, self.orders]

    @classmethod
    def from_obj(cls, obj: Sequence[Any]) -> TrialSet:
        """Also a set stored while phase B's rate was host-corrected: its reference rate is not used."""
        latency, tps, exact, orders = obj[:4]
        return cls(tuple(None if v is None else float(v) for v in latency), tps, int(exact), int(orders))


def trial_sets(trials: Mapping[str, Sequence[PhaseMetrics]]) -> list[TrialSet]:
    """Phase A with the i-th trial of B and of C, for every i. A phase with fewer trials than the
    others (the engine failed and the judge stopped early) lends its last trial to the remaining
    sets."""

    def measured(m: PhaseMetrics | None, attr: str) -> float | None:
        return None if m is None or m.orders == 0 else getattr(m, attr)

    sets = []
    for i in range(max((len(runs) for runs in trials.values()), default=0) or 1):
        chosen = {phase: runs[min(i, len(runs) - 1)] for phase, runs in trials.items() if runs}
        sets.append(
            TrialSet(
                tuple(measured(chosen.get("C"), f"p{q}_us") for q in LATENCY_PERCENTILES),
                measured(chosen.get("B"), "orders_per_s"),
                sum(m.exact for m in chosen.values()),
                sum(m.orders for m in chosen.values()),
            )
        )
    return sets


@dataclass(frozen=True, slots=True)
class ScoredTrials:
    """The verdict's scores (``score_sets``), and every set's range."""

    scores: Scores
    ranges: dict[str, tuple[float, float]]
    per_trial: list[Scores]

    def ranges_obj(self) -> dict[str, list[float]]:
        return {k: [round(lo, 3), round(hi, 3)] for k, (lo, hi) in self.ranges.items()}


def score_sets(sets: Sequence[TrialSet], cfg: ScoringConfig | None = None) -> ScoredTrials:
    """Score every trial set with the scale's formula, for the ranges; the judging's components
    are latency and throughput of the best trial (the lowest latency, ``core.trial.best_latency``,
    and the highest rate: the host's and the judge's noise only ever make an engine slower, so its
    best trial is the closest to its own speed; docs/scoring.md, "Reproducible") and the median
    correctness; the final score is the formula of those."""
    cfg = cfg or ScoringConfig()
    pct = cfg.latency_percentile
    per_trial = [score(t.latency(pct), t.orders_per_s, t.exact, t.orders, cfg) for t in sets]
    latencies = [v for t in sets if (v := t.latency(pct)) is not None]
    rates = [t.orders_per_s for t in sets if t.orders_per_s is not None]
    lat = latency_score(best_latency(latencies) if latencies else None, cfg)
    thr = throughput_score(max(rates) if rates else None, cfg)
    cor = statistics.median(s.correctness for s in per_trial)
    final = cfg.latency_weight * lat + cfg.throughput_weight * thr + cfg.correctness_weight * cor
    scores = Scores(lat, thr, cor, final)
    ranges = {}
    for name in ("latency", "throughput", "correctness", "final"):
        values = [getattr(s, name) for s in per_trial] + [getattr(scores, name)]
        ranges[name] = (min(values), max(values))
    return ScoredTrials(scores, ranges, per_trial)


def score_trials(
    trials: Mapping[str, Sequence[PhaseMetrics]], cfg: ScoringConfig | None = None
) -> ScoredTrials:
    """The trial sets of a judging's counted runs (``trial_sets``), scored (``score_sets``)."""
    return score_sets(trial_sets(trials), cfg)


def rescored(record: Mapping[str, Any], cfg: ScoringConfig) -> dict[str, Any]:
    """A stored score record (the ``score`` asset's, a finals run's) on the scale ``cfg``: its
    components, final and final range derived again from its trial sets. A record without trial
    sets (written before they were stored, or rejected before any trial) keeps its scores."""
    sets = record.get("trial_sets")
    if not sets:
        return dict(record)
    scored = score_sets([TrialSet.from_obj(t) for t in sets], cfg)
    return {
        **record,
        **scored.scores.to_obj(),
        "final_range": scored.ranges_obj()["final"],
        "scoring": cfg.name,
    }


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
