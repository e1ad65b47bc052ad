"""Re-scoring after the contest's scoring preset changed: no judging runs again.

Every score is derived from its judging's trial sets (``core.scoring.rescored``): the leaderboard
and ``quantcraft status`` read each one on the current preset as they load it. What is written
down, the standings and the final table, this sensor materializes again when the preset they
were written on is not the current one.
"""

from __future__ import annotations

import dagster as dg

from quantcraft_dagster import settings

STANDINGS_ASSET = dg.AssetKey("standings")
FINAL_STANDINGS_ASSET = dg.AssetKey("final_standings")


def written_on(instance: dg.DagsterInstance, asset: dg.AssetKey) -> tuple[str | None, int] | None:
    """The preset the asset's latest value was scored on (None: written before presets were
    recorded) and that materialization's storage id; None if it was never materialized."""
    records = instance.fetch_materializations(asset, limit=1, ascending=False).records
    if not records:
        return None
    event = records[0].asset_materialization
    scoring = event.metadata.get("scoring") if event else None
    return (str(scoring.value) if scoring else None), records[0].storage_id


def build_rescore_sensor(standings_job, final_table_job) -> dg.SensorDefinition:
    jobs = {STANDINGS_ASSET: standings_job, FINAL_STANDINGS_ASSET: final_table_job}

    @dg.sensor(
        name="rescore_sensor",
        jobs=list(jobs.values()),
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Ranks the standings and the finals again when the scoring preset changes",
    )
    def rescore_sensor(context: dg.SensorEvaluationContext) -> list[dg.RunRequest]:
        preset = settings.current().scoring
        requests = []
        for asset, job in jobs.items():
            written = written_on(context.instance, asset)
            if written is not None and written[0] != preset:
                # One run per (asset value, preset): a tick that sees the run still going asks again
                # under the same key, which Dagster skips.
                key = f"{asset.to_user_string()}-{written[1]}-{preset}"
                requests.append(dg.RunRequest(run_key=key, job_name=job.name))
        return requests

    return rescore_sensor
