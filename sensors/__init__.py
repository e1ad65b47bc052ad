"""Sensors: new uploads in the bucket become submission partitions and judging runs."""

from concurrent.futures import ThreadPoolExecutor

import dagster as dg
import orjson

from assets.submission import submissions
from quantcraft_dagster import settings
from quantcraft_dagster.core import keys
from quantcraft_dagster.core.intake import IntakeCursor, Submission, scan
from quantcraft_dagster.core.limits import Refusal, UploadLimits, check, queue_priority
from quantcraft_dagster.lifecycle import (
    CONTESTANT_TAG,
    LIFECYCLE_ASSET,
    SCORE_ASSET,
    SKIPPED,
    UPLOADED_TAG,
    Load,
    judging_load,
)
from resources import BucketResource

REJECTED_UPLOADS = dg.AssetKey("rejected_uploads")
PRIORITY_TAG = "dagster/priority"  # the QueuedRunCoordinator dequeues higher values first


def _admit(
    instance: dg.DagsterInstance, subs: list[Submission], limits: UploadLimits
) -> list[tuple[Submission, Refusal | None, int | None]]:
    """Each upload, oldest first, with why it is not judged now (None: judged) and its run
    priority (None: already judged, a re-listing that Dagster's run keys deduplicate).

    Counted from the judging runs in the instance plus the uploads admitted earlier in the same
    tick, so a burst in one listing meets the limits exactly as uploads spread over many ticks.
    """
    subs = sorted(subs, key=lambda sub: (sub.modified, sub.key))
    if not subs:
        return []
    loads = judging_load(instance, since=subs[0].modified - limits.window_s)
    admitted: list[tuple[Submission, Refusal | None, int | None]] = []
    for sub in subs:
        load = loads.setdefault(sub.contestant, Load())
        if sub.partition_key in load.partitions:
            admitted.append((sub, None, None))
            continue
        refusal = check(limits, sub.modified, load.uploads, load.pending)
        if refusal is None:
            admitted.append((sub, None, queue_priority(load.pending)))
            load.pending += 1
            load.uploads.append(sub.modified)
        else:
            admitted.append((sub, refusal, None))
    return admitted


def build_submission_sensor(job) -> dg.SensorDefinition:
    @dg.sensor(
        name="submission_sensor",
        job=job,
        minimum_interval_seconds=2,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Lists {keys.SUBMISSIONS}<contestant_id>/<file> and requests one judging per new object",
    )
    def submission_sensor(context: dg.SensorEvaluationContext, bucket: BucketResource) -> dg.SensorResult:
        client = bucket.client()
        result = scan(client.list(keys.SUBMISSIONS), IntakeCursor.from_json(context.cursor))
        cursor = result.cursor
        events = []
        for key, why in result.skipped:
            context.log.warning(f"skipped {key}: {why}")
            events.append(
                dg.AssetObservation(asset_key=REJECTED_UPLOADS, metadata={"key": key, "reason": why})
            )
        now = settings.current()
        limits, fair = now.upload_limits(), now.fair_queue
        candidates = list(result.new)
        for sub in candidates:
            cursor.held.pop(sub.key, None)  # overwritten: the new object is the upload now
        if cursor.limits != limits.fingerprint():
            # The organiser changed the limits: every held upload still in the bucket as it was
            # gets another look (lifting them judges all).
            for sub in cursor.held_submissions():
                info = client.head(sub.key)
                if info is not None and info.etag == sub.etag:
                    candidates.append(sub)
            cursor.held, cursor.limits = {}, limits.fingerprint()
        decided = _admit(context.instance, candidates, limits)
        judged = [(sub, priority) for sub, refusal, priority in decided if refusal is None]
        # A manifest is the same bytes for the same object, so a re-listing rewrites it harmlessly;
        # written in parallel because a burst of uploads is a burst of small PUTs.
        with ThreadPoolExecutor(max_workers=16) as pool:
            list(
                pool.map(
                    lambda s: client.put_bytes(keys.intake(s.partition_key), orjson.dumps(s.to_obj())),
                    [sub for sub, _ in judged],
                )
            )
        requests = []
        for sub, priority in judged:
            tags = {
                CONTESTANT_TAG: sub.contestant,
                "quantcraft/object_key": sub.key,
                UPLOADED_TAG: f"{sub.modified:.6f}",
            }
            if fair and priority is not None:
                tags[PRIORITY_TAG] = str(priority)
            requests.append(dg.RunRequest(partition_key=sub.partition_key, run_key=sub.run_key, tags=tags))
            if priority is not None:  # not for a re-listed upload: its judging may be long done
                events.append(
                    dg.AssetObservation(
                        asset_key=LIFECYCLE_ASSET, partition=sub.partition_key, metadata={"stage": "queued"}
                    )
                )
        held = [(sub, refusal) for sub, refusal, _ in decided if refusal is not None]
        for sub, refusal in held:
            # Never silently dropped: the contestant sees the submission skipped, and why.
            cursor.hold(sub)
            reason = f"not judged: {refusal.reason} (kept: judged if the organisers lift the limit)"
            context.log.info(f"held {sub.key}: {refusal.reason}")
            events.append(
                dg.AssetObservation(
                    asset_key=LIFECYCLE_ASSET,
                    partition=sub.partition_key,
                    metadata={"stage": SKIPPED, "reason": reason, "retry_after_s": refusal.retry_after_s},
                )
            )
        if requests:
            context.log.info(f"{len(requests)} new submission(s)")
        partitions = [r.partition_key for r in requests if r.partition_key] + [
            sub.partition_key for sub, _ in held
        ]
        return dg.SensorResult(
            run_requests=requests,
            dynamic_partitions_requests=[submissions.build_add_request(partitions)] if partitions else [],
            asset_events=events,
            cursor=cursor.to_json(),
        )

    return submission_sensor


def build_standings_sensor(job) -> dg.SensorDefinition:
    @dg.asset_sensor(
        name="standings_sensor",
        asset_key=SCORE_ASSET,
        job=job,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Refreshes the standings at most every 30 s while scores arrive",
    )
    def standings_sensor(context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry):
        """One refresh waiting is enough: it reads every score there is when it runs. (With one run
        at a time, the embedded default, a request per new score piled up behind the judgings.)"""
        waiting = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED]
        if context.instance.get_runs(dg.RunsFilter(job_name=job.name, statuses=waiting), limit=1):
            return dg.SkipReason("a refresh is already waiting: it will rank this score too")
        return dg.RunRequest()

    return standings_sensor
