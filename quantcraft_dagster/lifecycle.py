"""Reading a submission's lifecycle back from the Dagster instance (any process can).

Written by the assets as observations of ``submission_lifecycle`` (deploying → running phase
A/B/C → validating → finished | failed | rejected) and as ``score`` materializations; runs not
yet started are ``queued`` by their run record. The CLI and the leaderboard read it here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from .core.verdict import FAILED, TERMINAL

LIFECYCLE_ASSET = dg.AssetKey("submission_lifecycle")
SCORE_ASSET = dg.AssetKey("score")
JOB_NAME = "judge_submission"
PARTITIONS = "submissions"


def intake_key(partition: str) -> str:
    """Where the sensor leaves the upload's manifest for the run to read."""
    return f"intake/{partition}.json"


@dataclass(slots=True)
class SubmissionState:
    partition: str
    stage: str = "queued"
    detail: dict[str, Any] = field(default_factory=dict)
    score: dict[str, Any] | None = None
    run_id: str | None = None
    run_status: str | None = None


def _records(fetch, key: dg.AssetKey, cursor: str | None = None) -> Iterator[Any]:
    while True:
        result = fetch(dg.AssetRecordsFilter(asset_key=key), limit=1000, cursor=cursor, ascending=True)
        yield from result.records
        cursor = result.cursor
        if not result.has_more:
            return


def _metadata(record) -> dict[str, Any]:
    event = record.asset_materialization or record.asset_observation
    return {k: v.value for k, v in (event.metadata or {}).items()}


def scores(instance: dg.DagsterInstance) -> dict[str, dict[str, Any]]:
    """Latest score record per partition."""
    latest: dict[str, dict[str, Any]] = {}
    for record in _records(instance.fetch_materializations, SCORE_ASSET):
        latest[record.partition_key] = _metadata(record)
    return latest


def states(instance: dg.DagsterInstance) -> dict[str, SubmissionState]:
    """Every submission partition with its current stage, score and run."""
    out = {p: SubmissionState(p) for p in instance.get_dynamic_partitions(PARTITIONS)}
    for record in _records(instance.fetch_observations, LIFECYCLE_ASSET):
        state = out.setdefault(record.partition_key, SubmissionState(record.partition_key))
        meta = _metadata(record)
        state.stage, state.detail = meta.pop("stage", state.stage), meta
    for partition, record in scores(instance).items():
        state = out.setdefault(partition, SubmissionState(partition))
        state.score, state.stage = record, record.get("status", state.stage)
    for run in instance.get_runs(dg.RunsFilter(job_name=JOB_NAME)):  # newest first
        state = out.get(run.tags.get("dagster/partition", ""))
        if state is None or state.run_id:
            continue
        state.run_id, state.run_status = run.run_id, run.status.value
        if run.status == dg.DagsterRunStatus.FAILURE and state.stage not in TERMINAL:
            state.stage = FAILED
            state.detail = {"reason": "the judging run failed (infrastructure); see the run's logs"}
    return out
