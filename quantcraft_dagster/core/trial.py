"""Trials: whether the judge can vouch for one measured run of a phase, and the robust summary of
several runs.

Phases B and C run as several trials, each against a fresh engine. A trial measures the engine
only if the judge kept up: it sent on time (send-lag p99 within its bound) and at the rate it
promised (open loop). A trial that fails either test is *invalid*: discarded and run again,
never scored. A load generator that was CPU-bound in phase B (the engine outpaced the client) is
not invalid, since running it again cannot help; that trial is *client-limited*, and its rate is
a lower bound on the engine's ("≥"), which the verdict says.

Every threshold lives in :class:`ValidityConfig`; the defaults come from measurements on a
2-core judge host (``bench/fairness_bench.py``; docs/judging.md states them).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from itertools import pairwise
from typing import Any

import numpy as np

from .metrics import PhaseMetrics

Stall = tuple[int, int, int]
"""(window start, window end, ns the host held the engine off its CPUs in it), judge clock."""


@dataclass(frozen=True, slots=True)
class ValidityConfig:
    """When a trial counts, and how hard the judge tries to get enough trials that do.

    ``max_send_lag_p99_us``: quiet hosts measure single µs to tens of µs in phase C; a preempted load
    generator shows milliseconds. ``max_interference``: the time other work kept the engine off its
    CPUs, as a share of a closed loop's replay (``judge.interference``). A busy engine is slowed by
    just that share, so phase B's rate is over the time it had its CPUs (``core.metrics``), and
    the bound only says when the host is too busy to vouch for even that: on this 2-core VM phase
    B trials measured 0.04–2.8 %, mostly its agent's bursts of a few ms, 10–20 % beside a build.
    ``max_rate_error``: a stall long enough to matter (≥ 2 % of the phase) moves the achieved rate.
    ``client_busy_share``: the load generator's CPU time plus its run delay (runnable, waiting for
    its CPU) over the replay's wall time, from which it, not the engine, set the pace.
    ``max_reruns``: invalid trials re-run per judging before the judge gives up as an
    infrastructure failure.

    Open loop (phase C), the judge watches the engine's CPUs between its sends instead of
    bounding a share of the whole replay (``judge.interference``): ``min_stall_us`` is the time
    other work must hold the engine off its CPUs within one sampling window (a quarter of a
    millisecond) for the orders in flight then to be the host's. Measured here on phase C: 90 % of
    windows show no hold at all and 1 % show 20 µs or more; the VM's agent and kdamond hold the
    engine for 0.3–4 ms at a time (ftrace). Orders such stalls held up for ``min_held_share`` of
    their latency or more, and any the judge sent more than ``max_send_lag_p99_us`` late, are
    left out of the latency percentiles (1–5 % of a standard trial here); a trial with more than
    ``max_disturbed`` of its orders left out is invalid.
    """

    max_send_lag_p99_us: float = 100.0
    max_interference: float = 0.05
    max_rate_error: float = 0.02
    client_busy_share: float = 0.90
    max_reruns: int = 4
    min_stall_us: float = 20.0
    min_held_share: float = 0.5
    max_disturbed: float = 0.10


def interfered(m: PhaseMetrics, cfg: ValidityConfig) -> bool:
    """Other work kept the engine off its CPUs beyond the bound: in a trial watched order by order,
    too many orders held up (``disturbed_orders``); in another, too large a share of the replay."""
    if m.disturbed is not None:
        return m.disturbed > cfg.max_disturbed * m.orders
    return m.interference is not None and m.interference > cfg.max_interference


Sample = tuple[int, int | None, int, int, int | None]
"""A stall-watch sample (``judge.interference.StallWatch``, ``qcload``), all ns: time, idle time of
the engine's CPUs (None: unknown), the engine's CPU time, its run delay, and every task's CPU time
on the engine's CPUs (None: unknown)."""


def foreign_ns(first: Sample, last: Sample, ncpus: int) -> tuple[int, int | None]:
    """Two measures of the time other work ran on the engine's CPUs between two samples, each
    never below the truth: (busy, tasks).

    ``busy``: busy time from cpuidle, elapsed minus idle, less the engine's own CPU time. It is
    continuous, but it also counts what no task is charged for: the CPU's way in and out of idle,
    interrupts taken there (an engine that sleeps and wakes often makes more of it; Go's runtime
    about a tenth of its own CPU time), and an idle period not yet over when a sample is read
    (cpuidle credits it as it ends). Without cpuidle the CPUs count as busy throughout.

    ``tasks``: every task's CPU time there (cgroup v1's root ``cpuacct``) less the engine's: other
    tasks' time exactly, but charged as a running task is ticked or switched out, milliseconds
    late (None: the host has no such figures)."""
    (t0, idle0, own0, _, tasks0), (t1, idle1, own1, _, tasks1) = first, last
    idle = idle1 - idle0 if idle0 is not None and idle1 is not None else 0
    busy = ncpus * (t1 - t0) - idle - (own1 - own0)
    tasks = tasks1 - tasks0 - (own1 - own0) if tasks0 is not None and tasks1 is not None else None
    return busy, tasks


def replay_interference(first: Sample, last: Sample, ncpus: int) -> float | None:
    """The share of a replay, between its first and last samples (``qcload`` takes them as the
    replay starts and as its last report arrives), in which other work kept the engine off its
    CPUs: the smallest of the measures of other work (:func:`foreign_ns`) and the time the engine
    waited, runnable, for its CPUs. Other work while the engine sleeps costs it nothing, and an
    engine with more busy threads than CPUs delays itself: only what all see is the host's doing."""
    span = last[0] - first[0]
    if span <= 0:
        return None
    busy, tasks = foreign_ns(first, last, ncpus)
    held = min(busy, last[3] - first[3], busy if tasks is None else tasks)
    return max(0, held) / span


def host_stalls(samples: Sequence[Sample], ncpus: int, min_stall_ns: int) -> list[Stall]:
    """The stretches between samples in which other work held the engine off its CPUs for at
    least ``min_stall_ns``, measured as :func:`replay_interference` does.

    A stall is a run of windows with busy time not the engine's (the continuous measure); the
    kernel credits a wait as it ends and charges a task's time as it is switched out, so the run
    delay and the other tasks' time are what was credited over those windows and the one after.
    """
    windows = []
    for a, b in pairwise(samples):
        busy, tasks = foreign_ns(a, b, ncpus)
        windows.append((a[0], b[0], busy, tasks, b[3] - a[3]))
    stalls, k = [], 0
    while k < len(windows):
        if windows[k][2] < min_stall_ns:
            k += 1
            continue
        first = k
        while k < len(windows) and windows[k][2] >= min_stall_ns:
            k += 1
        after = windows[first : k + 1]
        held = min(sum(w[2] for w in windows[first:k]), sum(w[4] for w in after))
        if all(w[3] is not None for w in after):
            held = min(held, sum(w[3] or 0 for w in after))
        if held >= min_stall_ns:
            stalls.append((windows[first][0], windows[k - 1][1], held))
    return stalls


def disturbed_orders(
    intended_ns: np.ndarray,
    sent_ns: np.ndarray,
    recv_ns: np.ndarray,
    stalls: Sequence[Stall],
    max_lag_ns: int,
    min_held_share: float,
) -> np.ndarray:
    """Answered orders whose latency measures the judge or the host more than the engine: sent
    more than ``max_lag_ns`` late, or held up by host stalls for at least ``min_held_share`` of
    their latency. A stall holds up the orders in flight (from intended time to report) during
    its window or the catching-up after it, as long again as the stall held the engine. An order
    of a slow engine, in flight for a long time, meets many stalls that are a sliver of its
    latency: it stays. Unanswered orders are never left out: a lost order stays unbounded."""
    answered = recv_ns != 0
    mask = (sent_ns != 0) & (sent_ns - intended_ns > max_lag_ns)
    held = np.zeros(len(intended_ns), dtype=np.int64)
    for start, end, ns in stalls:
        held += np.where((intended_ns <= end + ns) & (recv_ns >= start), ns, 0)
    mask |= held >= min_held_share * (recv_ns - intended_ns)
    return mask & answered


def judge_late(m: PhaseMetrics, target_rate: float | None, cfg: ValidityConfig) -> bool:
    """An open-loop trial in which the judge fell behind its own schedule: it sent late, or off
    its rate. (In a closed loop the judge sends when the engine lets it: its pace is the engine's.)"""
    if not target_rate or m.send_lag_p99_us is None:
        return False
    off_rate = m.send_rate is not None and abs(m.send_rate / target_rate - 1) > cfg.max_rate_error
    return m.send_lag_p99_us > cfg.max_send_lag_p99_us or off_rate


def disturbed(m: PhaseMetrics, target_rate: float | None, cfg: ValidityConfig) -> bool:
    """The judge fell behind, or other work kept the engine off its CPUs, beyond the bounds."""
    return judge_late(m, target_rate, cfg) or interfered(m, cfg)


def invalid_reason(
    m: PhaseMetrics, target_rate: float | None, cfg: ValidityConfig, own_disturbance: bool = False
) -> str | None:
    """Why the judge cannot vouch for this trial, or None when it counts.

    An open-loop trial is invalid when the judge sent late or off its rate (``judge_late``); any
    timed trial is invalid when other work kept the engine off its CPUs (``interfered``), unless
    the judge has shown that the disturbance is the engine's own (``own_disturbance``: control
    trials of the reference engine ran clean on this host and the engine, run between them, was
    disturbed again): the engine's processes made the judge late or took its own CPUs, and the
    trial counts with every order charged to it. The judge's own lateness is named first: it also
    counts among the orders held up.
    """
    if own_disturbance:
        return None
    if judge_late(m, target_rate, cfg):
        if m.send_lag_p99_us is not None and m.send_lag_p99_us > cfg.max_send_lag_p99_us:
            return (
                f"judge sent late: send-lag p99 {m.send_lag_p99_us:,.0f} µs over the "
                f"{cfg.max_send_lag_p99_us:,.0f} µs bound"
            )
        return f"judge missed its rate: {m.send_rate:,.0f} orders/s sent for a target of {target_rate:,.0f}"
    if interfered(m, cfg):
        if m.disturbed is not None:
            return (
                f"host or judge held up {m.disturbed / m.orders:.1%} of the orders,"
                f" over the {cfg.max_disturbed:.0%} bound"
            )
        return (
            f"host kept the engine off its CPUs for {m.interference:.2%} of the replay,"
            f" over the {cfg.max_interference:.2%} bound"
        )
    return None


def client_limited(m: PhaseMetrics, cfg: ValidityConfig) -> bool:
    """The load generator was busy for (almost) the whole replay: the engine may be faster."""
    return m.client_busy is not None and m.client_busy >= cfg.client_busy_share


_SUMMED = ("orders", "answered", "exact", "errors")
# The figures that rank engines are each their best trial's: the host's and the judge's noise only
# ever make an engine slower (docs/scoring.md, "Reproducible"). Latency: the lowest percentile.
BEST_LATENCIES = ("p50_us", "p90_us", "p99_us", "p999_us")
_MEDIAN = tuple(
    f.name
    for f in fields(PhaseMetrics)
    if f.name
    not in (*_SUMMED, *BEST_LATENCIES, "orders_per_s", "error_rate", "windows", "client_limited", "disturbed")
)


def best_latency(values: Sequence[float]) -> float:
    """The lowest of the trials' latencies, unless one is unbounded (a lost order is never hidden
    behind a better trial)."""
    return math.inf if any(math.isinf(v) for v in values) else min(values)


def _over(values: list[float | None], pick: Any) -> float | None:
    present = [v for v in values if v is not None]
    return pick(present) if present else None


def summarize(trials: list[PhaseMetrics]) -> PhaseMetrics:
    """One phase over its valid trials: counts summed (every report was checked), the figures that
    rank engines their best trial's (each latency percentile its lowest, ``best_latency``; orders/s
    its highest, client-limited when that fastest trial was), every other figure the median of the
    trials' figures (percentiles are never averaged), and the per-second windows of the median
    trial by p99."""
    if len(trials) == 1:
        return trials[0]
    summed: dict[str, int] = {name: sum(getattr(t, name) for t in trials) for name in _SUMMED}
    figures: dict[str, Any] = dict(summed)
    for name in _MEDIAN:
        figures[name] = _over([getattr(t, name) for t in trials], statistics.median)
    for name in BEST_LATENCIES:
        figures[name] = _over([getattr(t, name) for t in trials], best_latency)
    fastest = max(trials, key=lambda t: t.orders_per_s or 0.0)
    by_p99 = sorted(trials, key=lambda t: math.inf if t.p99_us is None else t.p99_us)
    return replace(
        by_p99[(len(by_p99) - 1) // 2],
        **figures,
        orders_per_s=fastest.orders_per_s,
        client_limited=fastest.client_limited,
        error_rate=summed["errors"] / summed["orders"] if summed["orders"] else 0.0,
        disturbed=None if any(t.disturbed is None for t in trials) else sum(t.disturbed or 0 for t in trials),
    )
