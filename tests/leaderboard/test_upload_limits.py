"""The upload API's limits: 429 with the reason and the wait, counted from the instance and the
bucket (so a restarted app counts the same), one contestant's limit never another's."""

from __future__ import annotations

import time

import dagster as dg
from starlette.testclient import TestClient

from leaderboard_app.app import create_app
from quantcraft_dagster import lifecycle

from .test_api import upload


def judging_run(instance, contestant: str, uploaded_at: float, status=dg.DagsterRunStatus.SUCCESS) -> None:
    """A judging run as the sensor requests it, for an upload no longer in the bucket's listing."""
    partition = f"{contestant}-{uploaded_at:.0f}"
    instance.add_dynamic_partitions(lifecycle.PARTITIONS, [partition])
    tags = {
        lifecycle.CONTESTANT_TAG: contestant,
        lifecycle.UPLOADED_TAG: str(uploaded_at),
        "dagster/partition": partition,
    }
    instance.add_run(dg.DagsterRun(job_name=lifecycle.JOB_NAME, tags=tags, status=status))


def refused(res, wait_at_most: float) -> str:
    assert res.status_code == 429, res.text
    body = res.json()
    wait = int(res.headers["retry-after"])
    assert 0 < wait <= wait_at_most and body["retry_after_s"] == wait
    assert f"retry in {wait} s" in body["error"]
    return body["reason"]


def test_uploads_past_the_window_limit_get_429_with_the_wait(home, bucket, tokens, monkeypatch):
    monkeypatch.setenv("QUANTCRAFT_UPLOADS_PER_WINDOW", "2")
    monkeypatch.setenv("QUANTCRAFT_MAX_PENDING_UPLOADS", "0")
    with TestClient(create_app(dagster_home=str(home), bucket=bucket)) as client:
        assert [upload(client, tokens["alice"], name=f"e{i}").status_code for i in range(2)] == [201, 201]
        reason = refused(upload(client, tokens["alice"], name="e2"), 600)
        assert "2 uploads per 10 minutes" in reason
        assert upload(client, tokens["bob"]).status_code == 201  # alice's limit is hers alone
    assert bucket.head("submissions/alice/e2") is None  # refused before a byte was stored
    with TestClient(create_app(dagster_home=str(home), bucket=bucket)) as client:  # a restart
        refused(upload(client, tokens["alice"], name="e2"), 600)


def test_judged_uploads_count_from_the_instance(home, instance, bucket, tokens, monkeypatch):
    """Re-uploading under one name leaves one object: the judging runs remember every upload."""
    monkeypatch.setenv("QUANTCRAFT_UPLOADS_PER_WINDOW", "2")
    monkeypatch.setenv("QUANTCRAFT_MAX_PENDING_UPLOADS", "0")
    now = time.time()
    judging_run(instance, "alice", now - 3600)  # an hour ago: outside the window
    judging_run(instance, "alice", now - 60)
    with TestClient(create_app(dagster_home=str(home), bucket=bucket)) as client:
        assert upload(client, tokens["alice"]).status_code == 201
        judging_run(instance, "alice", now - 30)  # the sensor took that upload
        assert refused(upload(client, tokens["alice"]), 600)


def test_pending_judgings_cap(home, instance, bucket, tokens, monkeypatch):
    monkeypatch.setenv("QUANTCRAFT_UPLOADS_PER_WINDOW", "0")
    monkeypatch.setenv("QUANTCRAFT_MAX_PENDING_UPLOADS", "1")
    judging_run(instance, "alice", time.time() - 5, dg.DagsterRunStatus.STARTED)
    with TestClient(create_app(dagster_home=str(home), bucket=bucket)) as client:
        assert "waiting" in refused(upload(client, tokens["alice"]), 3600)
        assert upload(client, tokens["bob"]).status_code == 201
        monkeypatch.setenv("QUANTCRAFT_MAX_PENDING_UPLOADS", "0")  # lifted: no restart needed
        assert upload(client, tokens["alice"]).status_code == 201
