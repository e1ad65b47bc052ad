"""Code location for ``test_fair_queue``: the real submission sensor in front of a stand-in judging.

The stand-in holds until the test creates its partition's gate file, so the test decides when a
judging ends and the real run queue alone decides which starts next. The run worker imports only
this, not the judge: each one starts in a couple of seconds.
"""

import os
import time
from pathlib import Path

import dagster as dg

from assets.submission import submissions
from quantcraft_dagster import settings
from quantcraft_dagster.lifecycle import JOB_NAME
from resources import BucketResource
from sensors import build_submission_sensor

GATES = Path(os.environ.get("QUANTCRAFT_TEST_GATES", "/nonexistent"))


@dg.op
def judge(context: dg.OpExecutionContext) -> None:
    gate = GATES / context.partition_key
    while not gate.exists():
        time.sleep(0.05)


@dg.job(name=JOB_NAME, partitions_def=submissions, executor_def=dg.in_process_executor)
def judge_submission() -> None:
    judge()


defs = dg.Definitions(
    jobs=[judge_submission],
    sensors=[build_submission_sensor(judge_submission)],
    resources={"bucket": BucketResource.from_settings(settings.current())},
)
