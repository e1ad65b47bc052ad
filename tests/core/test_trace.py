from __future__ import annotations

import hashlib
from collections import Counter

from quantcraft_dagster.core.book import expected_reports
from quantcraft_dagster.core.protocol import CANCEL, LIMIT, MARKET, REJECTED, decode_order, encode_order
from quantcraft_dagster.core.trace import PROFILES, generate, get_spec


def _digest(spec) -> str:
    return hashlib.sha256(b"".join(encode_order(o) + b"\n" for o in generate(spec))).hexdigest()


def test_same_spec_same_bytes():
    spec = get_spec("quick", "B")
    assert _digest(spec) == _digest(spec)
    assert _digest(get_spec("quick", "A")) != _digest(spec)


def test_standard_phase_a_follows_seed_rules():
    spec = get_spec("standard", "A")
    assert spec.orders == 50_000 and spec.seed == 42
    orders = list(generate(spec))
    kinds = Counter(o.type for o in orders)
    assert len(orders) == 50_000
    assert 0.47 < (kinds[LIMIT]) / 50_000 < 0.60  # 50 % plus cancels that had nothing to cancel
    assert 0.33 < kinds[MARKET] / 50_000 < 0.37
    assert 0.10 < kinds[CANCEL] / 50_000 < 0.16
    prices = [o.price / 10_000 for o in orders if o.type == LIMIT]
    mean = sum(prices) / len(prices)
    assert 99.9 < mean < 100.1
    assert all(p * 100 == int(p * 100) or abs(p * 100 - round(p * 100)) < 1e-6 for p in prices[:1000])
    qty = [o.quantity for o in orders if o.type != CANCEL]
    assert min(qty) >= 1 and max(qty) <= 1000
    # Mostly live cancels, a few stale ones that must be rejected.
    reports, _ = expected_reports(orders)
    cancel_status = Counter(r.status for o, r in zip(orders, reports, strict=True) if o.type == CANCEL)
    assert 0 < cancel_status[REJECTED] < 0.1 * kinds[CANCEL]


def test_round_trip_and_symbol_ownership():
    for name, profile in PROFILES.items():
        for spec in profile.phases.values():
            assert len(set(spec.symbols)) == len(spec.symbols)
            owners = {s: spec.connection_of(s) for s in spec.symbols}
            assert set(owners.values()) == set(range(spec.connections)), name
    orders = list(generate(get_spec("quick", "C")))
    assert [decode_order(encode_order(o)) for o in orders] == orders
    assert len({o.order_id for o in orders}) == len(orders)
    assert all(len(o.order_id) <= 32 for o in orders)
