"""Deterministic order traces: same profile and phase give the same bytes on any machine.

Generation follows the seed's rules (phase A: 50,000 orders, seed 42, 50 % LIMIT / 35 % MARKET /
15 % CANCEL, price N(100, 2) rounded to 0.01, quantity log-uniform in [1, 1000]; the profiles
below) and runs the reference engine in lock-step, so a CANCEL targets an order that really rests
at that moment; a small share targets an order that is gone, to exercise REJECTED.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, replace

from .book import ReferenceEngine
from .protocol import BUY, CANCEL, LIMIT, MARKET, PRICE_SCALE, RESTING, SELL, Order

PHASES = ("A", "B", "C")
_GONE_KEPT = 1024  # stale cancel targets remembered per symbol; bounds memory on long traces


@dataclass(frozen=True, slots=True)
class PhaseSpec:
    """How one phase's trace is generated and sent.

    ``window`` bounds orders in flight per connection (phase B); ``rate`` is the aggregate open-loop
    send rate in orders per second (phase C). Phase C's rate is one that a competent engine serves
    with room to spare, so that it measures latency, not queueing: phase B scores capacity. An
    engine run near saturation turns every small change in its own cost per order into a many-fold
    change in its percentiles, and its score into a draw (docs/scoring.md, "Phase C's rate").
    """

    phase: str
    orders: int
    seed: int
    symbols: tuple[str, ...]
    connections: int
    window: int = 1
    rate: float | None = None
    limit_share: float = 0.50
    market_share: float = 0.35
    stale_cancel_share: float = 0.05

    @property
    def in_flight(self) -> int:
        """The most orders a pipelined replay keeps in flight; 0 when it is not pipelined."""
        return self.window * self.connections if self.window > 1 else 0

    def connection_of(self, symbol: str) -> int:
        """Each symbol belongs to exactly one connection, so its order sequence is deterministic."""
        return self.symbols.index(symbol) % self.connections


@dataclass(frozen=True, slots=True)
class Profile:
    """A judging's shape; ``trials`` is how many counted runs phases B and C each get."""

    name: str
    phases: dict[str, PhaseSpec]
    trials: int = 3


_TEN = tuple(f"QC{i}" for i in range(10))

PROFILES: dict[str, Profile] = {
    "quick": Profile(
        "quick",
        {
            "A": PhaseSpec("A", 2_000, 42, ("QCX",), 1),
            "B": PhaseSpec("B", 10_000, 43, _TEN, 10, window=64),
            "C": PhaseSpec("C", 3_000, 44, _TEN, 10, rate=6_000.0),
        },
    ),
    "standard": Profile(
        "standard",
        {
            "A": PhaseSpec("A", 50_000, 42, ("QCX",), 1),
            "B": PhaseSpec("B", 200_000, 43, _TEN, 10, window=128),
            "C": PhaseSpec("C", 20_000, 44, _TEN, 10, rate=10_000.0),
        },
    ),
}


def get_spec(profile: str, phase: str) -> PhaseSpec:
    try:
        return PROFILES[profile].phases[phase]
    except KeyError:
        raise ValueError(
            f"unknown profile/phase {profile}/{phase}; profiles: {sorted(PROFILES)}, phases: A B C"
        ) from None


def official(spec: PhaseSpec, secret: str, submission: str | None) -> PhaseSpec:
    """The same shape (sizes, rates, symbols, type mix) with an organiser-held seed of one judging.

    HMAC-SHA256 under the secret of the judging's scope, the phase and the public seed. The scope
    is the submission's id (its partition key), so every official judging replays its own trace:
    orders and answers a contestant collects from one judging's divergences or stderr are worth
    nothing in the next. ``submission=None`` is the finals' one shared set, judged by every
    finalist alike. Without the secret no seed can be guessed; with it, any judging's trace is
    reproduced from its id alone. The seed is never logged, stored or shown.
    """
    scope = "finals" if submission is None else f"submission/{submission}"
    message = f"{scope}/{spec.phase}/{spec.seed}".encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return replace(spec, seed=int.from_bytes(digest[:8], "big"))


def generate(spec: PhaseSpec) -> Iterator[Order]:
    """Yield the phase's orders in trace order; streaming, so memory is the book, not the trace."""
    rng = random.Random(spec.seed)
    engine = ReferenceEngine()
    # Ids that rested at some point, per symbol; stale ones are swept lazily when drawn.
    candidates: dict[str, list[str]] = {s: [] for s in spec.symbols}
    gone: dict[str, list[str]] = {s: [] for s in spec.symbols}
    log_max_qty = math.log(1000)
    limit_cut = spec.limit_share
    market_cut = spec.limit_share + spec.market_share
    for seq in range(spec.orders):
        symbol = spec.symbols[0] if len(spec.symbols) == 1 else rng.choice(spec.symbols)
        order_id = f"{spec.phase}-{seq:07d}"
        draw = rng.random()
        order = None
        if draw >= market_cut:
            target = _cancel_target(rng, engine, candidates[symbol], gone[symbol], spec)
            if target is not None:
                order = Order(seq, order_id, symbol, CANCEL, target_order_id=target)
        if order is None:
            side = BUY if rng.random() < 0.5 else SELL
            qty = max(1, min(1000, round(math.exp(rng.uniform(0.0, log_max_qty)))))
            if draw < limit_cut or draw >= market_cut:
                cents = round(rng.gauss(100.0, 2.0) * 100)
                price = max(1, cents) * (PRICE_SCALE // 100)
                order = Order(seq, order_id, symbol, LIMIT, side, price, qty)
            else:
                order = Order(seq, order_id, symbol, MARKET, side, None, qty)
        report = engine.process(order)
        if report.status == RESTING:
            live = candidates[symbol]
            live.append(order_id)
            if len(live) > 2 * len(engine.resting) + 1024:  # drop filled ids: memory tracks the book
                live[:] = [oid for oid in live if engine.is_resting(oid)]
        yield order


def _cancel_target(
    rng: random.Random,
    engine: ReferenceEngine,
    live: list[str],
    gone: list[str],
    spec: PhaseSpec,
) -> str | None:
    """A resting order of this symbol, or now and then one that no longer rests."""
    if gone and rng.random() < spec.stale_cancel_share:
        return rng.choice(gone)
    while live:
        i = rng.randrange(len(live))
        candidate = live[i]
        live[i] = live[-1]
        live.pop()
        gone.append(candidate)
        if len(gone) > 2 * _GONE_KEPT:
            del gone[:_GONE_KEPT]
        if engine.is_resting(candidate):
            return candidate
    return None
