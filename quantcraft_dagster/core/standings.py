"""Ranking: each contestant's best scored submission, ordered by the contest's ranking policy.

Entries whose final-score ranges over trials overlap cannot be told apart by the judge: they
share a rank ("tied within noise"), shown as "=". The engine's CPU time per order (its own cost,
free of the host's noise) orders what the score leaves equal; then the earlier submission.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
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
    places = shared_ranks([i > 0 and _tied(ordered[i - 1], r, ranking) for i, r in enumerate(ordered)])
    return [
        Standing(place, r["contestant"], r, count[r["contestant"]], last[r["contestant"]], tied=tied)
        for (place, tied), r in zip(places, ordered, strict=True)
    ]


def shared_ranks(tied_with_above: Sequence[bool]) -> list[tuple[int, bool]]:
    """(rank, tied) per entry of an ordered table, given whether each entry is tied with the one
    above it: a tie shares the rank above and chains on; the next untied entry takes its own
    position (1, =2, =2, 4)."""
    ranks: list[int] = []
    for i, tied in enumerate(tied_with_above):
        ranks.append(ranks[-1] if tied else i + 1)
    below = [*tied_with_above[1:], False]
    return [(ranks[i], tied or below[i]) for i, tied in enumerate(tied_with_above)]


def _group(record: Mapping[str, Any], ranking: RankingConfig) -> int:
    return ranking.group(bool(record.get("fully_correct")))


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
