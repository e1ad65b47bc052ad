"""Latency and throughput figures from per-order timestamps.

Every order has three judge-clock stamps: intended (when it was due), sent and received. Three
distributions follow: corrected latency (received − intended; what the engine is charged, so a
stalled engine cannot hide the orders queued behind it), service latency (received − sent) and
send lag (sent − intended; the judge's own lateness, which decides whether a trial counts).

Percentiles are exact nearest-rank values (sorting, rank ``ceil(p·N/100)`` in exact arithmetic):
an observed latency, never an interpolation. An order that got no report has infinite latency,
so a p99 can't hide lost orders: if more than 1 % are lost, p99 is unbounded.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction
from typing import Any

import numpy as np

PERCENTILES = (50.0, 90.0, 99.0, 99.9)
# The percentile plot's points: dense in the tail, where engines (and a late judge) differ.
CURVE_PERCENTILES = (0.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99, 100.0)
NS_PER_S = 1_000_000_000
# What the judge measured of a trial beside its telemetry rows: the engine's CPU time (its
# cgroup), the load generator's busy share and the host's interference.
JUDGE_FIGURES = ("cpu_us_per_order", "client_busy", "client_run_delay", "client_limited", "interference")


@dataclass(slots=True)
class Window:
    """One second of a phase, by receive time."""

    second: int
    orders: int
    p50_us: float
    p99_us: float


@dataclass(slots=True)
class PhaseMetrics:
    orders: int
    answered: int
    exact: int
    errors: int
    p50_us: float | None
    p90_us: float | None
    p99_us: float | None
    p999_us: float | None
    orders_per_s: float | None
    error_rate: float
    windows: list[Window] = field(default_factory=list)
    service_p99_us: float | None = None
    send_lag_p50_us: float | None = None
    send_lag_p99_us: float | None = None
    send_rate: float | None = None  # achieved sending rate (open loop: compared with the target)
    cpu_us_per_order: float | None = None  # engine CPU time (its cgroup) per order
    client_busy: float | None = None  # load generator CPU time / wall time of the replay
    # The load generator's time runnable but off its CPU, over the replay's wall time: near 0 is
    # the proof that nothing else ran on the judge's CPU during the trial.
    client_run_delay: float | None = None
    client_limited: bool = False
    # Time other work kept the engine off its CPUs, over the replay's wall time (the host's share)
    interference: float | None = None
    # Open loop: answered orders whose latency the judge does not vouch for (sent late, or in
    # flight while the host held the engine off its CPUs: ``core.trial.disturbed_orders``), left
    # out of the latency percentiles; None where the trial was not watched order by order.
    disturbed: int | None = None

    def to_obj(self) -> dict[str, Any]:
        """JSON shape; unbounded percentiles become ``None`` (JSON has no infinity)."""
        obj = asdict(self)
        for key in _LATENCIES:
            value = obj[key]
            obj[key] = None if value is None or not np.isfinite(value) else round(value, 3)
        for key in ("orders_per_s", "send_rate", "cpu_us_per_order", "client_busy"):
            if obj[key] is not None:
                obj[key] = round(obj[key], 3)
        if obj["client_run_delay"] is not None:
            obj["client_run_delay"] = round(obj["client_run_delay"], 6)
        if obj["interference"] is not None:
            obj["interference"] = round(obj["interference"], 5)
        return obj


_LATENCIES = ("p50_us", "p90_us", "p99_us", "p999_us", "service_p99_us", "send_lag_p50_us", "send_lag_p99_us")


def latencies_us(start_ns: np.ndarray, recv_ns: np.ndarray) -> np.ndarray:
    """Per-order latency in µs; ``recv_ns == 0`` (no report) gives +inf."""
    lat = (recv_ns - start_ns).astype(np.float64) / 1_000.0
    lat[recv_ns == 0] = np.inf
    return lat


def phase_metrics(
    intended_ns: np.ndarray,
    sent_ns: np.ndarray,
    recv_ns: np.ndarray,
    exact: np.ndarray,
    cpu_ns: int | None = None,
    client_busy: float | None = None,
    interference: float | None = None,
    client_run_delay: float | None = None,
    disturbed: np.ndarray | None = None,
    in_flight: int = 0,
) -> PhaseMetrics:
    """Figures for one run of a phase; closed-loop phases have ``intended_ns == sent_ns``.

    ``disturbed`` (a mask, open loop) marks the orders left out of the latency percentiles; they
    still count for everything else. A pipelined replay (``in_flight``: the most orders it keeps
    in flight) is rated by its sustained rate (``sustained_rate``) when it is long enough to have
    stretches; otherwise, and in a trial not watched order by order, the rate is over the time the
    engine had its CPUs: the replay's span less the ``interference`` share (the host's stalls slow
    a busy engine by just that much)."""
    n = len(intended_ns)
    answered_mask = recv_ns != 0
    answered = int(answered_mask.sum())
    exact_count = int(np.asarray(exact, dtype=bool).sum())
    if n == 0:
        return PhaseMetrics(0, 0, 0, 0, None, None, None, None, None, 0.0)
    series = latency_series(intended_ns, sent_ns, recv_ns)
    vouched = ~disturbed if disturbed is not None else np.ones(n, dtype=bool)
    # nothing to vouch for: such a trial never counts
    p50: float | None = None
    p90: float | None = None
    p99: float | None = None
    p999: float | None = None
    service_p99: float | None = None
    if vouched.any():
        p50, p90, p99, p999 = nearest_rank(series["corrected"][vouched], PERCENTILES)
        service_p99 = nearest_rank(series["service"][vouched], (99.0,))[0]
    rate: float | None = 0.0  # a phase that ran but got nothing back measured zero, not "missing"
    if answered:
        span_ns = int(recv_ns[answered_mask].max()) - first_send(intended_ns)
        if disturbed is None and interference is not None:
            span_ns = round(span_ns * (1 - min(interference, 0.5)))  # the time it had its CPUs
        rate = answered * NS_PER_S / span_ns if span_ns > 0 else None
        if in_flight > 1:
            rate = sustained_rate(recv_ns[answered_mask], in_flight) or rate
    sent_mask = sent_ns != 0
    lag_p50 = lag_p99 = send_rate = None
    if sent_mask.any():
        lag_p50, lag_p99 = nearest_rank(series["send_lag"], (50.0, 99.0))
        sent = sent_ns[sent_mask]
        sent_span = int(sent.max()) - int(sent.min())
        send_rate = (len(sent) - 1) * NS_PER_S / sent_span if sent_span > 0 else None
    return PhaseMetrics(
        orders=n,
        answered=answered,
        exact=exact_count,
        errors=n - exact_count,
        p50_us=p50,
        p90_us=p90,
        p99_us=p99,
        p999_us=p999,
        orders_per_s=rate,
        error_rate=(n - exact_count) / n,
        windows=per_second(intended_ns, recv_ns),
        service_p99_us=service_p99,
        send_lag_p50_us=lag_p50,
        send_lag_p99_us=lag_p99,
        send_rate=send_rate,
        cpu_us_per_order=cpu_ns / 1_000 / n if cpu_ns is not None else None,
        client_busy=client_busy,
        client_run_delay=client_run_delay,
        interference=interference,
        disturbed=int(disturbed.sum()) if disturbed is not None else None,
    )


# A stretch holds at least this many windows' worth of orders, so an engine that holds its
# reports back and answers them in a burst moves a stretch's rate by at most 1/8.
STRETCH_WINDOWS = 8
STRETCHES = 20  # a trial long enough is cut into this many
SUSTAINED_PERCENTILE = 90.0


def sustained_rate(recv_ns: np.ndarray, in_flight: int) -> float | None:
    """A pipelined replay's sustained rate: its reports, in receive order, cut into stretches of
    equal counts (``STRETCHES``, each at least ``STRETCH_WINDOWS`` × ``in_flight`` orders), and
    the 90th percentile of the stretches' rates. None when the replay has fewer than two.

    Why not the whole replay's rate: on a shared host the same engine runs phase B in two modes,
    switching every few tens of ms (measured on this 2-core VM: 2.7-3.0M orders/s and 1.5-1.8M,
    the engine's CPU per order 0.45 µs and 0.7 µs, with nothing else on its CPU), so a replay's
    overall rate is the share of each mode, not the engine. The fastest stretches are the engine
    at its own speed: the host's noise only ever slows it."""
    stretch = max(len(recv_ns) // STRETCHES, STRETCH_WINDOWS * in_flight)
    if len(recv_ns) <= 2 * stretch:
        return None
    edges = np.sort(recv_ns)[::stretch]
    spans = np.diff(edges.astype(np.int64))
    rates = stretch * NS_PER_S / np.maximum(spans, 1)
    return float(nearest_rank(rates, (SUSTAINED_PERCENTILE,))[0])


def latency_series(
    intended_ns: np.ndarray, sent_ns: np.ndarray, recv_ns: np.ndarray
) -> dict[str, np.ndarray]:
    """Per order, in µs: corrected latency (from the intended time), service latency (from the
    send; an unsent order's from its intended time) and, for the orders sent, send lag."""
    sent_mask = sent_ns != 0
    return {
        "corrected": latencies_us(intended_ns, recv_ns),
        "service": latencies_us(np.where(sent_mask, sent_ns, intended_ns), recv_ns),
        "send_lag": (sent_ns[sent_mask] - intended_ns[sent_mask]).astype(np.float64) / 1_000.0,
    }


def latency_curves(
    intended_ns: np.ndarray, sent_ns: np.ndarray, recv_ns: np.ndarray, disturbed: np.ndarray | None = None
) -> dict[str, list[float | None]]:
    """The three latency series at each of :data:`CURVE_PERCENTILES` (µs), for a percentile plot.

    Given every sample of a phase's trials together, the curve is that of the merged samples:
    percentiles are never averaged. Unanswered orders are unbounded (``None``); send lag counts
    the orders that were sent; the two latencies leave out ``disturbed`` orders, as the figures do."""
    curves: dict[str, list[float | None]] = {"percentiles": list(CURVE_PERCENTILES)}
    series = latency_series(intended_ns, sent_ns, recv_ns)
    if disturbed is not None:
        series["corrected"] = series["corrected"][~disturbed]
        series["service"] = series["service"][~disturbed]
    for name, values in series.items():
        points = (
            nearest_rank(values, CURVE_PERCENTILES) if len(values) else [math.inf] * len(CURVE_PERCENTILES)
        )
        curves[name] = [round(v, 3) if math.isfinite(v) else None for v in points]
    return curves


def with_judge_figures(m: PhaseMetrics, judged: dict[str, Any]) -> PhaseMetrics:
    """``m`` (figures from telemetry rows) with what the judge measured of the same trial
    (:data:`JUDGE_FIGURES`, as the verdict records them)."""
    return replace(m, **{k: judged[k] for k in JUDGE_FIGURES if k in judged})


def nearest_rank(values: np.ndarray, percentiles: tuple[float, ...]) -> list[float]:
    """The ``ceil(p·N/100)``-th smallest value for each p (exact: no float rounding of the rank)."""
    ordered = np.sort(values)
    n = len(ordered)
    ranks = [max(1, math.ceil(Fraction(str(p)) * n / 100)) for p in percentiles]
    return [float(ordered[r - 1]) for r in ranks]


def first_send(start_ns: np.ndarray) -> int:
    """The phase's first send: a phase cut short (its time limit, a crashed engine) leaves the
    orders it never sent at 0, which is no time on the monotonic clock but its boot."""
    sent = start_ns[start_ns != 0]
    return int(sent.min()) if len(sent) else 0


def per_second(start_ns: np.ndarray, recv_ns: np.ndarray) -> list[Window]:
    """Answered orders grouped by the second (from the phase's first send) they were answered in."""
    mask = recv_ns != 0
    if not mask.any():
        return []
    t0 = first_send(start_ns)
    seconds = (recv_ns[mask] - t0) // NS_PER_S
    lat = (recv_ns[mask] - start_ns[mask]) / 1_000.0
    order = np.argsort(seconds, kind="stable")
    seconds, lat = seconds[order], lat[order]
    bounds = np.flatnonzero(np.diff(seconds)) + 1
    windows = []
    for chunk_s, chunk_lat in zip(np.split(seconds, bounds), np.split(lat, bounds), strict=True):
        p50, p99 = nearest_rank(chunk_lat, (50.0, 99.0))
        windows.append(Window(int(chunk_s[0]), len(chunk_lat), round(float(p50), 3), round(float(p99), 3)))
    return windows
