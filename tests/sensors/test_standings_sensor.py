"""The standings sensor on a real (ephemeral) instance: a refresh per new score, but never a second
one while one waits in the run queue (it ranks every score there is when it runs)."""

from __future__ import annotations

import dagster as dg

from quantcraft_dagster import lifecycle
from quantcraft_dagster.definitions import defs, standings_job
from sensors import build_standings_sensor


def test_a_new_score_asks_for_one_refresh_and_a_waiting_one_is_enough():
    sensor = build_standings_sensor(standings_job)
    with dg.DagsterInstance.ephemeral() as instance:

        def evaluate() -> list:
            return list(sensor(dg.build_sensor_context(instance=instance)))

        def score(partition: str) -> None:
            event = dg.AssetMaterialization(lifecycle.SCORE_ASSET, partition=partition)
            instance.report_runless_asset_event(event)

        assert [type(r) for r in evaluate()] == [dg.SkipReason]  # no score yet
        score("alice-1")
        assert [type(r) for r in evaluate()] == [dg.RunRequest]
        # As the daemon holds a requested run before it is queued (it counts as waiting as well).
        job = defs().resolve_job_def(standings_job.name)
        queued = instance.create_run_for_job(job, status=dg.DagsterRunStatus.NOT_STARTED)
        score("bob-1")
        (skipped,) = evaluate()
        assert isinstance(skipped, dg.SkipReason) and "already waiting" in (skipped.skip_message or "")
        instance.handle_run_event(  # the waiting refresh starts: the next score needs another
            queued.run_id,
            dg.DagsterEvent(dg.DagsterEventType.RUN_START.value, job_name=standings_job.name),
        )
        score("carol-1")
        assert [type(r) for r in evaluate()] == [dg.RunRequest]
