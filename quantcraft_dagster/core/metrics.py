"""Latency and throughput figures from per-order timestamps.

Percentiles are exact nearest-rank values (sorting, rank ``ceil(p·N/100)`` in exact arithmetic):
an observed latency, never an interpolation. An order that got no report has infinite latency,
so a p99 can't hide lost orders: if more than 1 % are lost, p99 is unbounded.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

PERCENTILES = (50.0, 90.0, 99.0, 99.9)
NS_PER_S = 1_000_000_000


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

    def to_obj(self) -> dict[str, Any]:
        """JSON shape; unbounded percentiles become ``None`` (JSON has no infinity)."""
        obj = asdict(self)
        for key in ("p50_us", "p90_us", "p99_us", "p999_us"):
            value = obj[key]
            obj[key] = None if value is None or not np.isfinite(value) else round(value, 3)
        if obj["orders_per_s"] is not None:
            obj["orders_per_s"] = round(obj["orders_per_s"], 1)
        return obj

    @classmethod
    def from_obj(cls, obj: dict[str, Any]) -> PhaseMetrics:
        """Inverse of :meth:`to_obj`; a ``None`` percentile of a phase with orders was unbounded."""
        fields = dict(obj)
        for key in ("p50_us", "p90_us", "p99_us", "p999_us"):
            if fields[key] is None and fields["orders"]:
                fields[key] = math.inf
        fields["windows"] = [Window(**w) for w in fields.get("windows", [])]
        return cls(**fields)


def latencies_us(start_ns: np.ndarray, recv_ns: np.ndarray) -> np.ndarray:
    """Per-order latency in µs; ``recv_ns == 0`` (no report) gives +inf."""
    lat = (recv_ns - start_ns).astype(np.float64) / 1_000.0
    lat[recv_ns == 0] = np.inf
    return lat


def phase_metrics(start_ns: np.ndarray, recv_ns: np.ndarray, exact: np.ndarray) -> PhaseMetrics:
    """Figures for one phase; ``start_ns`` is the send time, or the intended one when open loop."""
    n = len(start_ns)
    answered_mask = recv_ns != 0
    answered = int(answered_mask.sum())
    exact_count = int(np.asarray(exact, dtype=bool).sum())
    if n == 0:
        return PhaseMetrics(0, 0, 0, 0, None, None, None, None, None, 0.0)
    lat = latencies_us(start_ns, recv_ns)
    p50, p90, p99, p999 = nearest_rank(lat, PERCENTILES)
    rate = 0.0  # a phase that ran but got nothing back measured zero, not "missing"
    if answered:
        span_ns = int(recv_ns[answered_mask].max()) - int(start_ns.min())
        rate = answered * NS_PER_S / span_ns if span_ns > 0 else None
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
        windows=per_second(start_ns, recv_ns),
    )


def nearest_rank(values: np.ndarray, percentiles: tuple[float, ...]) -> list[float]:
    """The ``ceil(p·N/100)``-th smallest value for each p (exact: no float rounding of the rank)."""
    ordered = np.sort(values)
    n = len(ordered)
    ranks = [max(1, math.ceil(Fraction(str(p)) * n / 100)) for p in percentiles]
    return [float(ordered[r - 1]) for r in ranks]


def per_second(start_ns: np.ndarray, recv_ns: np.ndarray) -> list[Window]:
    """Answered orders grouped by the second (from the phase's first send) they were answered in."""
    mask = recv_ns != 0
    if not mask.any():
        return []
    t0 = int(start_ns.min())
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
