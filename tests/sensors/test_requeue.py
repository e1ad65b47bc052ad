"""Judgings waiting for a quiet judge: calibrated for, queued again once their slot is clean, and
shown to organisers by an asset check; on a real (ephemeral) instance, sensor invoked directly."""

from __future__ import annotations

import time
import uuid

import dagster as dg
import pytest

from assets.finals import finals_job
from assets.waiting import CHECK_NAME
from quantcraft_dagster import lifecycle
from quantcraft_dagster.definitions import calibration_job, judge_job
from sensors.requeue import RECALIBRATE_S, build_requeue_sensor

SLOT = "judgehost:1+0"
PARTITION = "alice-20261206T000000-abcdef12"
CLEAN = {
    "valid": True, "final_spread": 0.2, "a_p99_us": 40.0, "c_p99_us": 60.0, "send_lag_p99_us": 1.0,
    "c_left_out": 0.01, "invalid_trials": 0, "correctness": 100.0,
}  # fmt: skip


@pytest.fixture
def instance():
    with dg.DagsterInstance.ephemeral() as inst:
        inst.add_dynamic_partitions("submissions", [PARTITION])
        yield inst


def wait_on(instance, slot: str | None = SLOT) -> None:
    meta = {"stage": lifecycle.WAITING, "reason": f"{lifecycle.WAITING_REASON}: judge sent late"}
    if slot:
        meta[lifecycle.SLOT_METADATA] = slot
    instance.report_runless_asset_event(
        dg.AssetObservation(asset_key=lifecycle.LIFECYCLE_ASSET, partition=PARTITION, metadata=meta)
    )


def calibrate(instance, figures: dict) -> None:
    instance.report_runless_asset_event(
        dg.AssetMaterialization(asset_key="calibration", partition=SLOT, metadata=figures)
    )


def evaluate(instance) -> dg.SensorResult:
    sensor = build_requeue_sensor(judge_job, calibration_job, finals_job)
    return sensor(dg.build_sensor_context(instance=instance))


def check_of(result: dg.SensorResult) -> dg.AssetCheckEvaluation:
    return next(e for e in result.asset_events if isinstance(e, dg.AssetCheckEvaluation))


def test_nothing_waits_and_the_check_passes(instance):
    result = evaluate(instance)
    assert result.run_requests == []
    check = check_of(result)
    assert check.check_name == CHECK_NAME and check.passed


def test_a_waiting_judging_asks_for_a_calibration_of_its_slot_then_runs_again(instance):
    wait_on(instance)
    assert lifecycle.settled(lifecycle.states(instance)[PARTITION])
    first = evaluate(instance)
    assert [(r.job_name, r.partition_key) for r in first.run_requests] == [(calibration_job.name, SLOT)]
    assert not check_of(first).passed and PARTITION in check_of(first).metadata["submissions"].value
    time.sleep(0.01)
    calibrate(instance, CLEAN)
    second = evaluate(instance)
    (again,) = second.run_requests
    assert again.job_name == judge_job.name and again.partition_key == PARTITION
    queued = [e for e in second.asset_events if isinstance(e, dg.AssetObservation)]
    assert queued[0].metadata["stage"].value == lifecycle.QUEUED
    assert evaluate(instance).run_requests[0].run_key == again.run_key  # a re-evaluation dedupes


def test_a_noisy_calibration_keeps_it_waiting_for_the_next(instance):
    wait_on(instance)
    time.sleep(0.01)
    calibrate(instance, {**CLEAN, "send_lag_p99_us": 900.0})
    result = evaluate(instance)
    assert result.run_requests == []  # recalibrated in RECALIBRATE_S, not at every tick
    assert RECALIBRATE_S <= 600


def test_a_judging_without_a_slot_is_queued_again_later(instance):
    wait_on(instance, slot=None)
    assert evaluate(instance).run_requests == []


FINALS_CONFIG = {"ops": {"finals_judgings": {"config": {"top": 3, "repeat": 5}}}}


def finals_waited(instance) -> dg.DagsterRun:
    """A finals run that stopped waiting for a quiet judge on SLOT, as ``finals_judgings`` ends one."""
    run = dg.DagsterRun(
        job_name=finals_job.name,
        run_id=str(uuid.uuid4()),
        run_config=FINALS_CONFIG,
        tags={lifecycle.FINALS_WAITING_TAG: SLOT},
        status=dg.DagsterRunStatus.STARTED,
    )
    instance.add_run(run)
    instance.report_run_failed(run)
    return run


def test_waiting_finals_are_calibrated_for_then_run_again_with_their_config(instance):
    waited = finals_waited(instance)
    first = evaluate(instance)
    assert [(r.job_name, r.partition_key) for r in first.run_requests] == [(calibration_job.name, SLOT)]
    check = check_of(first)
    assert not check.passed and SLOT in check.metadata["finals"].value
    time.sleep(0.01)
    calibrate(instance, {**CLEAN, "send_lag_p99_us": 900.0})  # noisy: the finals keep waiting
    assert evaluate(instance).run_requests == []
    time.sleep(0.01)
    calibrate(instance, CLEAN)
    (again,) = evaluate(instance).run_requests
    assert again.job_name == finals_job.name and again.run_config == FINALS_CONFIG
    assert waited.run_id in again.run_key
    assert evaluate(instance).run_requests[0].run_key == again.run_key  # a re-evaluation dedupes
