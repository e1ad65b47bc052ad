"""Protocol v1.1 messages (docs/protocol.md section 3) and their exact wire encoding.

Prices travel as JSON numbers but compare as fixed-point ticks (``round(price * 10000)``), so
every price inside the platform is an ``int`` of ticks and only the wire sees decimals.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import orjson

PRICE_SCALE = 10_000
MAX_ORDER_ID_LEN = 32
MAX_FRAME_BYTES = 64 * 1024

# The contract's numbers (docs/protocol.md sections 1, 2 and 6), each spelled here once: the
# judge's config, the sandboxes, the load generator, the Dagster resources and the CLI read them.
PORT = 8080
MEMORY_BYTES = 4 * 2**30  # memory + swap
TMP_BYTES = 100 * 2**20  # the writable /tmp
PIDS = 256  # processes and threads
HEALTH_TIMEOUT_S = 30.0
HEALTH_INTERVAL_S = 0.1
REPORT_TIMEOUT_S = 5.0
PHASE_TIME_LIMIT_S = 120.0  # bounds a crawling engine; a good one needs a few seconds

LIMIT, MARKET, CANCEL = "LIMIT", "MARKET", "CANCEL"
BUY, SELL = "BUY", "SELL"
FILLED, RESTING, CANCELLED, REJECTED = "FILLED", "RESTING", "CANCELLED", "REJECTED"
STATUSES = frozenset((FILLED, RESTING, CANCELLED, REJECTED))

Fill = tuple[str, int, int]
"""One execution: (maker order id, price in ticks, quantity)."""


class ProtocolError(ValueError):
    """A frame from an engine that breaks the contract; the message is shown to the contestant."""


class Order(NamedTuple):
    """One order of a trace; ``price`` is in ticks and only set on LIMIT orders.

    A NamedTuple, not a dataclass: traces hold hundreds of thousands of these and tuples are the
    cheapest to build, compare and pickle.
    """

    seq: int
    order_id: str
    symbol: str
    type: str
    side: str | None = None
    price: int | None = None
    quantity: int | None = None
    target_order_id: str | None = None


class Report(NamedTuple):
    """An engine's answer to one order: its status and every fill it caused, in order."""

    order_id: str
    status: str
    fills: tuple[Fill, ...] = ()


def to_ticks(price: float | int) -> int:
    """The protocol's price comparison rule, in one place."""
    return round(price * PRICE_SCALE)


def format_price(ticks: int) -> str:
    """Shortest decimal text for a tick price that still reads as a decimal (``100.0``, ``99.25``)."""
    sign = "-" if ticks < 0 else ""
    whole, frac = divmod(abs(ticks), PRICE_SCALE)
    digits = f"{frac:04d}".rstrip("0") or "0"
    return f"{sign}{whole}.{digits}"


def encode_order(order: Order) -> bytes:
    """The exact text frame the judge sends for ``order`` (also the trace file's line)."""
    head = f'{{"seq":{order.seq},"order_id":"{order.order_id}","symbol":"{order.symbol}",'
    if order.type == CANCEL:
        body = f'"type":"CANCEL","target_order_id":"{order.target_order_id}"}}'
    elif order.type == LIMIT:
        body = (
            f'"type":"LIMIT","side":"{order.side}","price":{format_price(order.price or 0)},'
            f'"quantity":{order.quantity}}}'
        )
    else:
        body = f'"type":"MARKET","side":"{order.side}","quantity":{order.quantity}}}'
    return (head + body).encode()


def decode_order(frame: bytes | str) -> Order:
    """Parse a trace line or order frame back into an :class:`Order` (inverse of encode_order)."""
    obj = orjson.loads(frame)
    price = obj.get("price")
    return Order(
        seq=int(obj["seq"]),
        order_id=str(obj["order_id"]),
        symbol=str(obj["symbol"]),
        type=str(obj["type"]),
        side=obj.get("side"),
        price=None if price is None else to_ticks(price),
        quantity=obj.get("quantity"),
        target_order_id=obj.get("target_order_id"),
    )


def encode_report(report: Report) -> bytes:
    """A report in the engine's own wire shape, so expected and actual files diff line by line."""
    fills = ",".join(
        f'{{"match_order_id":"{maker}","price":{format_price(price)},"quantity":{qty}}}'
        for maker, price, qty in report.fills
    )
    return f'{{"order_id":"{report.order_id}","status":"{report.status}","fills":[{fills}]}}'.encode()


def report_from_obj(obj: Any) -> Report:
    """Validate a decoded report object; raises :class:`ProtocolError` naming the broken field."""
    if not isinstance(obj, dict):
        raise ProtocolError("report is not a JSON object")
    order_id = obj.get("order_id")
    if not isinstance(order_id, str):
        raise ProtocolError("report has no string order_id")
    status = obj.get("status")
    if status not in STATUSES:
        raise ProtocolError(f"report for {order_id} has invalid status {status!r}")
    raw_fills = obj.get("fills")
    if not isinstance(raw_fills, list):
        raise ProtocolError(f"report for {order_id} has no fills list")
    fills = []
    for fill in raw_fills:
        try:
            maker, price, qty = fill["match_order_id"], fill["price"], fill["quantity"]
        except (TypeError, KeyError) as exc:
            raise ProtocolError(f"report for {order_id} has a malformed fill: {fill!r}") from exc
        if not isinstance(maker, str) or isinstance(price, bool) or isinstance(qty, bool):
            raise ProtocolError(f"report for {order_id} has a malformed fill: {fill!r}")
        if not isinstance(price, int | float) or not math.isfinite(price) or not isinstance(qty, int):
            raise ProtocolError(f"report for {order_id} has a malformed fill: {fill!r}")
        fills.append((maker, to_ticks(price), qty))
    return Report(order_id, status, tuple(fills))


def decode_report(frame: bytes | str) -> Report:
    """Parse one report frame from an engine, enforcing the contract."""
    if len(frame) > MAX_FRAME_BYTES:
        raise ProtocolError(f"frame of {len(frame)} bytes is over the 64 KiB limit")
    try:
        obj = orjson.loads(frame)
    except orjson.JSONDecodeError as exc:
        head = frame[:80]
        shown = head.encode() if isinstance(head, str) else bytes(head)
        raise ProtocolError(f"invalid JSON: {shown!r}") from exc
    return report_from_obj(obj)


def report_to_obj(report: Report) -> dict[str, Any]:
    """JSON-ready form of a report, prices back in decimal, for verdicts and divergences."""
    return {
        "order_id": report.order_id,
        "status": report.status,
        "fills": [
            {"match_order_id": m, "price": float(format_price(p)), "quantity": q} for m, p, q in report.fills
        ],
    }
