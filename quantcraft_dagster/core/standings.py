"""Ranking: each contestant's best scored submission; ties go to the earlier submission."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .verdict import REJECTED


@dataclass(frozen=True, slots=True)
class Standing:
    rank: int
    contestant: str
    best: Mapping[str, Any]  # the score record of the best submission
    submissions: int
    last_update: float


def rank(scores: Iterable[Mapping[str, Any]]) -> list[Standing]:
    """``scores`` are score records (contestant, final, uploaded_at, status, ...), one per submission.

    Rejected uploads count as submissions but never rank; a contestant with only rejected ones
    is not on the board.
    """
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
        if current is None or _key(record) < _key(current):
            best[who] = record
    ordered = sorted(best.values(), key=_key)
    return [
        Standing(i + 1, r["contestant"], r, count[r["contestant"]], last[r["contestant"]])
        for i, r in enumerate(ordered)
    ]


def _key(record: Mapping[str, Any]) -> tuple[float, float, str]:
    return (-float(record.get("final") or 0.0), float(record.get("uploaded_at") or 0.0), record["contestant"])
