"""Judge-host calibration: the platform's own correct engine, judged on a judging slot, must
measure what it measures on a quiet host. When it does not, the slot's verdicts are suspect.

The band is measured, not guessed: on a quiet 2-core host the correct example engine judges at
phase A p99 ≈ 80 µs, phase C p99 40–120 µs, send-lag p99 < 1 µs, no discarded trial
(``bench/fairness_bench.py``), and a final-score range over the quick profile's three trials of
2.9–5.2 points on the ``contest`` preset (its phase B trials last a few ms: their rates spread;
the ``seed`` preset saturates, range 0). The bounds leave a wide margin for
ordinary noise and still catch a host whose load generator or engine CPU is shared. The share of
phase C's orders the host held up (left out of the latency figures) is a slot's health too: its
verdicts stand, but a slot that leaves out more than a few percent is one where other work
shares the engine's CPU (this VM: 3–5 %, its agent and kdamond).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class CalibrationBand:
    max_final_spread: float = 8.0
    max_a_p99_us: float = 500.0
    max_c_p99_us: float = 1_000.0
    max_send_lag_p99_us: float = 50.0
    max_c_left_out: float = 0.05
    max_invalid_trials: int = 0
    min_correctness: float = 100.0


def figures(verdict: dict[str, Any], ceiling: float | None) -> dict[str, Any]:
    """What a calibration records, from the calibration engine's public verdict."""
    phases = verdict["phases"]
    lo, hi = verdict["scores_range"]["final"]
    return {
        "valid": True,
        "reason": verdict["reason"],
        "final": verdict["scores"]["final"],
        "final_spread": round(hi - lo, 3),
        "correctness": verdict["scores"]["correctness"],
        # Where the platform's own engine sits on the contest's scale (``preset_fit``).
        "scoring": verdict["scoring"],
        "latency": verdict["scores"]["latency"],
        "throughput": verdict["scores"]["throughput"],
        "a_p99_us": phases["A"]["p99_us"],
        "c_p99_us": phases["C"]["p99_us"],
        "send_lag_p99_us": phases["C"]["send_lag_p99_us"],
        "c_left_out": phases["C"]["disturbed"] / phases["C"]["orders"]
        if phases["C"].get("disturbed") is not None
        else None,
        "b_orders_per_s": phases["B"]["orders_per_s"],
        "cpu_us_per_order": phases["B"]["cpu_us_per_order"],
        "invalid_trials": sum(p["invalid_trials"]["count"] for p in phases.values()),
        "client_ceiling_orders_per_s": ceiling,
    }


def out_of_band(calibration: dict[str, Any], band: CalibrationBand) -> list[str]:
    """Every way the calibration falls outside the band; empty when the slot is healthy."""
    if not calibration.get("valid"):
        return [f"no valid calibration: {calibration.get('reason')}"]
    limits = [
        ("final_spread", band.max_final_spread, "above"),
        ("a_p99_us", band.max_a_p99_us, "above"),
        ("c_p99_us", band.max_c_p99_us, "above"),
        ("send_lag_p99_us", band.max_send_lag_p99_us, "above"),
        ("c_left_out", band.max_c_left_out, "above"),
        ("invalid_trials", band.max_invalid_trials, "above"),
        ("correctness", band.min_correctness, "below"),
    ]
    problems = []
    for name, bound, side in limits:
        value = calibration.get(name)
        if value is None or (value > bound if side == "above" else value < bound):
            problems.append(f"{name} {value} {side} the band's {bound}")
    return problems


# The share of a component's scale the calibration engine may sit in and still leave room above
# and below it: an engine twice as good, or a tenth as good, must still move the score.
FIT_MARGIN = 5.0


def preset_fit(calibration: dict[str, Any]) -> list[str]:
    """How the scoring preset fails to fit this host: each component on which the platform's own
    correct engine scores within ``FIT_MARGIN`` points of 0 or 100, where the scale stops telling
    engines apart (the seed's curves on this judge: every correct engine ≈ 100). Empty: it fits."""
    problems = []
    for name in ("latency", "throughput"):
        value = calibration.get(name)
        if value is not None and not FIT_MARGIN < value < 100.0 - FIT_MARGIN:
            problems.append(
                f"the calibration engine scores {value:.2f} on {name} on the {calibration.get('scoring')}"
                " preset: the scale saturates on this host (docs/scoring.md, choosing a preset)"
            )
    return problems
