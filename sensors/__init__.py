"""Sensors: new uploads in the bucket become submission partitions and judging runs."""

from concurrent.futures import ThreadPoolExecutor

import dagster as dg
import orjson

from assets.submission import submissions
from quantcraft_dagster.core.intake import PREFIX, IntakeCursor, scan
from quantcraft_dagster.lifecycle import LIFECYCLE_ASSET, SCORE_ASSET, intake_key
from resources import BucketResource

REJECTED_UPLOADS = dg.AssetKey("rejected_uploads")


def build_submission_sensor(job) -> dg.SensorDefinition:
    @dg.sensor(
        name="submission_sensor",
        job=job,
        minimum_interval_seconds=2,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Lists {PREFIX}<contestant_id>/<file> and requests one judging per new object",
    )
    def submission_sensor(context: dg.SensorEvaluationContext, bucket: BucketResource) -> dg.SensorResult:
        client = bucket.client()
        result = scan(client.list(PREFIX), IntakeCursor.from_json(context.cursor))
        events = []
        for key, why in result.skipped:
            context.log.warning(f"skipped {key}: {why}")
            events.append(
                dg.AssetObservation(asset_key=REJECTED_UPLOADS, metadata={"key": key, "reason": why})
            )
        # A manifest is the same bytes for the same object, so a re-listing rewrites it harmlessly;
        # written in parallel because a burst of uploads is a burst of small PUTs.
        with ThreadPoolExecutor(max_workers=16) as pool:
            list(
                pool.map(
                    lambda s: client.put_bytes(intake_key(s.partition_key), orjson.dumps(s.to_obj())),
                    result.new,
                )
            )
        requests = []
        for sub in result.new:
            requests.append(
                dg.RunRequest(
                    partition_key=sub.partition_key,
                    run_key=sub.run_key,
                    tags={"quantcraft/contestant": sub.contestant, "quantcraft/object_key": sub.key},
                )
            )
            events.append(
                dg.AssetObservation(
                    asset_key=LIFECYCLE_ASSET, partition=sub.partition_key, metadata={"stage": "queued"}
                )
            )
        if requests:
            context.log.info(f"{len(requests)} new submission(s)")
        return dg.SensorResult(
            run_requests=requests,
            dynamic_partitions_requests=[submissions.build_add_request([r.partition_key for r in requests])]
            if requests
            else [],
            asset_events=events,
            cursor=result.cursor.to_json(),
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
        yield dg.RunRequest()

    return standings_sensor
