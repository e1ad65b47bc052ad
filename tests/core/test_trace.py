from __future__ import annotations

import hashlib
import statistics
from collections import Counter
from dataclasses import replace

from quantcraft_dagster.core.book import expected_reports
from quantcraft_dagster.core.protocol import CANCEL, LIMIT, MARKET, REJECTED, decode_order, encode_order
from quantcraft_dagster.core.trace import PROFILES, generate, get_spec, official


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


def test_official_seeds_are_per_judging_reproducible_and_keep_the_shape():
    public = get_spec("standard", "B")
    alice = official(public, "s3cret", "alice-20250101T000000-ab12")
    assert replace(alice, seed=public.seed) == public and alice.seed != public.seed
    assert official(public, "s3cret", "alice-20250101T000000-ab12") == alice  # reproduced from the id
    others = [
        official(public, "s3cret", "alice-20250101T000500-cd34"),  # the same contestant's next judging
        official(public, "s3cret", None),  # the finals' shared set
        official(public, "other", "alice-20250101T000000-ab12"),
    ]
    assert len({alice.seed, *(o.seed for o in others)}) == 4


def _workload(spec) -> Counter:
    """What a trace makes an engine do: orders by type, reports by status, fills."""
    orders = list(generate(spec))
    reports, _ = expected_reports(orders)
    work = Counter(o.type for o in orders) + Counter(r.status for r in reports)
    work["fills"] = sum(len(r.fills) for r in reports)
    return work


def test_different_official_traces_make_a_correct_engine_do_the_same_work():
    """The statistical argument for per-judging traces (docs/official-traces.md): traces of this
    size drawn from one profile differ by a few per cent in every count of work an engine does
    (measured on five: under 3 % apart), well inside the run-to-run noise of the
    judge's timings, so which trace a judging draws does not move the correct engine's score."""
    for phase in ("A", "C"):
        loads = [_workload(official(get_spec("standard", phase), "s3cret", f"c-{i}")) for i in range(5)]
        for what in (LIMIT, MARKET, CANCEL, "RESTING", "FILLED", "CANCELLED", "fills"):
            counts = [w[what] for w in loads]
            assert (max(counts) - min(counts)) / statistics.mean(counts) < 0.04, (phase, what, counts)
