"""Scale-out on Celery, for real on one machine: Debian's PostgreSQL and Redis started here, the
S3 stand-in for the bucket, a control host (the Dagster daemon with deploy/dagster-celery.yaml:
sensor, run queue, CeleryRunLauncher, run monitoring, run retries) and two judge hosts, each a
``quantcraft worker`` with its own state folder and Dagster home.

What is not a second machine: both workers share this machine's two cores, which make one
judging slot. Both take the host-wide CPU locks of that one slot (one folder, as every judging
on a host does), so they never judge at the same time: the test shows the queue, the handover
and the recovery, not two slots' throughput. The control host and the shared services are not
other machines either: they run where the judge leaves room (``tests.servers.elsewhere``), as a
small host's platform services do, and every judging is judged at the shipped bounds.
"""

from __future__ import annotations

import os
import signal
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.tags import PARENT_RUN_ID_TAG

from quantcraft_dagster import lifecycle
from quantcraft_dagster.judge.slots import host_of
from tests import servers
from tests.judge.helpers import assert_nothing_left
from tests.scale.cluster import TASK_ID_TAG, Cluster, cluster_env
from tests.servers import wait_for

UNFINISHED = (dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

# Uploads before the kill (one is the victim's, the rest go on judging on the survivor), and after
# the victim's host is back: the queue launches as many runs as there are slots (two), and a worker
# takes one run at a time, so each host takes one of these two.
FIRST_WAVE, SECOND_WAVE = 3, 2
JUDGED = FIRST_WAVE + SECOND_WAVE


@pytest.fixture(scope="module")
def postgres() -> Iterator[dict[str, str]]:
    with servers.postgres() as settings:
        yield settings


@pytest.fixture(scope="module")
def redis() -> Iterator[dict[str, str]]:
    with servers.redis() as settings:
        yield settings


@pytest.fixture
def cluster(postgres, redis, s3_server, tmp_path, monkeypatch) -> Iterator[Cluster]:
    """The control host and two judge hosts. Quick-profile judgings take about 15 s (one more
    waiting for the shared slot): a dead host's run is failed after a minute."""
    env = cluster_env({**postgres, **redis}, s3_server, tmp_path, profile="quick")
    for name in (*postgres, *redis):
        monkeypatch.setenv(name, env[name])
    cluster = Cluster(tmp_path, env, max_runtime_s=60)
    cluster.start_control()
    for name in ("host-a", "host-b"):
        cluster.start_worker(name)
    try:
        yield cluster
    finally:
        cluster.stop()


def celery_app():
    """A Celery client on the test's broker and backend, to ask which worker took a run."""
    from quantcraft_dagster.worker import make_judging_app

    return make_judging_app()


def test_two_judge_hosts_share_the_queue_and_a_dead_hosts_judging_is_retried(cluster, engines):
    started = time.monotonic()
    app = celery_app()
    home = cluster.control_home
    # Each worker calibrates its slot before it takes work: one after the other on the shared slot.
    wait_for(lambda: len(app.control.ping(timeout=1)) == 2, 120, "both workers up")

    def worker_of(run: dg.DagsterRun) -> str | None:
        return app.AsyncResult(run.tags[TASK_ID_TAG]).worker if TASK_ID_TAG in run.tags else None

    engine = (engines / "engine").read_bytes()
    bucket = cluster.bucket()
    for i in range(FIRST_WAVE):
        bucket.put_bytes(f"submissions/c{i}/engine", engine)

    with dg.DagsterInstance.from_config(str(home)) as instance:

        def judge_runs(*statuses: dg.DagsterRunStatus) -> list[dg.DagsterRun]:
            return instance.get_runs(dg.RunsFilter(job_name=lifecycle.JOB_NAME, statuses=list(statuses)))

        def mid_judging() -> tuple[dg.DagsterRun, str] | None:
            states = lifecycle.states(instance)
            for run in judge_runs(dg.DagsterRunStatus.STARTED):
                state = states.get(run.tags["dagster/partition"])
                if state and state.stage.startswith("running phase") and (worker := worker_of(run)):
                    return run, worker
            return None

        victim_run, victim_node = wait_for(mid_judging, 240, "a judging under way", 0.5)
        victim = next(name for name in ("host-a", "host-b") if cluster.node(name) == victim_node)
        survivor = next(name for name in ("host-a", "host-b") if name != victim)
        proc = cluster.procs[victim]
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        os.kill(proc.pid, signal.SIGKILL)  # the judge host dies mid-judging
        proc.wait()
        # Its judging process dies with it (and with that, its sandbox and its slot's locks).
        wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in children), 10, "pool exit", 0.2)
        killed_at = time.monotonic()

        def retried() -> dg.DagsterRun | None:
            if instance.get_run_by_id(victim_run.run_id).status != dg.DagsterRunStatus.FAILURE:
                return None
            retries = instance.get_runs(dg.RunsFilter(tags={PARENT_RUN_ID_TAG: victim_run.run_id}))
            # A retry inherits its parent's tags, the Celery task's id included, until launched.
            launched = [r for r in retries if r.tags.get(TASK_ID_TAG) != victim_run.tags[TASK_ID_TAG]]
            return next((r for r in launched if worker_of(r)), None)

        retry = wait_for(retried, 240, "the dead host's run failed by run monitoring and retried")
        detected_s = time.monotonic() - killed_at
        failure = instance.get_run_by_id(victim_run.run_id)
        assert worker_of(retry) == cluster.node(survivor)
        cluster.start_worker(victim)  # the host comes back
        restarted_at = time.time()
        wait_for(lambda: len(app.control.ping(timeout=1)) == 2, 120, "the restarted worker up")
        for i in range(FIRST_WAVE, JUDGED):
            bucket.put_bytes(f"submissions/c{i}/engine", engine)

        def all_scored() -> dict[str, lifecycle.SubmissionState] | None:
            states = lifecycle.states(instance)
            done = {p: s for p, s in states.items() if s.stage in lifecycle.TERMINAL and s.score}
            # A submission settles once its score is written; its run ends a moment later.
            busy = judge_runs(*UNFINISHED)
            return states if len(done) == JUDGED and not busy else None

        def where_things_stand() -> dict[str, object]:
            runs = instance.get_runs(dg.RunsFilter(job_name=lifecycle.JOB_NAME))
            return {
                "submissions": {p: (s.stage, s.reason) for p, s in lifecycle.states(instance).items()},
                "runs": [(r.tags.get("dagster/partition"), r.status.value, worker_of(r)) for r in runs],
                "workers": app.control.ping(timeout=1),
            }

        states = wait_for(all_scored, 420, f"{JUDGED} scored submissions", 2, where_things_stand)
        assert {s.stage for s in states.values()} == {"finished"}, states
        assert sorted(s.score["contestant"] for s in states.values()) == [f"c{i}" for i in range(JUDGED)]
        for asset in ("verdict", "score"):
            records = instance.fetch_materializations(dg.AssetKey(asset), limit=1000).records
            per_partition = [r.partition_key for r in records]
            assert sorted(per_partition) == sorted(states), f"{asset}: each judged exactly once"

        succeeded = judge_runs(dg.DagsterRunStatus.SUCCESS)
        assert len(succeeded) == JUDGED == len({r.tags["dagster/partition"] for r in succeeded})
        workers = {r.run_id: worker_of(r) for r in succeeded}
        assert set(workers.values()) == {cluster.node("host-a"), cluster.node("host-b")}
        # Each host calibrated its own slot, and each verdict holds the calibration of the slot
        # it was judged on: one of the host that judged it.
        calibrated = instance.fetch_materializations(dg.AssetKey("calibration"), limit=1000).records
        assert {host_of(r.partition_key) for r in calibrated} == {"host-a", "host-b"}
        verdicts = instance.fetch_materializations(dg.AssetKey("verdict"), limit=1000).records
        for record in verdicts:
            slot = record.asset_materialization.metadata[lifecycle.SLOT_METADATA].value
            assert cluster.node(host_of(slot)) == workers[record.run_id], (slot, workers[record.run_id])
        assert failure.tags.get("dagster/will_retry") == "true"
        # Nothing else failed, whatever the job (standings and calibrations run on workers too).
        failed = instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]))
        assert [r.run_id for r in failed] == [victim_run.run_id], [
            (r.job_name, r.tags.get("dagster/partition"), r.run_id[:8]) for r in failed
        ]
        all_runs = instance.get_run_records(dg.RunsFilter(job_name=lifecycle.JOB_NAME))
        records = {r.dagster_run.run_id: r for r in all_runs}
        after_restart = [
            run_id
            for run_id, node in workers.items()
            if node == cluster.node(victim) and records[run_id].start_time > restarted_at
        ]
        assert after_restart, "the restarted host took work again"

        # Dagster's share of each judging on a warm worker: launched (sent to the queue) → the
        # worker's process started the run → the first step started.
        to_run, to_step = [], []
        for run in succeeded:
            events: dict[dg.DagsterEventType, float] = {}
            for entry in instance.all_logs(run.run_id):
                if entry.dagster_event:
                    events.setdefault(entry.dagster_event.event_type, entry.timestamp)
            to_run.append(events[dg.DagsterEventType.RUN_START] - events[dg.DagsterEventType.RUN_STARTING])
            to_step.append(events[dg.DagsterEventType.STEP_START] - events[dg.DagsterEventType.RUN_STARTING])
    assert_nothing_left()
    print(
        f"\nscale-out: {JUDGED} judged by {sorted(set(workers.values()))}; dead host's run failed and retried"
        f" {detected_s:.0f} s after the kill; launched → run started median {statistics.median(to_run):.2f} s"
        f" (max {max(to_run):.2f}), → first step median {statistics.median(to_step):.2f} s;"
        f" wall {time.monotonic() - started:.0f} s"
    )
