"""Judgings waiting for a quiet judge, as organisers see them: an asset check on the lifecycle.

A judging the judge could not vouch for after its retries waits (``lifecycle.WAITING``) until its
slot calibrates clean, then runs again (``sensors.requeue``); so do the finals, whose latest run
then failed tagged with the slot it waited on (``lifecycle.FINALS_WAITING_TAG``). The check fails
while any waits, naming them and why, so a slot that stays noisy is found in the Dagster UI, not
by contestants.
"""

import dagster as dg

from assets.finals import finals_job
from quantcraft_dagster.lifecycle import (
    FINALS_WAITING_TAG,
    LIFECYCLE_ASSET,
    WAITING,
    WAITING_REASON,
    SubmissionState,
    states,
)

CHECK_NAME = "no_judging_waiting"


def waiting_finals(instance: dg.DagsterInstance) -> dg.DagsterRun | None:
    """The latest finals run, when it stopped waiting for a quiet judge (and none came after)."""
    runs = instance.get_runs(dg.RunsFilter(job_name=finals_job.name), limit=1)
    if runs and runs[0].status == dg.DagsterRunStatus.FAILURE and FINALS_WAITING_TAG in runs[0].tags:
        return runs[0]
    return None


def waiting_evaluation(
    waiting: dict[str, SubmissionState], finals: dg.DagsterRun | None = None
) -> dg.AssetCheckEvaluation:
    """The check's result for the submissions waiting now (partition → state) and the finals."""
    finals_note = f"{WAITING_REASON} on slot {finals.tags[FINALS_WAITING_TAG]}" if finals else "not waiting"
    return dg.AssetCheckEvaluation(
        asset_key=LIFECYCLE_ASSET,
        check_name=CHECK_NAME,
        passed=not waiting and finals is None,
        metadata={
            "waiting": len(waiting),
            "submissions": "\n".join(f"{p}: {s.reason}" for p, s in sorted(waiting.items())) or "none",
            "finals": finals_note,
        },
    )


@dg.asset_check(
    asset=LIFECYCLE_ASSET,
    name=CHECK_NAME,
    description="no judging, and not the finals, waits for a quiet judge (the requeue sensor reports"
    " this every minute)",
)
def no_judging_waiting(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    waiting = {p: s for p, s in states(context.instance).items() if s.stage == WAITING}
    evaluation = waiting_evaluation(waiting, waiting_finals(context.instance))
    return dg.AssetCheckResult(passed=evaluation.passed, metadata=evaluation.metadata)
