"""Ranking: each contestant's best scored submission, ordered by the contest's ranking policy.

Entries whose final-score ranges over trials overlap cannot be told apart by the judge: they
share a rank ("tied within noise"), shown as "=". The engine's CPU time per order (its own cost,
free of the host's noise) orders what the score leaves equal; then the earlier submission.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .scoring import RankingConfig
from .verdict import REJECTED


@dataclass(frozen=True, slots=True)
class Standing:
    rank: int
    contestant: str
    best: Mapping[str, Any]  # the score record of the best submission
    submissions: int
    last_update: float
    tied: bool = False  # shares its rank with a neighbour whose final-score range overlaps


def rank(scores: Iterable[Mapping[str, Any]], ranking: RankingConfig | None = None) -> list[Standing]:
    """``scores`` are score records (contestant, final, final_range, fully_correct, uploaded_at,
    status, ...), one per submission.

    Rejected uploads count as submissions but never rank; a contestant with only rejected ones
    is not on the board.
    """
    ranking = ranking or RankingConfig()
    best: dict[str, Mapping[str, Any]] = {}
    count: dict[str, int] = {}
    last: dict[str, float] = {}
    for record in scores:
        who = record["contestant"]
        count[who] = count.get(who, 0) + 1
        last[who] = max(last.get(who, 0.0), float(record.get("uploaded_at") or 0.0))
        if record.get("status") == REJECTED:
            continue
        current = best.get(who)
        if current is None or _key(record, ranking) < _key(current, ranking):
            best[who] = record
    ordered = sorted(best.values(), key=lambda r: _key(r, ranking))
    with_above = [i > 0 and _tied(ordered[i - 1], r, ranking) for i, r in enumerate(ordered)]
    ranks: list[int] = []
    for i, tied in enumerate(with_above):
        ranks.append(ranks[-1] if tied else i + 1)
    return [
        Standing(
            ranks[i],
            r["contestant"],
            r,
            count[r["contestant"]],
            last[r["contestant"]],
            tied=with_above[i] or (i + 1 < len(ordered) and with_above[i + 1]),
        )
        for i, r in enumerate(ordered)
    ]


def _group(record: Mapping[str, Any], ranking: RankingConfig) -> int:
    """``correct_first``: every fully correct engine (group 0) above any engine with a wrong report."""
    return 0 if ranking.policy == "composite" or record.get("fully_correct") else 1


def _key(record: Mapping[str, Any], ranking: RankingConfig) -> tuple:
    cpu = record.get("cpu_us_per_order")
    return (
        _group(record, ranking),
        -float(record.get("final") or 0.0),
        float("inf") if cpu is None else float(cpu),
        float(record.get("uploaded_at") or 0.0),
        record["contestant"],
    )


def _range(record: Mapping[str, Any]) -> tuple[float, float]:
    final = float(record.get("final") or 0.0)
    lo, hi = record.get("final_range") or (final, final)
    return float(lo), float(hi)


def _tied(above: Mapping[str, Any], below: Mapping[str, Any], ranking: RankingConfig) -> bool:
    """Neighbours in one policy group whose final-score ranges overlap."""
    if _group(above, ranking) != _group(below, ranking):
        return False
    (lo_above, _), (_, hi_below) = _range(above), _range(below)
    return hi_below >= lo_above
