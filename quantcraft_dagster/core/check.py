"""Report checking: every report against the reference engine, exactly.

A report is exact when its status and its whole fills list (maker id, price in ticks, quantity,
in order) equal the reference. The seed's fill-match ratio (matched fills / expected fills,
as multisets per order) is kept as a second, more forgiving figure.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from .book import Level
from .protocol import (
    Order,
    ProtocolError,
    Report,
    decode_report,
    encode_order,
    report_to_obj,
    to_ticks,
)

MISSING = "MISSING"
INVALID = "INVALID"
MAX_DIVERGENCES = 10


@dataclass(slots=True)
class Divergence:
    """One wrong report, with what the contestant needs to reproduce it."""

    phase: str
    seq: int
    order_id: str
    reason: str
    order: dict[str, Any]
    expected: dict[str, Any]
    got: dict[str, Any] | None

    def to_obj(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "seq": self.seq,
            "order_id": self.order_id,
            "reason": self.reason,
            "order": self.order,
            "expected": self.expected,
            "got": self.got,
        }


@dataclass(slots=True)
class PhaseCheck:
    """Per-order outcome of one phase; arrays are indexed by seq."""

    phase: str
    exact: np.ndarray
    status: list[str]
    fills_expected: int
    fills_matched: int
    divergences: list[Divergence] = field(default_factory=list)

    @property
    def orders(self) -> int:
        return len(self.status)

    @property
    def exact_count(self) -> int:
        return int(self.exact.sum())


def check_phase(
    phase: str,
    orders: Sequence[Order],
    expected: Sequence[Report],
    received: Sequence[bytes | None],
    missing_reasons: Mapping[int, str] | None = None,
    tainted: Mapping[int, str] | None = None,
    max_divergences: int = MAX_DIVERGENCES,
) -> PhaseCheck:
    """Compare the report received for each order (``None``: none came) with the reference.

    ``tainted`` orders count as wrong whatever their report says: the engine sent a stray frame
    (unknown order, extra report) while they were awaited (docs/protocol.md section 6).
    """
    n = len(orders)
    if not (len(expected) == len(received) == n):
        raise ValueError("orders, expected and received must have one entry per order")
    missing_reasons = missing_reasons or {}
    tainted = tainted or {}
    exact = np.zeros(n, dtype=bool)
    status: list[str] = [MISSING] * n
    fills_expected = fills_matched = 0
    divergences: list[Divergence] = []
    for seq in range(n):
        want = expected[seq]
        fills_expected += len(want.fills)
        frame = received[seq]
        got: Report | None = None
        if frame is None:
            reason = missing_reasons.get(seq, "no report received")
        else:
            try:
                got = decode_report(frame)
            except ProtocolError as exc:
                status[seq] = INVALID
                reason = str(exc)
            else:
                status[seq] = got.status
                if seq in tainted:
                    reason = tainted[seq]
                elif got.status == want.status and got.fills == want.fills:
                    exact[seq] = True
                    fills_matched += len(want.fills)
                    continue
                else:
                    reason = _difference(want, got)
                fills_matched += sum((Counter(want.fills) & Counter(got.fills)).values())
        if len(divergences) < max_divergences:
            divergences.append(
                Divergence(
                    phase,
                    seq,
                    orders[seq].order_id,
                    reason,
                    _order_obj(orders[seq]),
                    report_to_obj(want),
                    None if got is None else report_to_obj(got),
                )
            )
    return PhaseCheck(phase, exact, status, fills_expected, fills_matched, divergences)


def _difference(want: Report, got: Report) -> str:
    if got.order_id != want.order_id:
        return f"report names order {got.order_id!r}, expected {want.order_id!r}"
    if got.status != want.status:
        return f"status {got.status}, expected {want.status}"
    for i, (w, g) in enumerate(zip(want.fills, got.fills, strict=False)):
        if w != g:
            return f"fill {i} is {g}, expected {w} (maker, price ticks, quantity)"
    return f"{len(got.fills)} fills, expected {len(want.fills)}"


def _order_obj(order: Order) -> dict[str, Any]:
    return orjson.loads(encode_order(order))


def parse_book(obj: Any) -> tuple[Level, Level]:
    """An engine's ``/orderbook`` answer as tick levels; raises ProtocolError if malformed."""
    try:
        sides = tuple([[to_ticks(price), int(qty)] for price, qty in obj[side]] for side in ("bids", "asks"))
    except (TypeError, KeyError, ValueError) as exc:
        raise ProtocolError(f"malformed /orderbook answer: {str(obj)[:120]}") from exc
    return sides[0], sides[1]


def compare_books(expected: Mapping[str, tuple[Level, Level]], got: Mapping[str, Any]) -> list[str]:
    """Differences between final L2 books; ``got`` maps symbol to the raw JSON answer or an error."""
    problems = []
    for symbol, (bids, asks) in expected.items():
        answer = got.get(symbol)
        if answer is None:
            problems.append(f"{symbol}: no /orderbook answer")
            continue
        if isinstance(answer, str):
            problems.append(f"{symbol}: {answer}")
            continue
        try:
            got_bids, got_asks = parse_book(answer)
        except ProtocolError as exc:
            problems.append(f"{symbol}: {exc}")
            continue
        for side, want, have in (("bids", bids, got_bids), ("asks", asks, got_asks)):
            if want != have:
                problems.append(f"{symbol} {side}: {_first_level_diff(want, have)}")
    return problems


def _first_level_diff(want: Level, have: Level) -> str:
    for i, (w, h) in enumerate(zip(want, have, strict=False)):
        if w != h:
            return f"level {i} is {h}, expected {w} (price ticks, quantity)"
    return f"{len(have)} levels, expected {len(want)}"
