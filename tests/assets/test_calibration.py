"""Calibration: the check reports what the band finds, and fails when the load generator's CPU is shared.

Whether this VM is quiet at the moment a test runs is not something a test can assert (its noise
bursts reach milliseconds), so the healthy path checks the asset and its check agree with the band."""

from __future__ import annotations

import os
import subprocess
import sys

import dagster as dg

from assets.calibration import calibration, calibration_in_band
from quantcraft_dagster.core.calibration import CalibrationBand, out_of_band
from quantcraft_dagster.judge.cpus import split_cpus
from resources import JudgingResource, SandboxResource, ScoringResource

# Trial validity relaxed as for every judging test on this VM; the band is what the check judges.
NOISY_HOST = JudgingResource(max_send_lag_p99_us=20_000.0, max_interference=0.05)
RESOURCES = {"sandbox": SandboxResource(), "judging": NOISY_HOST, "scoring": ScoringResource()}


def calibrate() -> tuple[dict, dg.AssetCheckEvaluation]:
    result = dg.materialize([calibration, calibration_in_band], resources=RESOURCES)
    assert result.success
    check = result.get_asset_check_evaluations()[0]
    return result.output_for_node("calibration"), check


def test_calibration_measures_the_reference_engine_and_the_check_reports_the_band(engines):
    value, check = calibrate()
    assert value["valid"] and value["correctness"] == 100.0, value
    assert value["client_ceiling_orders_per_s"] > value["b_orders_per_s"] * 0.5
    problems = out_of_band(value, CalibrationBand())
    assert check.passed == (not problems)
    if problems:
        assert all(p in check.metadata["problems"].text for p in problems)


def test_a_cpu_hog_on_the_load_generators_cpu_fails_the_check(engines):
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        os.sched_setaffinity(hog.pid, split_cpus()[1])
        value, check = calibrate()
    finally:
        hog.kill()
        hog.wait()
    assert not check.passed
    assert out_of_band(value, CalibrationBand()), value


def test_band_names_every_figure_outside_it():
    healthy = {
        "valid": True, "final_spread": 0.0, "a_p99_us": 80.0, "c_p99_us": 60.0, "send_lag_p99_us": 0.5,
        "invalid_trials": 0, "correctness": 100.0,
    }  # fmt: skip
    assert out_of_band(healthy, CalibrationBand()) == []
    sick = {**healthy, "send_lag_p99_us": 3_000.0, "invalid_trials": 2, "c_p99_us": None}
    problems = out_of_band(sick, CalibrationBand())
    assert len(problems) == 3 and any("send_lag_p99_us" in p for p in problems)
    assert out_of_band({"valid": False, "reason": "no valid trial"}, CalibrationBand()) == [
        "no valid calibration: no valid trial"
    ]
