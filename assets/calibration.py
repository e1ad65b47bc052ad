"""Judge-host health: the platform's own correct engine judged on the judging slot, checked
against the band a quiet host measures (``core.calibration``). Every verdict records the latest
calibration it was judged after, so organisers can tell which verdicts a sick slot produced.

One judging slot per host today (``pool="judging"``, so a calibration never overlaps a judging);
it runs when ``quantcraft up`` starts, hourly, and after every 50 judgings.
"""

from dataclasses import replace
from datetime import UTC, datetime

import dagster as dg
import orjson

from quantcraft_dagster import lifecycle, settings
from quantcraft_dagster.core.calibration import CalibrationBand, figures, out_of_band
from quantcraft_dagster.judge.judging import InfrastructureError, judge_binary
from resources import JudgingResource, SandboxResource, ScoringResource

CALIBRATION_PROFILE = "quick"
JUDGINGS_PER_CALIBRATION = 50


@dg.asset(group_name="judge_health", pool="judging", kinds={"bubblewrap"})
def calibration(
    context: dg.AssetExecutionContext,
    sandbox: SandboxResource,
    judging: JudgingResource,
    scoring: ScoringResource,
) -> dg.Output[dict]:
    """The correct example engine's figures on this slot (public quick traces, all trials), and
    the load generator's phase B ceiling against the ``trivial`` engine."""
    config = replace(judging.config(sandbox, scoring), profile=CALIBRATION_PROFILE)
    engines = settings.current().calibration_engines
    try:
        with sandbox.slot(config) as placed:
            verdict = judge_binary(engines / "engine", placed, sandbox=sandbox.sandbox(placed)).verdict
            ceiling_run = judge_binary(
                engines / "trivial", replace(placed, trials=1), sandbox=sandbox.sandbox(placed)
            )
        ceiling = ceiling_run.verdict.phases["B"].orders_per_s
        value = figures(verdict.to_obj(private=False), ceiling)
    except InfrastructureError as exc:  # the slot could not even measure: that is the finding
        value = {"valid": False, "reason": str(exc)}
    value["at"] = datetime.now(UTC).isoformat(timespec="seconds")
    return dg.Output(value, metadata={k: v for k, v in value.items() if v is not None})


@dg.asset_check(asset=calibration, description="the slot measures the correct engine as a quiet host does")
def calibration_in_band(calibration: dict) -> dg.AssetCheckResult:
    problems = out_of_band(calibration, CalibrationBand())
    return dg.AssetCheckResult(passed=not problems, metadata={"problems": "; ".join(problems) or "none"})


calibration_job = dg.define_asset_job("calibrate", selection=dg.AssetSelection.assets(calibration))
calibration_schedule = dg.ScheduleDefinition(
    job=calibration_job, cron_schedule="0 * * * *", default_status=dg.DefaultScheduleStatus.RUNNING
)


@dg.sensor(job=calibration_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING)
def calibration_every_n_judgings(context: dg.SensorEvaluationContext):
    """Calibrate again once ``JUDGINGS_PER_CALIBRATION`` judgings were scored since the last one.

    The cursor keeps the event log's own cursor past the last score counted, and the count.
    """
    state = orjson.loads(context.cursor) if context.cursor else {"events": None, "seen": 0}
    result = context.instance.fetch_materializations(
        lifecycle.SCORE_ASSET, limit=1000, cursor=state["events"], ascending=True
    )
    if not result.records:
        return dg.SkipReason("no new judging")
    seen = state["seen"] + len(result.records)
    due = seen >= JUDGINGS_PER_CALIBRATION
    context.update_cursor(orjson.dumps({"events": result.cursor, "seen": 0 if due else seen}).decode())
    if due:
        return dg.RunRequest(run_key=f"after-{result.records[-1].storage_id}")
    return dg.SkipReason(f"{seen} judgings since the last calibration")
