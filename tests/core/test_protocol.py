from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quantcraft_dagster.core.protocol import (
    ProtocolError,
    decode_report,
    format_price,
    to_ticks,
)


@given(st.integers(1, 10**10))
def test_price_text_round_trips_to_the_same_ticks(ticks):
    text = format_price(ticks)
    assert to_ticks(float(text)) == ticks
    assert ("." in text and not text.endswith("0")) or text.endswith(".0")


FILL_STR_PRICE = b'{"match_order_id": "b", "price": "1", "quantity": 1}'
FILL_FLOAT_QTY = b'{"match_order_id": "b", "price": 1, "quantity": 1.5}'


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (b"[1]", "not a JSON object"),
        (b'{"status": "FILLED", "fills": []}', "order_id"),
        (b'{"order_id": "a", "status": "DONE", "fills": []}', "invalid status"),
        (b'{"order_id": "a", "status": "FILLED"}', "fills list"),
        (b'{"order_id": "a", "status": "FILLED", "fills": [{"price": 1}]}', "malformed fill"),
        (b'{"order_id": "a", "status": "FILLED", "fills": [' + FILL_STR_PRICE + b"]}", "malformed fill"),
        (b'{"order_id": "a", "status": "FILLED", "fills": [' + FILL_FLOAT_QTY + b"]}", "malformed fill"),
        (b"nope", "invalid JSON"),
    ],
)
def test_malformed_reports_are_named(frame, message):
    with pytest.raises(ProtocolError, match=message):
        decode_report(frame)
