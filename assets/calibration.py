"""Judge-host health: the platform's own correct engine judged on each judging slot of each judge
host, checked against the band a quiet host measures (``core.calibration``). Every verdict records
the latest calibration of the slot it was judged on, so organisers can tell which verdicts a sick
slot produced, and see each slot's health (a partition of ``calibration``) in the Dagster UI.

A slot is calibrated on its own host and CPUs (``pool="judging"``: never beside a judging): when
the host prepares to judge (``quantcraft up``, compose's ``prepare``, ``quantcraft worker``),
hourly, and after every 50 judgings on it. With Celery, a calibration run goes to its host's own
queue (``Settings.host_queue``), which only that host's worker takes.
"""

import contextlib
from dataclasses import replace
from datetime import UTC, datetime

import dagster as dg
import orjson
import sqlalchemy
from dagster_celery.tags import DAGSTER_CELERY_QUEUE_TAG

from assets.partitions import JUDGE_SLOTS, judge_slots
from quantcraft_dagster import settings
from quantcraft_dagster.core.calibration import CalibrationBand, figures, out_of_band, preset_fit
from quantcraft_dagster.judge.errors import InfrastructureError
from quantcraft_dagster.judge.judging import judge_binary
from quantcraft_dagster.judge.slots import host_of
from quantcraft_dagster.lifecycle import JUDGING_POOL, SLOT_METADATA, VERDICT_ASSET
from resources import JudgingResource, SandboxResource, ScoringResource

CALIBRATION_PROFILE = "quick"
JUDGINGS_PER_CALIBRATION = 50
# Three hours: a live slot may miss two hourly calibrations (a lost run, a busy queue) and stay
# scheduled; a host taken out of the contest costs at most three failed calibration runs.
LIVE_SLOT_S = 3 * 3600


@dg.asset(group_name="judge_health", pool=JUDGING_POOL, kinds={"bubblewrap"}, partitions_def=judge_slots)
def calibration(
    context: dg.AssetExecutionContext,
    sandbox: SandboxResource,
    judging: JudgingResource,
    scoring: ScoringResource,
) -> dg.Output[dict]:
    """The correct example engine's figures on the partition's slot (public quick traces, all
    trials), and the load generator's phase B ceiling against the ``trivial`` engine. Fails when
    run on another host than the slot's: a calibration measures the CPUs it names, or nothing."""
    config = replace(judging.config(sandbox, scoring), profile=CALIBRATION_PROFILE)
    engines = settings.current().calibration_engines
    try:
        with sandbox.slot(config, context.partition_key) as placed:
            verdict = judge_binary(engines / "engine", placed, sandbox=sandbox.sandbox(placed)).verdict
            ceiling_run = judge_binary(
                engines / "trivial", replace(placed, trials=1), sandbox=sandbox.sandbox(placed)
            )
        ceiling = ceiling_run.verdict.phases["B"].orders_per_s
        value = figures(verdict.to_obj(private=False), ceiling)
    except InfrastructureError as exc:  # the slot could not even measure: that is the finding
        value = {"valid": False, "reason": str(exc)}
    value["at"] = datetime.now(UTC).isoformat(timespec="seconds")
    value["slot"] = context.partition_key
    return dg.Output(value, metadata={k: v for k, v in value.items() if v is not None})


@dg.asset_check(asset=calibration, description="the slot measures the correct engine as a quiet host does")
def calibration_in_band(calibration: dict) -> dg.AssetCheckResult:
    problems = out_of_band(calibration, CalibrationBand())
    return dg.AssetCheckResult(passed=not problems, metadata={"problems": "; ".join(problems) or "none"})


@dg.asset_check(
    asset=calibration,
    description="the scoring preset leaves room above and below the platform's own engine",
)
def preset_fits_the_host(calibration: dict) -> dg.AssetCheckResult:
    """A warning, not a fault of the slot: on other hardware the contest preset's reference points
    may not suit; the organiser picks another (docs/scoring.md)."""
    if not calibration.get("valid"):
        return dg.AssetCheckResult(passed=True, metadata={"problems": "no valid calibration to read"})
    problems = preset_fit(calibration)
    return dg.AssetCheckResult(
        passed=not problems,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"problems": "; ".join(problems) or "none", "scoring": str(calibration.get("scoring"))},
    )


def calibrate_host(instance: dg.DagsterInstance, resources: dict) -> list[str]:
    """Register this host's judging slots (``resources["sandbox"]``'s) as ``judge_slots``
    partitions and calibrate each, here and now, one after the other; returns their keys."""
    slots = resources["sandbox"].slot_keys()
    instance.add_dynamic_partitions(JUDGE_SLOTS, slots)
    storage = instance.event_log_storage
    if JUDGING_POOL not in storage.get_concurrency_keys():
        # Dagster makes a pool's limit row on the pool's first use; on Postgres, when two hosts
        # start at once, the loser's run fails (its IntegrityError aborts the transaction it then
        # updates the row in). Made here first, a lost race costs nothing: the row exists.
        with contextlib.suppress(sqlalchemy.exc.DBAPIError):
            storage.initialize_concurrency_limit_to_default(JUDGING_POOL)
    for slot in slots:
        dg.materialize([calibration], instance=instance, resources=resources, partition_key=slot)
    return slots


calibration_job = dg.define_asset_job("calibrate", selection=dg.AssetSelection.assets(calibration))


def calibration_request(slot: str, run_key: str, job_name: str | None = None) -> dg.RunRequest:
    """A calibration of ``slot``, on its own host: with Celery, on the queue only that host's
    worker takes (other run launchers have one host and ignore the tag). ``job_name``: for a
    sensor that targets several jobs."""
    queue = settings.current().host_queue(host_of(slot))
    tags = {DAGSTER_CELERY_QUEUE_TAG: queue}
    return dg.RunRequest(partition_key=slot, run_key=run_key, tags=tags, job_name=job_name)


@dg.schedule(job=calibration_job, cron_schedule="0 * * * *", default_status=dg.DefaultScheduleStatus.RUNNING)
def calibration_schedule(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest]:
    """Every slot of every live judge host, hourly. A slot counts as live while its latest
    calibration is younger than ``LIVE_SLOT_S``: a live host's slots are calibrated every hour,
    and a host calibrates its slots when it starts, so a host taken out of the contest costs a few
    calibration runs (failed by run monitoring's start timeout), not one an hour forever."""
    now = context.scheduled_execution_time.timestamp()
    at = context.scheduled_execution_time.isoformat(timespec="minutes")
    requests = []
    for slot in context.instance.get_dynamic_partitions(JUDGE_SLOTS):
        latest = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=calibration.key, asset_partitions=[slot]), limit=1
        ).records
        if latest and now - latest[0].timestamp < LIVE_SLOT_S:
            requests.append(calibration_request(slot, f"{slot}-{at}"))
    return requests


@dg.sensor(job=calibration_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING)
def calibration_every_n_judgings(context: dg.SensorEvaluationContext):
    """Calibrate a slot again once ``JUDGINGS_PER_CALIBRATION`` judgings were made on it since its
    last calibration (each verdict names its slot in its metadata).

    The cursor keeps the event log's own cursor past the last verdict counted, and each slot's count.
    """
    state = orjson.loads(context.cursor) if context.cursor else {"events": None, "seen": {}}
    result = context.instance.fetch_materializations(
        VERDICT_ASSET, limit=1000, cursor=state["events"], ascending=True
    )
    if not result.records:
        return dg.SkipReason("no new judging")
    seen: dict[str, int] = state["seen"] if isinstance(state["seen"], dict) else {}  # one count per slot
    requests = []
    for record in result.records:
        entry = (
            record.asset_materialization.metadata.get(SLOT_METADATA) if record.asset_materialization else None
        )
        if entry is None:  # a binary refused before judging: no slot
            continue
        slot = str(entry.value)
        seen[slot] = seen.get(slot, 0) + 1
        if seen[slot] >= JUDGINGS_PER_CALIBRATION:
            requests.append(calibration_request(slot, f"{slot}-after-{record.storage_id}"))
            seen[slot] = 0
    context.update_cursor(orjson.dumps({"events": result.cursor, "seen": seen}).decode())
    return requests or dg.SkipReason(f"judgings since each slot's last calibration: {seen}")
