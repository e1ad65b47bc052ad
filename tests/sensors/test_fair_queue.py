"""The fair queue for real: the Dagster daemon's QueuedRunCoordinator, configured as the embedded
default configures it (``services.dagster_yaml``), with the real submission sensor tagging runs.

Only the judging is a stand-in (``fair_queue_location``) that holds until the test opens its gate,
so the order in which judgings start is the run queue's own decision. Contestant A uploads 6
engines, then B uploads 1 while A's first is being judged: B's judging must start before A's
second, and A must never have two judgings in flight. With one run at a time (the embedded
default) this exercises the priorities; with two (as in production, where runs outnumber judging
slots) the per-contestant limit, since A's second would otherwise take the free run slot at once.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
import yaml

from quantcraft_dagster import lifecycle, services
from quantcraft_dagster.storage.bucket import LocalBucket
from tests import servers

LOCATION = Path(__file__).with_name("fair_queue_location.py")


def wait_for(predicate, what: str):
    """A bound on a hung daemon, not a timing assertion."""
    return servers.wait_for(predicate, 180.0, what, every=0.2)


@pytest.fixture
def stack(tmp_path, request):
    """A real instance and ``dagster-daemon run`` on the stand-in location: (instance, bucket, gates)."""
    home, gates, state = tmp_path / "dagster", tmp_path / "gates", tmp_path / "state"
    home.mkdir()
    gates.mkdir()
    (home / "dagster.yaml").write_text(services.dagster_yaml(runs_at_once=request.param))
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "QUANTCRAFT_HOME": str(state),
        "QUANTCRAFT_TEST_GATES": str(gates),
        "QUANTCRAFT_UPLOADS_PER_WINDOW": "0",  # six uploads in a row: the limits are tested elsewhere
        "QUANTCRAFT_MAX_PENDING_UPLOADS": "0",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(services.PROJECT), os.environ.get("PYTHONPATH")])),
    }
    env.pop("QUANTCRAFT_FAIR_QUEUE", None)  # the default: on
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.get_runs(limit=1)  # create the storage before the daemon starts
        log = open(tmp_path / "daemon.log", "wb")  # noqa: SIM115 - the daemon's for its lifetime
        daemon = subprocess.Popen(
            [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-f", str(LOCATION)],
            cwd=services.PROJECT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield instance, LocalBucket(state / "bucket"), gates
        finally:
            for gate in instance.get_dynamic_partitions(lifecycle.PARTITIONS):
                (gates / gate).touch()  # no run worker left waiting
            os.killpg(daemon.pid, signal.SIGTERM)
            try:
                daemon.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(daemon.pid, signal.SIGKILL)
                daemon.wait()
            log.close()


def judging_runs(instance, contestant: str | None = None) -> list[dg.RunRecord]:
    tags = {lifecycle.CONTESTANT_TAG: contestant} if contestant else {}
    return list(instance.get_run_records(dg.RunsFilter(job_name=lifecycle.JOB_NAME, tags=tags)))


def submitted(record: dg.RunRecord) -> bool:
    return record.dagster_run.status != dg.DagsterRunStatus.NOT_STARTED


def started(instance, contestant: str) -> list[dg.RunRecord]:
    return [r for r in judging_runs(instance, contestant) if r.start_time is not None]


@pytest.mark.slow
@pytest.mark.parametrize("stack", [1, 2], indirect=True, ids=["one-run-at-a-time", "two-runs-at-a-time"])
def test_a_second_contestant_overtakes_a_burst_and_nobody_runs_twice(stack):
    instance, bucket, gates = stack
    for i in range(6):
        bucket.put_bytes(f"submissions/alice/engine-{i}", f"alice {i}".encode())
    first = wait_for(lambda: started(instance, "alice") or None, "alice's first judging to start")[0]
    wait_for(lambda: len(judging_runs(instance, "alice")) == 6, "alice's six runs")
    time.sleep(3)  # a few dequeue rounds while alice's first is held: room for a second to start

    bucket.put_bytes("submissions/bob/engine", b"bob")
    # Queued, not only created: the sensor creates a run (NOT_STARTED) and then submits it, and
    # only a submitted run is the queue's to order. Ending alice's first judging in between
    # would leave alice's second the only run in the queue.
    wait_for(lambda: any(map(submitted, judging_runs(instance, "bob"))), "bob's run in the queue")
    (gates / first.dagster_run.tags["dagster/partition"]).touch()  # alice's first judging ends
    for partition in instance.get_dynamic_partitions(lifecycle.PARTITIONS):
        (gates / partition).touch()  # every other judging ends as soon as it has started

    def all_done():
        runs = judging_runs(instance)
        return len(runs) == 7 and all(r.dagster_run.status == dg.DagsterRunStatus.SUCCESS for r in runs)

    wait_for(all_done, "all seven judgings")
    runs = sorted(judging_runs(instance), key=lambda r: r.start_time)
    order = [r.dagster_run.tags[lifecycle.CONTESTANT_TAG] for r in runs]
    assert order[:2] == ["alice", "bob"], order  # bob's first before alice's second
    alice = [r for r in runs if r.dagster_run.tags[lifecycle.CONTESTANT_TAG] == "alice"]
    for earlier, later in itertools.pairwise(alice):
        assert later.start_time >= earlier.end_time, "alice had two judgings in flight"
    # The sensor ranked them: alice's k-th pending upload at -(k-1), bob's first at 0.
    assert sorted(int(r.dagster_run.tags["dagster/priority"]) for r in alice) == list(range(-5, 1))
    assert [r.dagster_run.tags["dagster/priority"] for r in runs if r not in alice] == ["0"]


def test_production_instance_has_the_embedded_fair_queue():
    """deploy/dagster.yaml carries the same per-contestant limit the embedded default writes."""
    production = yaml.safe_load((services.PROJECT / "deploy" / "dagster.yaml").read_text())
    embedded = yaml.safe_load(services.dagster_yaml(fair_queue=True))
    limits = embedded["concurrency"]["runs"]["tag_concurrency_limits"]
    assert limits == [
        {"key": lifecycle.CONTESTANT_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 1}
    ]
    assert production["concurrency"]["runs"]["tag_concurrency_limits"] == limits
    assert (
        "tag_concurrency_limits"
        not in yaml.safe_load(services.dagster_yaml(fair_queue=False))["concurrency"]["runs"]
    )
