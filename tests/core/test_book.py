"""Reference engine: the rule book's examples, invariants (hypothesis) and a differential test."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings

from quantcraft_dagster.core.book import ReferenceEngine, expected_reports
from quantcraft_dagster.core.protocol import (
    BUY,
    CANCEL,
    CANCELLED,
    FILLED,
    LIMIT,
    MARKET,
    REJECTED,
    RESTING,
    SELL,
    Order,
)

from .strategies import order_flows


def lim(seq, side, price, qty, symbol="X"):
    return Order(seq, f"o{seq}", symbol, LIMIT, side, price * 10_000, qty)


def test_rule_book_example():
    eng = ReferenceEngine()
    assert eng.process(lim(0, SELL, 101, 5)).status == RESTING
    assert eng.process(lim(1, SELL, 101, 3)).status == RESTING
    assert eng.process(lim(2, SELL, 102, 4)).status == RESTING
    sweep = eng.process(lim(3, BUY, 102, 10))
    assert sweep.status == FILLED
    assert sweep.fills == (("o0", 1_010_000, 5), ("o1", 1_010_000, 3), ("o2", 1_020_000, 2))
    # o2 keeps its priority with 2 left; a later order at the same price queues behind it.
    assert eng.process(lim(4, SELL, 102, 1)).status == RESTING
    market = eng.process(Order(5, "o5", "X", MARKET, BUY, None, 10))
    assert market.status == CANCELLED
    assert market.fills == (("o2", 1_020_000, 2), ("o4", 1_020_000, 1))
    assert eng.l2() == {"X": ([], [])}


def test_cancel_rules():
    eng = ReferenceEngine()
    eng.process(lim(0, BUY, 99, 5))
    wrong_symbol = Order(1, "o1", "Y", CANCEL, target_order_id="o0")
    assert eng.process(wrong_symbol).status == REJECTED
    assert eng.process(Order(2, "o2", "X", CANCEL, target_order_id="o0")).status == CANCELLED
    assert eng.process(Order(3, "o3", "X", CANCEL, target_order_id="o0")).status == REJECTED
    assert eng.process(Order(4, "o4", "X", CANCEL, target_order_id="nope")).status == REJECTED
    assert eng.l2() == {"X": ([], [])}


def test_invalid_orders_are_rejected_without_effect():
    eng = ReferenceEngine()
    assert eng.process(Order(0, "o0", "X", LIMIT, BUY, 0, 5)).status == REJECTED
    assert eng.process(Order(1, "o1", "X", LIMIT, BUY, 1_000_000, 0)).status == REJECTED
    assert eng.process(Order(2, "o2", "X", "STOP", BUY, 1_000_000, 3)).status == REJECTED
    assert eng.books == {} or eng.l2()["X"] == ([], [])


@settings(max_examples=300, deadline=None)
@given(order_flows())
def test_invariants(orders):
    eng = ReferenceEngine()
    arrival = {}
    for order in orders:
        report = eng.process(order)
        assert report.order_id == order.order_id
        if order.type == CANCEL:
            assert report.fills == ()
            continue
        arrival[order.order_id] = order.seq
        filled = sum(q for _, _, q in report.fills)
        assert filled <= order.quantity
        assert (report.status == FILLED) == (filled == order.quantity)
        prices = [p for _, p, _ in report.fills]
        assert prices == sorted(prices, reverse=order.side == SELL)  # best price first
        if order.type == LIMIT:
            assert all(p <= order.price if order.side == BUY else p >= order.price for p in prices)
        for i in range(1, len(report.fills)):  # time priority within a level
            (m0, p0, _), (m1, p1, _) = report.fills[i - 1], report.fills[i]
            if p0 == p1:
                assert arrival[m0] < arrival[m1]
        if report.status == RESTING:
            assert eng.resting[order.order_id][3][1] == order.quantity - filled
        bids, asks = eng.books[order.symbol].l2()
        if bids and asks:
            assert bids[0][0] < asks[0][0], "book crossed"
        assert all(q > 0 for _, q in bids + asks)


@settings(max_examples=100, deadline=None)
@given(order_flows())
def test_book_equals_sum_of_resting_orders(orders):
    eng = ReferenceEngine()
    for order in orders:
        eng.process(order)
    totals: dict[tuple, int] = {}
    for symbol, side, price, record in eng.resting.values():
        totals[symbol, side, price] = totals.get((symbol, side, price), 0) + record[1]
    for symbol, (bids, asks) in eng.l2().items():
        for side, levels in ((BUY, bids), (SELL, asks)):
            for price, qty in levels:
                assert totals.pop((symbol, side, price)) == qty
    assert totals == {}


class LiquibookAdapter:
    """LiquiBook (C++, via the ``liquibook`` wheel) driven with the protocol's orders.

    A MARKET order is price 0 with immediate-or-cancel passed to ``add`` (the constructor's IOC
    flag is ignored upstream); every listener method must be overridden for SWIG directors.
    """

    def __init__(self):
        lb = pytest.importorskip("liquibook")
        self.lb = lb
        fills = self.fills = []

        class Listener(lb.OrderListener):
            def __init__(self):
                lb.OrderListener.__init__(self)
                self.cancel_rejected = False

            def on_fill(self, inbound, resting, qty, price):
                fills.append((resting.order_id_, price, qty))

            def on_cancel_reject(self, order, reason):
                self.cancel_rejected = True

            def on_reject(self, order, reason):
                raise RuntimeError(reason)

            def on_accept(self, order): ...
            def on_cancel(self, order): ...
            def on_replace(self, order, size_delta, new_price): ...
            def on_replace_reject(self, order, reason): ...
            def on_trigger_stop(self, order): ...

        self.listener = Listener()
        self.books = {}
        self.orders = {}
        self.names = {}
        self.symbol_of = {}

    def book(self, symbol):
        if symbol not in self.books:
            book = self.lb.DepthOrderBook()
            book.set_symbol(symbol)
            book.set_order_listener(self.listener)
            self.books[symbol] = book
        return self.books[symbol]

    def process(self, order):
        """(status, fills) with prices in ticks, derived only from the library's callbacks."""
        lb = self.lb
        book = self.book(order.symbol)
        if order.type == CANCEL:
            target = self.orders.get(order.target_order_id)
            if target is None or self.symbol_of[order.target_order_id] != order.symbol:
                return REJECTED, ()
            self.listener.cancel_rejected = False
            book.cancel(target)
            return (REJECTED if self.listener.cancel_rejected else CANCELLED), ()
        price = order.price if order.type == LIMIT else 0
        lib_order = lb.SimpleOrder(order.side == BUY, price, order.quantity)
        self.orders[order.order_id] = lib_order
        self.symbol_of[order.order_id] = order.symbol
        self.names[lib_order.order_id_] = order.order_id
        self.fills.clear()
        cond = lb.oc_immediate_or_cancel if order.type == MARKET else lb.oc_no_conditions
        book.add(lib_order, cond)
        fills = tuple((self.names[m], p, q) for m, p, q in self.fills)
        done = sum(q for _, _, q in fills) == order.quantity
        status = FILLED if done else (CANCELLED if order.type == MARKET else RESTING)
        return status, fills

    def l2(self, symbol):
        book = self.book(symbol)
        sides = []
        for side in (book.bids(), book.asks()):
            levels: dict[int, int] = {}
            for key, entry in side.items():
                levels[key.price()] = levels.get(key.price(), 0) + entry.open_qty()
            sides.append([[p, q] for p, q in levels.items()])
        return sides[0], sides[1]


def _random_trace(rng: random.Random, n: int) -> list[Order]:
    orders = []
    for seq in range(n):
        symbol = rng.choice(("A", "B"))
        roll = rng.random()
        if roll < 0.15 and seq:
            target = f"o{rng.randrange(seq)}"
            orders.append(Order(seq, f"o{seq}", symbol, CANCEL, target_order_id=target))
        elif roll < 0.40:
            orders.append(
                Order(seq, f"o{seq}", symbol, MARKET, rng.choice((BUY, SELL)), None, rng.randint(1, 60))
            )
        else:
            price = round(rng.gauss(100, 1.5), 2)
            orders.append(
                Order(
                    seq,
                    f"o{seq}",
                    symbol,
                    LIMIT,
                    rng.choice((BUY, SELL)),
                    round(price * 10_000),
                    rng.randint(1, 60),
                )
            )
    return orders


@pytest.mark.parametrize("seed", range(20))
def test_differential_against_liquibook(seed):
    rng = random.Random(seed)
    orders = _random_trace(rng, 1_500)
    other = LiquibookAdapter()
    reports, books = expected_reports(orders)
    for order, report in zip(orders, reports, strict=True):
        assert (report.status, report.fills) == other.process(order), f"diverged at {order}"
    for symbol, (bids, asks) in books.items():
        theirs = other.l2(symbol)
        assert (bids, asks) == (sorted(theirs[0], reverse=True), sorted(theirs[1])), symbol
