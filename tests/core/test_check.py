"""Checker: exact matches survive any valid formatting; every mutation is caught and named."""

from __future__ import annotations

import orjson
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from quantcraft_dagster.core.book import expected_reports
from quantcraft_dagster.core.check import INVALID, MISSING, check_phase, compare_books
from quantcraft_dagster.core.protocol import encode_report, format_price

from .strategies import order_flows


def _pretty(report) -> bytes:
    """Same report as another engine might write it: other key order, spaces, float prices."""
    fills = [
        {"quantity": q, "price": float(format_price(p)), "match_order_id": m, "extra": 1}
        for m, p, q in report.fills
    ]
    return orjson.dumps({"fills": fills, "status": report.status, "order_id": report.order_id, "ts": 1})


@settings(max_examples=150, deadline=None)
@given(order_flows())
def test_reference_reports_are_exact_in_any_formatting(orders):
    expected, _ = expected_reports(orders)
    for encode in (encode_report, _pretty):
        result = check_phase("A", orders, expected, [encode(r) for r in expected])
        assert result.exact_count == len(orders)
        assert result.fills_matched == result.fills_expected
        assert result.divergences == []


@settings(max_examples=150, deadline=None)
@given(order_flows(), st.data())
def test_any_single_mutation_is_caught(orders, data):
    expected, _ = expected_reports(orders)
    frames = [encode_report(r) for r in expected]
    victim = data.draw(st.integers(0, len(orders) - 1))
    obj = orjson.loads(frames[victim])
    mutation = data.draw(st.sampled_from(["status", "drop_fill", "qty", "price", "maker", "swap", "garbage"]))
    if mutation == "status":
        obj["status"] = "REJECTED" if obj["status"] != "REJECTED" else "FILLED"
    elif mutation == "garbage":
        obj = None
    else:
        assume(obj["fills"])
        fill = obj["fills"][0]
        if mutation == "drop_fill":
            obj["fills"].pop()
        elif mutation == "qty":
            fill["quantity"] += 1
        elif mutation == "price":
            fill["price"] = round(fill["price"] + 0.01, 2)
        elif mutation == "maker":
            fill["match_order_id"] += "x"
        else:
            assume(len(obj["fills"]) > 1 and obj["fills"][0] != obj["fills"][1])
            obj["fills"].reverse()
    frames[victim] = b"not json{" if obj is None else orjson.dumps(obj)
    result = check_phase("B", orders, expected, frames)
    assert result.exact_count == len(orders) - 1
    assert not result.exact[victim]
    assert [d.seq for d in result.divergences] == [victim]
    assert result.divergences[0].order_id == orders[victim].order_id
    assert result.divergences[0].got is None if obj is None else result.divergences[0].got
    if obj is None:
        assert result.status[victim] == INVALID


def test_missing_and_oversized_reports():
    orders = []
    from quantcraft_dagster.core.protocol import BUY, LIMIT, Order

    orders = [Order(i, f"o{i}", "X", LIMIT, BUY, 1_000_000, 1) for i in range(3)]
    expected, _ = expected_reports(orders)
    huge = encode_report(expected[1])[:-1] + b',"pad":"' + b"x" * 70_000 + b'"}'
    result = check_phase("A", orders, expected, [None, huge, encode_report(expected[2])], {0: "engine hung"})
    assert result.status == [MISSING, INVALID, "RESTING"]
    assert result.divergences[0].reason == "engine hung"
    assert "64 KiB" in result.divergences[1].reason


def test_compare_books():
    want = {"X": ([[1_000_000, 5]], [[1_010_000, 2]])}
    assert compare_books(want, {"X": {"bids": [[100.0, 5]], "asks": [[101, 2]]}}) == []
    problems = compare_books(want, {"X": {"bids": [[100.0, 4]], "asks": [[101, 2]]}})
    assert problems and "X bids" in problems[0]
    assert compare_books(want, {"X": "/orderbook answered 404"}) == ["X: /orderbook answered 404"]
    assert "malformed" in compare_books(want, {"X": {"bids": 3}})[0]
