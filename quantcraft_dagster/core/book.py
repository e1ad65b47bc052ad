"""Reference engine: price-time priority exactly as docs/protocol.md section 4.

Every engine is judged against this code, so it favours plain data structures that are easy to
audit: per symbol, a dict of price level -> FIFO deque per side and a heap of level prices (lazy:
prices of emptied levels are dropped when they reach the top, and a price is never in a heap
twice, so memory stays bounded by the live book on arbitrarily long traces). Resting orders are
two-item lists ``[order_id, remaining]`` mutated in place so partial fills keep their queue
position.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable, Iterator

from .protocol import (
    BUY,
    CANCEL,
    CANCELLED,
    FILLED,
    LIMIT,
    MARKET,
    REJECTED,
    RESTING,
    SELL,
    Fill,
    Order,
    Report,
)

Level = list[list[int]]
"""L2 side: ``[[price_ticks, total_quantity], ...]`` best level first."""


class SymbolBook:
    """One instrument's two sides."""

    __slots__ = ("ask_heap", "asks", "bid_heap", "bids", "in_heap")

    def __init__(self) -> None:
        self.bids: dict[int, deque[list]] = {}
        self.asks: dict[int, deque[list]] = {}
        self.bid_heap: list[int] = []  # negated prices
        self.ask_heap: list[int] = []
        self.in_heap: set[int] = set()  # heap keys present (bids negated, so no clash with asks)

    def l2(self) -> tuple[Level, Level]:
        """Aggregated resting quantity per level, best first: (bids, asks)."""
        bids = [[p, sum(r[1] for r in q)] for p, q in sorted(self.bids.items(), reverse=True)]
        asks = [[p, sum(r[1] for r in q)] for p, q in sorted(self.asks.items())]
        return bids, asks


class ReferenceEngine:
    """All symbols' books plus the index of resting orders used by CANCEL."""

    def __init__(self) -> None:
        self.books: dict[str, SymbolBook] = {}
        # order_id -> (symbol, side, price, record)
        self.resting: dict[str, tuple[str, str, int, list]] = {}

    def is_resting(self, order_id: str) -> bool:
        return order_id in self.resting

    def process(self, order: Order) -> Report:
        """Apply one order and return the report a correct engine must send for it."""
        kind = order.type
        if kind == CANCEL:
            return self._cancel(order)
        qty = order.quantity
        if (
            not isinstance(qty, int)
            or qty <= 0
            or order.side not in (BUY, SELL)
            or (kind == LIMIT and (order.price is None or order.price <= 0))
            or kind not in (LIMIT, MARKET)
            or order.order_id in self.resting
        ):
            return Report(order.order_id, REJECTED)
        book = self.books.get(order.symbol)
        if book is None:
            book = self.books[order.symbol] = SymbolBook()
        limit = order.price if kind == LIMIT else None
        if order.side == BUY:
            fills, remaining = self._match(book.asks, book.ask_heap, book.in_heap, 1, limit, qty)
        else:
            fills, remaining = self._match(book.bids, book.bid_heap, book.in_heap, -1, limit, qty)
        if remaining == 0:
            return Report(order.order_id, FILLED, fills)
        if kind == MARKET:
            return Report(order.order_id, CANCELLED, fills)
        self._rest(book, order, remaining)
        return Report(order.order_id, RESTING, fills)

    def _match(
        self,
        levels: dict[int, deque[list]],
        heap: list[int],
        in_heap: set[int],
        sign: int,
        limit: int | None,
        qty: int,
    ) -> tuple[tuple[Fill, ...], int]:
        """Execute ``qty`` against the opposite side; ``sign`` turns heap keys back into prices."""
        fills: list[Fill] = []
        resting = self.resting
        while qty and heap:
            price = heap[0] * sign
            queue = levels.get(price)
            if queue is None:
                in_heap.discard(heapq.heappop(heap))
                continue
            if limit is not None and (price > limit if sign == 1 else price < limit):
                break
            while qty and queue:
                record = queue[0]
                take = record[1] if record[1] < qty else qty
                fills.append((record[0], price, take))
                qty -= take
                record[1] -= take
                if record[1] == 0:
                    queue.popleft()
                    del resting[record[0]]
            if not queue:
                del levels[price]
                in_heap.discard(heapq.heappop(heap))
        return tuple(fills), qty

    def _rest(self, book: SymbolBook, order: Order, remaining: int) -> None:
        price = order.price
        assert price is not None
        if order.side == BUY:
            levels, heap, key = book.bids, book.bid_heap, -price
        else:
            levels, heap, key = book.asks, book.ask_heap, price
        record = [order.order_id, remaining]
        queue = levels.get(price)
        if queue is None:
            queue = levels[price] = deque()
            if key not in book.in_heap:
                book.in_heap.add(key)
                heapq.heappush(heap, key)
        queue.append(record)
        self.resting[order.order_id] = (order.symbol, order.side or "", price, record)

    def _cancel(self, order: Order) -> Report:
        target = order.target_order_id or ""
        entry = self.resting.get(target)
        if entry is None or entry[0] != order.symbol:
            return Report(order.order_id, REJECTED)
        symbol, side, price, record = entry
        book = self.books[symbol]
        levels = book.bids if side == BUY else book.asks
        queue = levels[price]
        queue.remove(record)
        if not queue:
            del levels[price]  # its heap key is dropped lazily
        del self.resting[target]
        return Report(order.order_id, CANCELLED)

    def l2(self) -> dict[str, tuple[Level, Level]]:
        """Final L2 book of every symbol seen, including emptied ones."""
        return {symbol: book.l2() for symbol, book in sorted(self.books.items())}


def replay(orders: Iterable[Order]) -> Iterator[Report]:
    """Stream reports for a trace; memory is the book, not the trace."""
    engine = ReferenceEngine()
    process = engine.process
    for order in orders:
        yield process(order)


def expected_reports(
    orders: Iterable[Order],
) -> tuple[list[Report], dict[str, tuple[Level, Level]]]:
    """Every report plus the final L2 book per symbol."""
    engine = ReferenceEngine()
    reports = [engine.process(o) for o in orders]
    return reports, engine.l2()
