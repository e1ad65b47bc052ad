"""The per-submission assets that read the judging's values (direct invocation, in-memory values)."""

from __future__ import annotations

import dagster as dg
import numpy as np
import pyarrow as pa
import pytest

import assets.submission as submission_assets
from quantcraft_dagster.core.telemetry import TELEMETRY_SCHEMA
from resources import DuckDBResource


def _rows(
    phase: str, trial: int, latency_us: np.ndarray, lag_us: int = 0, disturbed: int = 0
) -> dict[str, list]:
    """Orders ``latency_us`` apart; the last ``disturbed`` of them left out by the judge."""
    n = len(latency_us)
    intended = np.arange(n, dtype=np.int64) * 50_000
    sent = intended + lag_us * 1_000
    return {
        "phase": [phase] * n, "trial": [trial] * n, "connection": [0] * n, "seq": list(range(n)),
        "order_id": [f"{phase}-{trial}-{i}" for i in range(n)], "intended_ns": intended.tolist(),
        "sent_ns": sent.tolist(), "recv_ns": (sent + latency_us * 1_000).tolist(), "status": ["FILLED"] * n,
        "exact": [True] * n, "disturbed": [False] * (n - disturbed) + [True] * disturbed,
    }  # fmt: skip


def _table(*parts: dict[str, list]) -> pa.Table:
    return pa.concat_tables(pa.table(p, schema=TELEMETRY_SCHEMA) for p in parts)


INVALID = {"count": 1, "reasons": ["judge sent late: send-lag p99 900 µs over the 100 µs bound"]}


def trial(
    cpu_us: float,
    busy: float,
    interference: float | None,
    client_limited: bool = False,
    disturbed: int | None = None,
) -> dict:
    """What the judge measured of a trial, as the verdict lists it."""
    return {
        "cpu_us_per_order": cpu_us,
        "client_busy": busy,
        "client_limited": client_limited,
        "interference": interference,
        "disturbed": disturbed,
    }


def judged() -> tuple[dict, pa.Table]:
    """A verdict's phases and their telemetry: phase A once; phase B once, client-limited; phase C
    two counted trials (numbered 0 and 2: trial 1 was invalid and re-run), the engine answering in
    10 µs, then in 30 µs, the judge 2 µs late throughout; in the first, 5 orders in flight during
    a host stall took 900 µs and were left out."""
    telemetry = _table(
        _rows("A", 0, np.full(4, 50)),
        _rows("B", 0, np.full(100, 80)),
        _rows("C", 0, np.concatenate([np.full(200, 10), np.full(5, 900)]), lag_us=2, disturbed=5),
        _rows("C", 2, np.full(200, 30), lag_us=2),
    )
    none = {"count": 0, "reasons": []}
    verdict = {
        "profile": "quick",
        "phases": {
            "A": {"trials": [{"cpu_us_per_order": None}], "invalid_trials": none},
            "B": {"trials": [trial(1.5, 0.97, None, client_limited=True)], "invalid_trials": none},
            "C": {
                "trials": [trial(2.0, 0.4, 0.001, disturbed=5), trial(4.0, 0.5, 0.003, disturbed=0)],
                "invalid_trials": INVALID,
            },
        },
    }
    return verdict, telemetry


def metrics_of(verdict: dict, telemetry: pa.Table) -> dg.Output:
    return submission_assets.metrics(
        context=dg.build_asset_context(partition_key="t-1"),
        verdict=verdict,
        telemetry=telemetry,
        duckdb=DuckDBResource(),
    )


def test_metrics_carry_the_judges_trial_figures_and_merged_percentile_curves():
    out = metrics_of(*judged())
    c = out.value["C"]
    assert [t["cpu_us_per_order"] for t in c["trials"]] == [2.0, 4.0]
    assert [t["p99_us"] for t in c["trials"]] == [12.0, 32.0]  # corrected: lag + service
    assert [t["disturbed"] for t in c["trials"]] == [5, 0] and c["disturbed"] == 5
    assert c["orders"] == 405  # the disturbed orders still count, and were checked
    assert c["cpu_us_per_order"] == 3.0 and c["interference"] == pytest.approx(0.002)  # medians
    assert c["invalid_trials"] == INVALID
    curves = c["curves"]
    at = {p: i for i, p in enumerate(curves["percentiles"])}
    # The merged samples' percentiles: p50 is an observed 12 µs, never the trials' average 22.
    assert curves["corrected"][at[50.0]] == 12.0 and curves["corrected"][at[99.0]] == 32.0
    assert curves["service"][at[50.0]] == 10.0 and curves["send_lag"][at[99.99]] == 2.0
    assert curves["corrected"][at[100.0]] == 32.0  # not a disturbed order's 902
    assert set(out.value) == {"A", "B", "C"} and out.value["B"]["client_limited"] is True
    assert out.value["A"]["curves"]["corrected"][at[100.0]] == 50.0
    assert out.metadata["C_cpu_us_per_order"].value == 3.0
