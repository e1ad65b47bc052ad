"""Judgings waiting for a quiet judge are queued again once their slot calibrates clean.

Every minute: for each waiting judging, the latest calibration of the slot it waited on. None
since it began waiting (or none clean and the last one older than ``RECALIBRATE_S``): that slot
is calibrated now. A clean one since: the judging is queued again, with its first run's tags, so
the fair queue and the contestant's limits treat it as the same upload. A judging with no slot
(it failed before taking one) is queued again after ``RECALIBRATE_S``. Finals that stopped
waiting (``assets.waiting.waiting_finals``) are run again the same way, with their run's config.
"""

import time

import dagster as dg

from assets.calibration import calibration, calibration_request
from assets.waiting import waiting_evaluation, waiting_finals
from quantcraft_dagster.core.calibration import CalibrationBand, out_of_band
from quantcraft_dagster.lifecycle import (
    FINALS_WAITING_TAG,
    LIFECYCLE_ASSET,
    QUEUED,
    SLOT_METADATA,
    WAITING,
    ReadModel,
    SubmissionState,
    metadata_of,
)

RECALIBRATE_S = 300
"""How long a slot that calibrated noisy waits before it is calibrated again for its waiters."""
KEPT_TAGS = ("quantcraft/contestant", "quantcraft/object_key", "quantcraft/uploaded_at", "dagster/priority")


def _latest_calibration(instance: dg.DagsterInstance, slot: str):
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=calibration.key, asset_partitions=[slot]), limit=1
    ).records
    return records[0] if records else None


CLEAN, NOISY, CALIBRATE = "clean", "noisy", "calibrate"


def _slot_since(instance: dg.DagsterInstance, slot: str, since: float, now: float):
    """What ``slot`` says since a wait began: CLEAN (a calibration in band since), NOISY (out of
    band less than ``RECALIBRATE_S`` ago: give the host a few minutes) or CALIBRATE; with the
    latest calibration record, if any."""
    latest = _latest_calibration(instance, slot)
    if latest is not None and latest.timestamp > since:
        if not out_of_band(metadata_of(latest), CalibrationBand()):
            return CLEAN, latest
        if now - latest.timestamp < RECALIBRATE_S:
            return NOISY, latest
    return CALIBRATE, latest


def _rerun_finals(run: dg.DagsterRun, latest) -> dg.RunRequest:
    """The finals again, as their waiting run was asked for (its config: top, repeat)."""
    return dg.RunRequest(
        run_key=f"finals-again-{run.run_id}-{latest.storage_id}",
        run_config=run.run_config,
        job_name=run.job_name,
    )


def _requeue(instance: dg.DagsterInstance, job: str, partition: str, state: SubmissionState, key: str):
    run = instance.get_run_by_id(state.failed_run) if state.failed_run else None
    tags = {k: v for k, v in (run.tags if run else {}).items() if k in KEPT_TAGS}
    request = dg.RunRequest(
        partition_key=partition, run_key=f"{partition}-again-{key}", tags=tags, job_name=job
    )
    event = dg.AssetObservation(
        asset_key=LIFECYCLE_ASSET,
        partition=partition,
        metadata={"stage": QUEUED, "reason": "queued again: its judging slot calibrated clean"},
    )
    return request, event


def build_requeue_sensor(judge_job, calibration_job, finals_job) -> dg.SensorDefinition:
    @dg.sensor(
        name="requeue_sensor",
        jobs=[judge_job, calibration_job, finals_job],
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Queues again each judging waiting for a quiet judge once its slot calibrates clean",
    )
    def requeue_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        instance = context.instance
        model = ReadModel(instance)
        model.poll()
        waiting = {p: s for p, s in model.states.items() if s.stage == WAITING}
        finals = waiting_finals(instance)
        requests: list[dg.RunRequest] = []
        events: list = [waiting_evaluation(waiting, finals)]
        calibrating: set[str] = set()
        now = time.time()

        def calibrate(slot: str, latest, since: float) -> None:
            if slot not in calibrating:
                calibrating.add(slot)
                since = int(latest.timestamp if latest is not None else since)
                requests.append(
                    calibration_request(slot, f"{slot}-for-waiting-{since}", calibration_job.name)
                )

        if finals is not None:
            record = instance.get_run_record_by_id(finals.run_id)
            ended = record.end_time or record.update_timestamp.timestamp() if record else now
            finals_slot = finals.tags[FINALS_WAITING_TAG]
            status, latest = _slot_since(instance, finals_slot, ended, now)
            if status == CLEAN:
                requests.append(_rerun_finals(finals, latest))
            elif status == CALIBRATE:
                calibrate(finals_slot, latest, ended)
        for partition, state in sorted(waiting.items()):
            slot = state.detail.get(SLOT_METADATA)
            if slot is None:
                if now - state.updated > RECALIBRATE_S:
                    request, event = _requeue(
                        instance, judge_job.name, partition, state, f"{state.updated:.0f}"
                    )
                    requests.append(request)
                    events.append(event)
                continue
            status, latest = _slot_since(instance, slot, state.updated, now)
            if status == CLEAN:
                request, event = _requeue(instance, judge_job.name, partition, state, str(latest.storage_id))
                requests.append(request)
                events.append(event)
            elif status == CALIBRATE:
                calibrate(slot, latest, state.updated)
        return dg.SensorResult(run_requests=requests, asset_events=events)

    return requeue_sensor
