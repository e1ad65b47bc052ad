"""Calibration: the check reports what the band finds, and fails when the load generator's CPU is shared.

Whether this VM is quiet at the moment a test runs is not something a test can assert (its noise
bursts reach milliseconds), so the healthy path checks the asset and its check agree with the band."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import dagster as dg

from assets.calibration import (
    calibration,
    calibration_every_n_judgings,
    calibration_in_band,
    calibration_schedule,
)
from assets.partitions import judge_slots
from quantcraft_dagster.core.calibration import CalibrationBand, out_of_band, preset_fit
from quantcraft_dagster.judge import cpu_weight
from quantcraft_dagster.judge.cpus import split_cpus
from quantcraft_dagster.lifecycle import SLOT_METADATA, VERDICT_ASSET
from resources import JudgingResource, SandboxResource, ScoringResource

# Trial validity relaxed as for every judging test on this VM; the band is what the check judges.
RESOURCES = {"sandbox": SandboxResource(), "judging": JudgingResource(), "scoring": ScoringResource()}


def calibrate(
    slot: str | None = None, **kwargs
) -> tuple[dg.ExecuteInProcessResult, dg.AssetCheckEvaluation | None]:
    """Calibrate ``slot`` (default: this host's first) as a ``judge_slots`` partition."""
    slot = slot or RESOURCES["sandbox"].slot_keys()[0]
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(judge_slots.name, [slot])
        result = dg.materialize(
            [calibration, calibration_in_band],
            resources=RESOURCES,
            instance=instance,
            partition_key=slot,
            **kwargs,
        )
    checks = result.get_asset_check_evaluations()
    return result, checks[0] if checks else None


def calibrated() -> tuple[dict, dg.AssetCheckEvaluation]:
    result, check = calibrate()
    assert result.success
    return result.output_for_node("calibration"), check


def test_calibration_measures_the_reference_engine_and_the_check_reports_the_band(engines):
    value, check = calibrated()
    assert value["valid"] and value["correctness"] == 100.0, value
    assert value["slot"] == RESOURCES["sandbox"].slot_keys()[0]
    assert value["client_ceiling_orders_per_s"] > value["b_orders_per_s"] * 0.5
    problems = out_of_band(value, CalibrationBand())
    assert check.passed == (not problems)
    if problems:
        assert all(p in check.metadata["problems"].text for p in problems)


def test_a_cpu_hog_on_the_load_generators_cpu_fails_the_check(engines):
    """A hog as heavy as the judge: another judge on this slot's CPU, as a mis-sliced host has.

    A hog of an ordinary process (the cpu controller's root group) is not one: the judges' group
    outweighs it (``judge.cpu_weight``), and calibration rightly stays in band beside it."""
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        os.sched_setaffinity(hog.pid, split_cpus()[1])
        cpu_weight.place(cpu_weight.JUDGES, hog.pid)  # False without a cpu controller: no weights
        value, check = calibrated()
    finally:
        hog.kill()
        hog.wait()
    assert not check.passed
    assert out_of_band(value, CalibrationBand()), value


def test_band_names_every_figure_outside_it():
    healthy = {
        "valid": True, "final_spread": 0.0, "a_p99_us": 80.0, "c_p99_us": 60.0, "send_lag_p99_us": 0.5,
        "c_left_out": 0.01, "invalid_trials": 0, "correctness": 100.0,
    }  # fmt: skip
    assert out_of_band(healthy, CalibrationBand()) == []
    sick = {**healthy, "send_lag_p99_us": 3_000.0, "invalid_trials": 2, "c_p99_us": None, "c_left_out": 0.2}
    problems = out_of_band(sick, CalibrationBand())
    assert len(problems) == 4 and any("send_lag_p99_us" in p for p in problems)
    assert any("c_left_out 0.2 above" in p for p in problems)
    assert out_of_band({"valid": False, "reason": "no valid trial"}, CalibrationBand()) == [
        "no valid calibration: no valid trial"
    ]


def test_the_preset_fits_when_the_reference_engine_leaves_room_on_each_component():
    on_scale = {"valid": True, "scoring": "contest", "latency": 64.0, "throughput": 60.0}
    assert preset_fit(on_scale) == []
    saturated = {**on_scale, "scoring": "seed", "latency": 100.0, "throughput": 99.99}
    problems = preset_fit(saturated)
    assert len(problems) == 2 and all("seed preset" in p and "saturates" in p for p in problems)
    assert preset_fit({**on_scale, "throughput": 1.0}) != []  # at the bottom: nothing below it


def test_a_slot_is_calibrated_on_its_own_host_or_not_at_all():
    """A calibration run that lands on another host (a misrouted run) measures nothing."""
    result, _ = calibrate("elsewhere@cpu1", raise_on_error=False)
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "slot elsewhere@cpu1 is not on this host" in failure.event_specific_data.error.message


def test_a_slot_is_calibrated_again_after_fifty_judgings_on_it_on_its_own_hosts_queue():
    """Counted per slot from the verdicts' metadata; the request goes to that host's own queue."""
    with dg.instance_for_test() as instance:

        def judged(slot: str, times: int) -> None:
            for _ in range(times):
                meta = {SLOT_METADATA: slot}
                instance.report_runless_asset_event(dg.AssetMaterialization(VERDICT_ASSET, metadata=meta))

        judged("judge-a@cpu1", 30)
        judged("judge-b@cpu1", 49)
        context = dg.build_sensor_context(instance=instance)
        assert isinstance(calibration_every_n_judgings(context), dg.SkipReason)
        judged("judge-a@cpu1", 20)
        context = dg.build_sensor_context(instance=instance, cursor=context.cursor)
        (request,) = calibration_every_n_judgings(context)
        assert request.partition_key == "judge-a@cpu1"
        assert request.tags["dagster-celery/queue"] == "judging@judge-a"
        judged("judge-b@cpu1", 1)
        context = dg.build_sensor_context(instance=instance, cursor=context.cursor)
        (request,) = calibration_every_n_judgings(context)
        assert request.partition_key == "judge-b@cpu1"


def test_the_hourly_calibration_asks_each_live_slot_on_its_own_hosts_queue():
    """A slot is live while its latest calibration is younger than three hours: a host taken out
    of the contest is asked a few times more, never every hour."""
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(judge_slots.name, ["judge-a@cpu1", "judge-a@cpu3", "gone@cpu1"])
        for slot in ("judge-a@cpu1", "judge-a@cpu3", "gone@cpu1"):
            instance.report_runless_asset_event(dg.AssetMaterialization(calibration.key, partition=slot))
        now = datetime.now(UTC)

        def asked(at: datetime) -> dict[str, str]:
            context = dg.build_schedule_context(instance=instance, scheduled_execution_time=at)
            return {r.partition_key: r.tags["dagster-celery/queue"] for r in calibration_schedule(context)}

        assert asked(now + timedelta(hours=2, minutes=50)) == {
            "judge-a@cpu1": "judging@judge-a",
            "judge-a@cpu3": "judging@judge-a",
            "gone@cpu1": "judging@gone",
        }
        assert asked(now + timedelta(hours=3, minutes=10)) == {}  # nobody calibrated since: none live
