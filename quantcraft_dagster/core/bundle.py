"""A phase's trace and its reference answers, in the form the judge replays and checks.

Three steps, each a pure function, so the Dagster assets (``official_trace`` →
``expected_reports`` → the judging) and ``quantcraft judge`` (public traces, or a judging's
official ones reproduced from its id, no Dagster) build bundles with the same code:
:func:`trace_lines` (the orders as wire frames), :func:`answer_lines` (the reference engine's
report for each, then one line per symbol with its final L2 book, as ``/orderbook`` answers it)
and :func:`assemble`; :func:`build` chains them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

import orjson

from . import trace
from .book import Level, ReferenceEngine
from .check import parse_book
from .protocol import Order, Report, decode_order, decode_report, encode_order, encode_report, format_price


@dataclass(frozen=True, slots=True)
class PhaseBundle:
    """What one phase replays and checks. ``traces`` names the trace set ("public" or
    "official"); ``version`` identifies the trace and answers it was assembled from."""

    spec: trace.PhaseSpec
    orders: list[Order]
    payloads: list[bytes]
    expected: list[Report]
    books: dict[str, tuple[Level, Level]]
    traces: str = "public"
    version: str = ""


def trace_lines(spec: trace.PhaseSpec) -> list[bytes]:
    """The phase's orders exactly as sent on the wire, one JSON object each."""
    return [encode_order(order) for order in trace.generate(spec)]


def answer_lines(orders: list[bytes]) -> list[bytes]:
    """The reference report for every order, then each symbol's final book (``{"symbol": ...}``)."""
    engine = ReferenceEngine()
    lines = [encode_report(engine.process(decode_order(line))) for line in orders]
    for symbol, (bids, asks) in engine.l2().items():
        book = {
            side: [[float(format_price(p)), q] for p, q in levels]
            for side, levels in (("bids", bids), ("asks", asks))
        }
        lines.append(orjson.dumps({"symbol": symbol, **book}))
    return lines


def version(lines: list[bytes]) -> str:
    """Content hash of a trace or an answer file: what a cached bundle is keyed by."""
    digest = hashlib.sha256()
    for line in lines:
        digest.update(line)
        digest.update(b"\n")
    return digest.hexdigest()


def assemble(spec: trace.PhaseSpec, orders: list[bytes], answers: list[bytes], traces: str) -> PhaseBundle:
    """The bundle of a stored trace and its stored answers; they must belong together."""
    if len(answers) < len(orders):
        raise ValueError(f"{len(answers)} answer lines for {len(orders)} orders: answers of another trace")
    expected = [decode_report(line) for line in answers[: len(orders)]]
    decoded = [decode_order(line) for line in orders]
    if any(o.order_id != r.order_id for o, r in zip(decoded, expected, strict=True)):
        raise ValueError("the answers do not belong to this trace (order ids differ)")
    books = {}
    for line in answers[len(orders) :]:
        obj = orjson.loads(line)
        books[obj["symbol"]] = parse_book(obj)
    return PhaseBundle(spec, decoded, list(orders), expected, books, traces, version(orders)[:16])


def build(spec: trace.PhaseSpec, traces: str) -> PhaseBundle:
    """A phase generated, answered and assembled in one go (no stored values to read)."""
    orders = trace_lines(spec)
    return assemble(spec, orders, answer_lines(orders), traces)


def official_bundles(profile: str, secret: str, submission: str | None) -> dict[str, PhaseBundle]:
    """Every phase of one official judging (``submission``'s, or the finals' set for None), made
    from the organisers' secret: how an organiser reproduces a judging from its id alone."""
    return {
        p: build(trace.official(trace.get_spec(profile, p), secret, submission), "official")
        for p in trace.PHASES
    }


def trace_id(versions: Mapping[str, str]) -> str:
    """The short name a verdict gives the traces it was judged on: a digest of every phase's
    content version. Two judgings share it exactly when they replayed the same orders; it tells
    nothing of the seed (a one-way digest of the orders, which are themselves secret)."""
    joined = ",".join(f"{phase}:{versions[phase]}" for phase in sorted(versions))
    return hashlib.sha256(joined.encode()).hexdigest()[:12]
