"""The Dagster code location: assets, checks, jobs, resources and sensors.

Configuration comes from ``quantcraft_dagster.settings`` (the environment) so the embedded
default (``quantcraft up``) and the production compose file load the same module; secrets reach
the resources as ``dg.EnvVar``, resolved at run time and never shown in the UI.
"""

from __future__ import annotations

import dagster as dg

from assets.calibration import (
    calibrate_host,
    calibration,
    calibration_every_n_judgings,
    calibration_in_band,
    calibration_job,
    calibration_schedule,
    preset_fits_the_host,
)
from assets.finals import final_standings, finals_job, finals_judgings
from assets.standings import standings
from assets.submission import correctness, judging, metrics, score, submission_binary
from assets.traces import expected_reports, finals_expected_reports, finals_trace, official_trace
from assets.waiting import no_judging_waiting
from quantcraft_dagster.lifecycle import JOB_NAME, LIFECYCLE_ASSET, RUN_RETRIES
from quantcraft_dagster.settings import ENV, current
from resources import (
    BucketResource,
    ContestResource,
    DuckDBResource,
    JudgingResource,
    SandboxResource,
    ScoringResource,
)
from resources.io_manager import BucketJSONIOManager, ParquetIOManager, TraceIOManager
from sensors import REJECTED_UPLOADS, build_standings_sensor, build_submission_sensor
from sensors.requeue import build_requeue_sensor
from sensors.rescore import build_rescore_sensor

judge_job = dg.define_asset_job(
    JOB_NAME,
    selection=dg.AssetSelection.assets(
        submission_binary, official_trace, expected_reports, judging, metrics, correctness, score
    ),
    description="Judge one uploaded engine: validate, make its own official trace and answers,"
    " run phases A/B/C, check, score",
    # Run retries cover a lost run worker; an asset's own failure is never retried this way
    # (the judge asks for a step retry itself, and only for its own infrastructure failures).
    tags={"dagster/max_retries": str(RUN_RETRIES), "dagster/retry_on_asset_or_op_failure": "false"},
    # One process per run, not per step: the steps are sequential and a fresh Python per step
    # cost several seconds each (measured in bench/pipeline_bench.py).
    executor_def=dg.in_process_executor,
)
standings_job = dg.define_asset_job("refresh_standings", selection=dg.AssetSelection.assets(standings))
final_table_job = dg.define_asset_job(
    "rank_finals",
    selection=dg.AssetSelection.assets(final_standings),
    description="Rank the finals' judgings again on the current scoring preset, judging nothing",
)


def resources() -> dict[str, object]:
    """The resources as the environment configures them now (``settings``), secrets as
    ``dg.EnvVar`` names: read when the code location loads, never at import."""
    configured = current()
    bucket = BucketResource.from_settings(configured)
    return {
        "bucket": bucket,
        "io_manager": BucketJSONIOManager(bucket=bucket),
        "trace_io_manager": TraceIOManager(bucket=bucket),
        "parquet_io_manager": ParquetIOManager(bucket=bucket),
        "contest": ContestResource(official_secret=dg.EnvVar(ENV["official_secret"])),
        "sandbox": SandboxResource(),
        "judging": JudgingResource(
            profile=configured.profile,
            max_send_lag_p99_us=configured.max_send_lag_p99_us,
            max_interference=configured.max_interference,
        ),
        "duckdb": DuckDBResource(),
        "scoring": ScoringResource(),
    }


@dg.definitions
def defs() -> dg.Definitions:
    """The code location (``-m quantcraft_dagster.definitions -a defs``), loaded by Dagster's tools
    when they load the location: the environment is read then, not when this module is imported."""
    return dg.Definitions(
        # Every other job in one process too: on a scale-out judge host a run executes inside a Celery
        # worker's pool process, which may not start multiprocessing children (the default executor).
        executor=dg.in_process_executor,
        assets=[
            official_trace,
            expected_reports,
            finals_trace,
            finals_expected_reports,
            submission_binary,
            judging,
            metrics,
            correctness,
            score,
            standings,
            finals_judgings,
            final_standings,
            calibration,
            dg.AssetSpec(LIFECYCLE_ASSET, description="Lifecycle of each submission (observations only)"),
            dg.AssetSpec(REJECTED_UPLOADS, description="Uploads whose key is not submissions/<id>/<file>"),
        ],
        asset_checks=[calibration_in_band, preset_fits_the_host, no_judging_waiting],
        jobs=[judge_job, standings_job, final_table_job, calibration_job, finals_job],
        schedules=[calibration_schedule],
        sensors=[
            build_submission_sensor(judge_job),
            build_standings_sensor(standings_job),
            calibration_every_n_judgings,
            build_requeue_sensor(judge_job, calibration_job, finals_job),
            build_rescore_sensor(standings_job, final_table_job),
        ],
        resources=resources(),
    )


def prepare_judging() -> None:
    """What must exist before this host's first judging (in ``$DAGSTER_HOME``'s instance): its
    judging slots, each a ``judge_slots`` partition, each freshly calibrated here, on its own CPUs.
    Official traces are not made here: each judging makes its own, the finals job the finals' set."""
    with dg.DagsterInstance.get() as instance:
        calibrate_host(instance, resources())
