"""Hypothesis strategies shared by the book and checker property tests."""

from __future__ import annotations

from hypothesis import strategies as st

from quantcraft_dagster.core.protocol import BUY, CANCEL, LIMIT, MARKET, SELL, Order

SYMBOLS = ("S1", "S2")


@st.composite
def order_flows(draw, max_orders: int = 120) -> list[Order]:
    """Random but valid traces on a narrow price band, so orders cross and queue often."""
    n = draw(st.integers(1, max_orders))
    orders: list[Order] = []
    for seq in range(n):
        symbol = draw(st.sampled_from(SYMBOLS))
        kind = draw(st.sampled_from((LIMIT, LIMIT, MARKET, CANCEL)))
        oid = f"o{seq}"
        if kind == CANCEL and seq:
            target = f"o{draw(st.integers(0, seq - 1))}"
            orders.append(Order(seq, oid, symbol, CANCEL, target_order_id=target))
            continue
        side = draw(st.sampled_from((BUY, SELL)))
        qty = draw(st.integers(1, 50))
        if kind == MARKET:
            orders.append(Order(seq, oid, symbol, MARKET, side, None, qty))
        else:
            price = draw(st.integers(95, 105)) * 10_000
            orders.append(Order(seq, oid, symbol, LIMIT, side, price, qty))
    return orders
