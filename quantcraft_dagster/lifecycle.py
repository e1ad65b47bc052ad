"""The one read model of a submission's lifecycle, read back from the Dagster instance by cursor.

Written by the assets as observations of ``submission_lifecycle`` (queued → deploying → running
phase A/B/C → validating → finished | failed | rejected, or waiting for a quiet judge → queued
again), ``score`` and ``metrics``
materializations, and by Dagster itself as run-failure events. ``quantcraft status`` reads it once;
the leaderboard keeps one and polls it, so both show the same stage — including ``failed`` for a
judging run that died without a score (a judge-infrastructure failure).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from . import settings
from .core.scoring import ScoringConfig, rescored
from .core.verdict import FAILED, TERMINAL

LIFECYCLE_ASSET = dg.AssetKey("submission_lifecycle")
SCORE_ASSET = dg.AssetKey("score")
METRICS_ASSET = dg.AssetKey("metrics")
VERDICT_ASSET = dg.AssetKey("verdict")  # read by its owner only: it holds private diagnostics
# In a verdict's metadata: the judging slot it was judged on (``judge.slots.slot_key``).
SLOT_METADATA = "judge_slot"
JOB_NAME = "judge_submission"
# Times the judging job's run is started again when its run worker died (a killed container, a
# lost host): the job's ``dagster/max_retries`` tag, which every Dagster instance file leaves to
# it. A judge failure is retried inside the run (``judge.errors``); an engine's is a verdict.
RUN_RETRIES = 1
# The Dagster pool of every step that judges: its limit is the judging slots of the contest.
JUDGING_POOL = "judging"
PARTITIONS = "submissions"
QUEUED = "queued"
# An upload over its contestant's limits: kept in the bucket, not judged unless the organiser
# lifts the limit; the detail's reason says which limit and when another upload is accepted.
SKIPPED = "skipped"
# On every judging run (the sensor sets them): whose upload it judges, and when it was uploaded.
CONTESTANT_TAG = "quantcraft/contestant"
UPLOADED_TAG = "quantcraft/uploaded_at"
PENDING_STATUSES = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]
INFRASTRUCTURE_FAILURE = "the judging run failed (infrastructure); see the run's logs"
# A judging the judge could not vouch for after its retries (the host was busy, never the engine's
# doing): not a verdict. It waits, visibly, and is queued again once its slot calibrates clean
# (``sensors.requeue``); never dropped.
WAITING = "waiting"
WAITING_REASON = "waiting for a quiet judge"
# On a finals run that stopped waiting for a quiet judge: the slot it waited on (``sensors.requeue``
# runs the finals again once that slot calibrates clean).
FINALS_WAITING_TAG = "quantcraft/finals_waiting_on"
PAGE = 1000

# What a poll saw change for a submission.
STAGE, SCORE, METRICS = "stage", "score", "metrics"


@dataclass(slots=True)
class SubmissionState:
    partition: str
    stage: str = QUEUED
    detail: dict[str, Any] = field(default_factory=dict)  # the current stage's metadata
    score: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None
    updated: float = 0.0
    failed_run: str | None = None  # the judging run that failed without a verdict

    @property
    def contestant(self) -> str:
        """From the score once there is one; before, the partition key's leading part."""
        return (self.score or {}).get("contestant") or self.partition.rsplit("-", 2)[0]

    @property
    def reason(self) -> str:
        return str((self.score or self.detail).get("reason") or "")


def metadata_of(record) -> dict[str, Any]:
    event = record.asset_materialization or record.asset_observation
    return {k: v.value for k, v in (event.metadata or {}).items()}


def _fetch(fetch: Callable, records_filter, cursor: str | None) -> tuple[list, str | None]:
    """Every record after ``cursor`` in storage order, and the cursor after the last one."""
    records: list = []
    while True:
        result = fetch(records_filter, limit=PAGE, cursor=cursor, ascending=True)
        records += result.records
        if result.records:
            cursor = result.cursor
        if not result.has_more:
            return records, cursor


class ReadModel:
    """Every submission's state; ``poll`` applies the events written since the last poll.

    The streams are merged in storage order, so a run that failed and was then retried shows the
    retry's stages, and a restarted reader rebuilds exactly the same states from the start. Scores
    are read on ``scale`` (default: the ``QUANTCRAFT_SCORING`` setting), whatever scale they were
    stored on: changing the preset re-scores every judging without judging again.
    """

    def __init__(self, instance: dg.DagsterInstance, scale: ScoringConfig | None = None) -> None:
        self.instance = instance
        self.scale = scale or settings.current().scale()
        self.states: dict[str, SubmissionState] = {}
        self._cursors: dict[str, str | None] = {}
        self._streams: dict[str, tuple[Callable, Any]] = {
            STAGE: (instance.fetch_observations, dg.AssetRecordsFilter(asset_key=LIFECYCLE_ASSET)),
            SCORE: (instance.fetch_materializations, dg.AssetRecordsFilter(asset_key=SCORE_ASSET)),
            METRICS: (instance.fetch_materializations, dg.AssetRecordsFilter(asset_key=METRICS_ASSET)),
            FAILED: (instance.fetch_run_status_changes, dg.DagsterEventType.RUN_FAILURE),
        }

    def poll(self) -> list[tuple[str, SubmissionState]]:
        """(what changed, the state after it) for each new event, oldest first."""
        events = []
        for name, (fetch, records_filter) in self._streams.items():
            records, self._cursors[name] = _fetch(fetch, records_filter, self._cursors.get(name))
            events += [(record.storage_id, name, record) for record in records]
        events.sort(key=lambda event: event[0])
        changes = []
        for _, name, record in events:
            state = self._failed(record) if name == FAILED else self._apply(name, record)
            if state is not None:
                changes.append((STAGE if name == FAILED else name, state))
        return changes

    def _state(self, partition: str) -> SubmissionState:
        return self.states.setdefault(partition, SubmissionState(partition))

    def _apply(self, name: str, record) -> SubmissionState:
        state, meta = self._state(record.partition_key), metadata_of(record)
        if name == STAGE:
            state.stage, state.detail = meta.pop("stage", state.stage), meta
        elif name == SCORE:
            state.score, state.stage = rescored(meta, self.scale), meta.get("status", state.stage)
        else:
            state.metrics = meta
        state.updated = record.timestamp
        return state

    def _failed(self, record) -> SubmissionState | None:
        """A judging run that failed before its score asset wrote a verdict."""
        run = self.instance.get_run_by_id(record.event_log_entry.run_id)
        if run is None or run.job_name != JOB_NAME:
            return None
        partition = run.tags.get("dagster/partition")
        if partition is None:
            return None
        state = self._state(partition)
        if state.stage in TERMINAL:
            return None
        if state.stage == WAITING:  # the run ended as it said it would: it waits
            state.failed_run = run.run_id
            return None
        state.stage, state.detail = FAILED, {"reason": INFRASTRUCTURE_FAILURE}
        state.failed_run, state.updated = run.run_id, record.timestamp
        return state


def settled(state: SubmissionState) -> bool:
    """Whether nothing more happens to the submission unless something outside it changes: a
    verdict with its score written (the stage is observed just before the score), a judging run
    that failed without one, or a wait for a quiet judge."""
    if state.stage == WAITING:
        return True
    return state.stage in TERMINAL and (state.score is not None or state.failed_run is not None)


def states(instance: dg.DagsterInstance) -> dict[str, SubmissionState]:
    """Every submission with its current stage, score and metrics."""
    model = ReadModel(instance)
    model.poll()
    return model.states


def scores(instance: dg.DagsterInstance, scale: ScoringConfig | None = None) -> dict[str, dict[str, Any]]:
    """Latest score record per partition, on ``scale`` (as ``ReadModel`` reads them)."""
    scale = scale or settings.current().scale()
    records, _ = _fetch(instance.fetch_materializations, dg.AssetRecordsFilter(asset_key=SCORE_ASSET), None)
    return {record.partition_key: rescored(metadata_of(record), scale) for record in records}


@dataclass(slots=True)
class Load:
    """One contestant's judgings: how many are pending, and the upload times of those accepted."""

    pending: int = 0
    uploads: list[float] = field(default_factory=list)
    partitions: set[str] = field(default_factory=set)  # whose judgings these are


def judging_load(
    instance: dg.DagsterInstance, since: float, contestant: str | None = None
) -> dict[str, Load]:
    """Per contestant (or only ``contestant``): judgings pending now, and accepted uploads made
    after ``since`` (epoch seconds).

    Read from the judging runs, the state that survives every restart; a partition counts once
    however many retries its run had. A run is created after its upload, so runs created before
    ``since`` cannot hold a later upload.
    """
    tags = {CONTESTANT_TAG: contestant} if contestant else {}
    loads: dict[str, Load] = {}
    pending: dict[str, set[str]] = {}
    for record in instance.get_run_records(
        dg.RunsFilter(job_name=JOB_NAME, statuses=PENDING_STATUSES, tags=tags)
    ):
        run = record.dagster_run
        if who := run.tags.get(CONTESTANT_TAG):
            pending.setdefault(who, set()).add(run.tags.get("dagster/partition", run.run_id))
    uploads: dict[str, dict[str, float]] = {}
    created_after = datetime.fromtimestamp(since, UTC)
    for record in instance.get_run_records(
        dg.RunsFilter(job_name=JOB_NAME, created_after=created_after, tags=tags)
    ):
        run = record.dagster_run
        if who := run.tags.get(CONTESTANT_TAG):
            at = float(run.tags.get(UPLOADED_TAG) or record.create_timestamp.timestamp())
            uploads.setdefault(who, {})[run.tags.get("dagster/partition", run.run_id)] = at
    for who in pending.keys() | uploads.keys():
        accepted = uploads.get(who, {})
        loads[who] = Load(len(pending.get(who, ())), sorted(accepted.values()), set(accepted))
    return loads
