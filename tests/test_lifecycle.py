"""The one lifecycle read model (``quantcraft status`` and the leaderboard) against a real instance."""

from __future__ import annotations

import dagster as dg
import pytest

from quantcraft_dagster import lifecycle

from .leaderboard.conftest import report_score, run_failing_judgement

PARTITION = "alice-20260101T000000-abc"


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst


def observe(instance: dg.DagsterInstance, stage: str) -> None:
    instance.report_runless_asset_event(
        dg.AssetObservation(
            asset_key=lifecycle.LIFECYCLE_ASSET, partition=PARTITION, metadata={"stage": stage}
        )
    )


def test_a_judging_run_that_failed_without_a_score_is_failed_with_its_reason(instance):
    run_failing_judgement(instance, PARTITION)
    state = lifecycle.states(instance)[PARTITION]
    assert (state.stage, state.reason) == ("failed", lifecycle.INFRASTRUCTURE_FAILURE)
    assert state.failed_run == instance.get_runs()[0].run_id


def test_a_retry_after_the_failure_shows_its_own_stages(instance):
    run_failing_judgement(instance, PARTITION)
    observe(instance, "deploying")
    assert lifecycle.states(instance)[PARTITION].stage == "deploying"


def test_a_verdict_is_never_overwritten_by_a_later_run_failure(instance):
    report_score(instance, PARTITION, "alice", 50.0)
    run_failing_judgement(instance, PARTITION, stage="")  # e.g. a re-materialization's run
    state = lifecycle.states(instance)[PARTITION]
    assert state.stage == "finished" and state.failed_run is None


def test_a_poll_returns_only_what_changed_since_the_last(instance):
    model = lifecycle.ReadModel(instance)
    observe(instance, "queued")
    observe(instance, "running phase A")
    assert [(change, s.stage) for change, s in model.poll()] == [("stage", "running phase A")] * 2
    assert model.poll() == []
    report_score(instance, PARTITION, "alice", 50.0)
    assert [(change, s.stage, s.score["final"]) for change, s in model.poll()] == [
        ("score", "finished", 50.0)
    ]


def test_a_verdict_settles_once_its_score_is_written(instance):
    """The judging observes its final stage just before the score asset writes the score: a reader
    between the two (``up --demo``'s wait) must not take the submission as judged yet."""
    observe(instance, "finished")
    assert not lifecycle.settled(lifecycle.states(instance)[PARTITION])
    report_score(instance, PARTITION, "alice", 50.0)
    assert lifecycle.settled(lifecycle.states(instance)[PARTITION])
    run_failing_judgement(instance, "bob-20250101T000000-00000000")
    assert lifecycle.settled(lifecycle.states(instance)["bob-20250101T000000-00000000"])
