"""Finals: the top of the standings re-judged several times, ranked by the median final score.

One judging's final score carries the host's noise; the finals judge each finalist ``repeat``
times, round-robin (f1 f2 f3 f1 f2 f3 …) so slow drift of the host lands on everyone alike, and
rank by the median. How sure that order is comes from a seeded percentile bootstrap: the same
samples always give the same intervals and the same table. Two neighbours are tied ("=") when
the bootstrap interval of the difference of their medians includes 0: the judge cannot say which
is faster. The ranking policy applies as in the standings (``correct_first``: an engine with a
wrong report in any finals judging ranks below every engine correct in all of them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from .scoring import RankingConfig
from .standings import shared_ranks
from .verdict import fully_correct

CONFIDENCE = 0.95
RESAMPLES = 10_000
SEED = 7  # fixed: the published table must be reproducible from its samples

T = TypeVar("T")


def finalists(standings: Sequence[Mapping[str, Any]], top: int) -> list[Mapping[str, Any]]:
    """The first ``top`` rows of the standings (rows with ``rank``, in order) and every row that
    shares a rank with them: cutting a tie in two would decide what the judge could not."""
    if top < 1:
        raise ValueError("the finals need at least one finalist (top ≥ 1)")
    if len(standings) <= top:
        return list(standings)
    last = standings[top - 1]["rank"]
    return [row for row in standings if row["rank"] <= last]


def round_robin(finalists: Sequence[T], repeat: int) -> list[tuple[int, T]]:
    """The judging order: every finalist once per round, ``repeat`` rounds, as (round, finalist)."""
    if repeat < 1:
        raise ValueError("each finalist needs at least one judging (repeat ≥ 1)")
    return [(r, f) for r in range(repeat) for f in finalists]


def _bootstrap_medians(samples: np.ndarray, rng: np.random.Generator, resamples: int) -> np.ndarray:
    picks = rng.integers(0, len(samples), size=(resamples, len(samples)))
    return np.median(samples[picks], axis=1)


def _interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(values, [tail, 1.0 - tail])
    return float(lo), float(hi)


def median_ci(
    samples: Sequence[float], confidence: float = CONFIDENCE, resamples: int = RESAMPLES, seed: int = SEED
) -> tuple[float, float]:
    """Percentile bootstrap interval of the median of ``samples``."""
    rng = np.random.default_rng(seed)
    return _interval(_bootstrap_medians(np.asarray(samples, float), rng, resamples), confidence)


def difference_ci(
    a: Sequence[float],
    b: Sequence[float],
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``median(a) − median(b)``, the two resampled independently
    (each finalist's judgings are its own)."""
    rng = np.random.default_rng(seed)
    diffs = _bootstrap_medians(np.asarray(a, float), rng, resamples) - _bootstrap_medians(
        np.asarray(b, float), rng, resamples
    )
    return _interval(diffs, confidence)


@dataclass(frozen=True, slots=True)
class Finalist:
    """One finalist's finals judgings: their final scores in judging order, whether every report of
    every judging was exact, the median engine CPU time per order, and the qualifying position
    (its row in the standings, 1-based), which breaks what nothing else separates."""

    contestant: str
    finals: tuple[float, ...]
    fully_correct: bool
    cpu_us_per_order: float | None
    qualifying: int


@dataclass(frozen=True, slots=True)
class FinalStanding:
    rank: int
    finalist: Finalist
    median: float
    ci: tuple[float, float]  # bootstrap interval of the median
    tied: bool  # shares its rank: the interval of the difference with a neighbour includes 0


def final_ranking(
    entries: Iterable[Finalist],
    ranking: RankingConfig | None = None,
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> list[FinalStanding]:
    """Order by policy group, then median final score; CPU time per order, then qualifying position,
    break exact equality. Neighbours in one group tie when the difference of their medians cannot be
    told from 0, and ties chain (as in the standings)."""
    ranking = ranking or RankingConfig()
    ordered = sorted(entries, key=lambda f: _key(f, ranking))
    with_above = [
        i > 0
        and ranking.group(ordered[i - 1].fully_correct) == ranking.group(f.fully_correct)
        and _includes_zero(difference_ci(ordered[i - 1].finals, f.finals, confidence, resamples, seed))
        for i, f in enumerate(ordered)
    ]
    return [
        FinalStanding(
            place, f, float(np.median(f.finals)), median_ci(f.finals, confidence, resamples, seed), tied
        )
        for (place, tied), f in zip(shared_ranks(with_above), ordered, strict=True)
    ]


def _includes_zero(interval: tuple[float, float]) -> bool:
    return interval[0] <= 0.0 <= interval[1]


def _key(f: Finalist, ranking: RankingConfig) -> tuple:
    cpu = float("inf") if f.cpu_us_per_order is None else f.cpu_us_per_order
    return (ranking.group(f.fully_correct), -float(np.median(f.finals)), cpu, f.qualifying, f.contestant)


def run_record(round_: int, finalist: Mapping[str, Any], verdict: Mapping[str, Any]) -> dict[str, Any]:
    """One finals judging of a standings row, from its public verdict (``Verdict.to_obj``). A
    verdict without scores (the engine failed before any) counts 0, as the ``score`` asset does."""
    phases = verdict["phases"]
    orders = sum(p["orders"] for p in phases.values())
    return {
        "round": round_,
        "contestant": finalist["contestant"],
        "partition": finalist["partition"],
        "status": verdict["status"],
        "reason": verdict["reason"],
        "final": (verdict["scores"] or {}).get("final", 0.0),
        "fully_correct": fully_correct(sum(p["exact"] for p in phases.values()), orders),
        "cpu_us_per_order": phases.get("B", {}).get("cpu_us_per_order"),
        "trace_id": verdict.get("trace_id"),  # the finals' one set: the same for every judging
        # What the final derives from, so another scoring preset scores it again (``rescored``).
        "scoring": verdict.get("scoring"),
        "trial_sets": verdict.get("trial_sets"),
    }


def final_table(
    chosen: Sequence[Mapping[str, Any]],
    runs: Sequence[Mapping[str, Any]],
    ranking: RankingConfig | None = None,
    **bootstrap: Any,
) -> list[dict[str, Any]]:
    """The published rows: ``chosen`` are the finalists' standings rows in qualifying order,
    ``runs`` the ``run_record`` of each of their judgings. A finalist is fully correct only if
    every one of its judgings was."""
    entries = []
    for position, row in enumerate(chosen, start=1):
        own = [r for r in runs if r["partition"] == row["partition"]]
        cpu = [r["cpu_us_per_order"] for r in own if r["cpu_us_per_order"] is not None]
        entries.append(
            Finalist(
                row["contestant"],
                tuple(r["final"] for r in own),
                all(r["fully_correct"] for r in own),
                float(np.median(cpu)) if cpu else None,
                position,
            )
        )
    qualifying = {row["contestant"]: row for row in chosen}
    return [
        {
            "rank": s.rank,
            "tied": s.tied,
            "contestant": s.finalist.contestant,
            "partition": qualifying[s.finalist.contestant]["partition"],
            "qualifying_rank": qualifying[s.finalist.contestant]["rank"],
            "median": round(s.median, 3),
            "ci": [round(s.ci[0], 3), round(s.ci[1], 3)],
            "finals": [round(x, 3) for x in s.finalist.finals],
            "fully_correct": s.finalist.fully_correct,
            "cpu_us_per_order": s.finalist.cpu_us_per_order,
        }
        for s in final_ranking(entries, ranking, **bootstrap)
    ]
