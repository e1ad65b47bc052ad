"""Judgings waiting for a quiet judge, as organisers see them: an asset check on the lifecycle.

A judging the judge could not vouch for after its retries waits (``lifecycle.WAITING``) until its
slot calibrates clean, then runs again (``sensors.requeue``). The check fails while any waits,
naming them and why, so a slot that stays noisy is found in the Dagster UI, not by contestants.
"""

import dagster as dg

from quantcraft_dagster.lifecycle import LIFECYCLE_ASSET, WAITING, SubmissionState, states

CHECK_NAME = "no_judging_waiting"


def waiting_evaluation(waiting: dict[str, SubmissionState]) -> dg.AssetCheckEvaluation:
    """The check's result for the submissions waiting now (partition → state)."""
    return dg.AssetCheckEvaluation(
        asset_key=LIFECYCLE_ASSET,
        check_name=CHECK_NAME,
        passed=not waiting,
        metadata={
            "waiting": len(waiting),
            "submissions": "\n".join(f"{p}: {s.reason}" for p, s in sorted(waiting.items())) or "none",
        },
    )


@dg.asset_check(
    asset=LIFECYCLE_ASSET,
    name=CHECK_NAME,
    description="no judging waits for a quiet judge (the requeue sensor reports this every minute)",
)
def no_judging_waiting(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    waiting = {p: s for p, s in states(context.instance).items() if s.stage == WAITING}
    evaluation = waiting_evaluation(waiting)
    return dg.AssetCheckResult(passed=evaluation.passed, metadata=evaluation.metadata)
