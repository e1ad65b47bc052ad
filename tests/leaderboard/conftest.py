"""A real Dagster instance on disk and the leaderboard app following it."""

from __future__ import annotations

import time

import dagster as dg
import pytest
from starlette.testclient import TestClient

from leaderboard_app import contestants
from leaderboard_app.app import create_app
from quantcraft_dagster import lifecycle
from quantcraft_dagster.storage.bucket import LocalBucket


@pytest.fixture
def home(tmp_path):
    path = tmp_path / "dagster"
    path.mkdir()
    (path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return path


@pytest.fixture
def instance(home):
    with dg.DagsterInstance.from_config(str(home)) as inst:
        yield inst


@pytest.fixture
def bucket(tmp_path):
    return LocalBucket(tmp_path / "bucket")


def report_score(instance, partition: str, contestant: str, final: float, uploaded_at: float | None = None):
    """A score materialization exactly as the ``score`` asset writes it."""
    metadata = {
        "partition": partition, "contestant": contestant, "status": "finished", "reason": "ok",
        "final": final, "latency": final, "throughput": final, "correctness": 100.0,
        "uploaded_at": uploaded_at or time.time(), "p99_us": 900.0, "orders_per_s": 150000.0,
    }  # fmt: skip
    instance.report_runless_asset_event(
        dg.AssetMaterialization(asset_key=lifecycle.SCORE_ASSET, partition=partition, metadata=metadata)
    )


@pytest.fixture
def client(home, bucket):
    app = create_app(dagster_home=str(home), bucket=bucket, dagster_url="http://dagster.test")
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def tokens(bucket):
    return {name: contestants.add(bucket, name) for name in ("alice", "bob")}


def run_failing_judgement(
    instance: dg.DagsterInstance, partition: str, stage: str = "running phase B"
) -> None:
    """A judging run whose judge dies (not the engine) at ``stage``: no score is written."""

    @dg.op
    def judge(context) -> None:  # Dagster reads the annotation, which __future__ makes a string
        if stage:
            context.log_event(
                dg.AssetObservation(
                    asset_key=lifecycle.LIFECYCLE_ASSET, partition=partition, metadata={"stage": stage}
                )
            )
        raise RuntimeError("judge host lost its sandbox")

    @dg.job(name=lifecycle.JOB_NAME)
    def judge_submission() -> None:
        judge()

    result = judge_submission.execute_in_process(
        instance=instance, tags={"dagster/partition": partition}, raise_on_error=False
    )
    assert not result.success
