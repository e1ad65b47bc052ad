"""Trials: whether the judge can vouch for one measured run of a phase, and the robust summary of
several runs.

Phases B and C run as several trials, each against a fresh engine. A trial measures the engine
only if the judge kept up: it sent on time (send-lag p99 within its bound) and at the rate it
promised (open loop). A trial that fails either test is *invalid*: discarded and run again,
never scored. A load generator that was CPU-bound in phase B (the engine outpaced the client) is
not invalid, since running it again cannot help; that trial is *client-limited*, and its rate is
a lower bound on the engine's ("≥"), which the verdict says.

Every threshold lives in :class:`ValidityConfig`; the defaults come from measurements on a
2-core judge host (``bench/fairness_bench.py``; the README states them).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, fields, replace

from .metrics import PhaseMetrics


@dataclass(frozen=True, slots=True)
class ValidityConfig:
    """When a trial counts, and how hard the judge tries to get enough trials that do.

    ``max_send_lag_p99_us``: quiet hosts measure 5–25 µs at 20k orders/s; a preempted load
    generator shows milliseconds. ``max_interference``: the time other work kept the engine off its
    CPUs, as a share of the replay (``judge.interference``). Stalls that add up to a share s delay
    at most about s of an open loop's orders, so under 0.5 % the p99 charged is at most the
    undisturbed p99.5. On this 2-core VM, idle, trials measured 0.2–4 %: those near 0.2 % had
    phase C p99s of 23–50 µs, those at 1.6 % or more 1.5–3.8 ms (``bench/fairness_bench.py``).
    ``max_rate_error``: a stall long enough to matter (≥ 2 % of the phase) moves the achieved rate.
    ``client_busy_share``: the load generator's CPU time plus its run delay (runnable, waiting for
    its CPU) over the replay's wall time, from which it, not the engine, set the pace.
    ``max_reruns``: invalid trials re-run per judging before the judge gives up as an
    infrastructure failure.
    """

    max_send_lag_p99_us: float = 100.0
    max_interference: float = 0.005
    max_rate_error: float = 0.02
    client_busy_share: float = 0.90
    max_reruns: int = 4


def interfered(m: PhaseMetrics, cfg: ValidityConfig) -> bool:
    """Other work kept the engine off its CPUs for more than the bound."""
    return m.interference is not None and m.interference > cfg.max_interference


def invalid_reason(
    m: PhaseMetrics, target_rate: float | None, cfg: ValidityConfig, own_interference: bool = False
) -> str | None:
    """Why the judge cannot vouch for this trial, or None when it counts.

    Any timed trial is invalid when other work kept the engine off its CPUs, unless the judge has
    shown that work is the engine's own (``own_interference``: a control trial of the reference
    engine ran clean on this host); only an open-loop trial can be invalid for the judge's pace:
    in a closed loop the judge sends when the engine lets it, so its pace is the engine's.
    """
    if interfered(m, cfg) and not own_interference:
        return (
            f"host kept the engine off its CPUs for {m.interference:.2%} of the replay,"
            f" over the {cfg.max_interference:.2%} bound"
        )
    if not target_rate or m.send_lag_p99_us is None:
        return None
    if m.send_lag_p99_us > cfg.max_send_lag_p99_us:
        return (
            f"judge sent late: send-lag p99 {m.send_lag_p99_us:,.0f} µs over the "
            f"{cfg.max_send_lag_p99_us:,.0f} µs bound"
        )
    if m.send_rate is not None and abs(m.send_rate / target_rate - 1) > cfg.max_rate_error:
        return f"judge missed its rate: {m.send_rate:,.0f} orders/s sent for a target of {target_rate:,.0f}"
    return None


def client_limited(m: PhaseMetrics, cfg: ValidityConfig) -> bool:
    """The load generator was busy for (almost) the whole replay: the engine may be faster."""
    return m.client_busy is not None and m.client_busy >= cfg.client_busy_share


_SUMMED = ("orders", "answered", "exact", "errors")
_MEDIAN = tuple(
    f.name
    for f in fields(PhaseMetrics)
    if f.name not in (*_SUMMED, "error_rate", "windows", "client_limited")
)


def summarize(trials: list[PhaseMetrics]) -> PhaseMetrics:
    """One phase over its valid trials: counts summed (every report was checked), every figure
    the median of the trials' figures (percentiles are never averaged), the per-second windows
    of the median trial by p99, and client-limited when most trials were."""
    if len(trials) == 1:
        return trials[0]
    summed = {name: sum(getattr(t, name) for t in trials) for name in _SUMMED}
    medians = {}
    for name in _MEDIAN:
        values = [getattr(t, name) for t in trials if getattr(t, name) is not None]
        medians[name] = statistics.median(values) if values else None
    by_p99 = sorted(trials, key=lambda t: math.inf if t.p99_us is None else t.p99_us)
    return replace(
        by_p99[(len(by_p99) - 1) // 2],
        **summed,
        **medians,
        error_rate=summed["errors"] / summed["orders"] if summed["orders"] else 0.0,
        client_limited=sum(t.client_limited for t in trials) * 2 > len(trials),
    )
