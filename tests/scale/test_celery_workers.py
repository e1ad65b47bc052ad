"""Scale-out on Celery, for real on one machine: Debian's PostgreSQL and Redis started here, the
S3 stand-in for the bucket, a control host (the Dagster daemon with deploy/dagster-celery.yaml:
sensor, run queue, CeleryRunLauncher, run monitoring, run retries) and two judge hosts, each a
``quantcraft worker`` with its own state folder and Dagster home.

What is not a second machine: both workers share this machine's two cores, which make one
judging slot. Both take the host-wide CPU locks of that one slot (one folder, as every judging
on a host does), so they never judge at the same time: the test shows the queue, the handover
and the recovery, not two slots' throughput.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.storage.tags import PARENT_RUN_ID_TAG

from quantcraft_dagster import lifecycle
from quantcraft_dagster.storage.bucket import S3Bucket
from tests.judge.helpers import assert_nothing_left

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PG_BIN = max(Path("/usr/lib/postgresql").glob("*/bin"))
TASK_ID_TAG = "dagster-celery/task_id"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(check: Callable[[], object], timeout: float, what: str, every: float = 1.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture(scope="module")
def postgres() -> Iterator[dict[str, str]]:
    """Debian's PostgreSQL on loopback, as the postgres user (it refuses root), password auth."""
    data = Path(tempfile.mkdtemp(prefix="qc-pg-"))
    shutil.chown(data, "postgres", "postgres")
    password = secrets.token_hex(16)
    pwfile = data / "pw"
    pwfile.write_text(password)
    shutil.chown(pwfile, "postgres", "postgres")
    as_pg = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [*as_pg, PG_BIN / "initdb", "-D", data / "db", "-U", "dagster", f"--pwfile={pwfile}",
         "--auth-local=trust", "--auth-host=scram-sha-256"],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    port = free_port()
    proc = subprocess.Popen(
        [*as_pg, PG_BIN / "postgres", "-D", data / "db", "-p", str(port), "-k", data,
         "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        ready = [PG_BIN / "pg_isready", "-h", "127.0.0.1", "-p", str(port)]
        wait_for(lambda: subprocess.run(ready, capture_output=True).returncode == 0, 30, "postgres", 0.2)
        subprocess.run([*as_pg, PG_BIN / "createdb", "-h", data, "-p", str(port), "-U", "dagster", "dagster"])
        yield {
            "DAGSTER_PG_HOST": "127.0.0.1",
            "DAGSTER_PG_PORT": str(port),
            "DAGSTER_PG_USER": "dagster",
            "DAGSTER_PG_PASSWORD": password,
            "DAGSTER_PG_DB": "dagster",
        }
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(scope="module")
def redis() -> Iterator[dict[str, str]]:
    """Debian's redis-server on loopback with a password, nothing persisted: broker and backend."""
    port, password = free_port(), secrets.token_hex(16)
    proc = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--requirepass", password,
         "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        ping = ["redis-cli", "-p", str(port), "--no-auth-warning", "-a", password, "ping"]
        wait_for(lambda: b"PONG" in subprocess.run(ping, capture_output=True).stdout, 30, "redis", 0.2)
        url = f"redis://:{password}@127.0.0.1:{port}"
        yield {"QUANTCRAFT_CELERY_BROKER": f"{url}/0", "QUANTCRAFT_CELERY_BACKEND": f"{url}/1"}
    finally:
        proc.terminate()
        proc.wait(30)


def instance_yaml() -> dict:
    """deploy/dagster-celery.yaml with run monitoring scaled to quick-profile judgings (about 15 s,
    one more waiting for the shared slot): a dead host's run is failed after a minute."""
    config = yaml.safe_load((ROOT / "deploy" / "dagster-celery.yaml").read_text())
    config["run_coordinator"]["config"]["dequeue_interval_seconds"] = 1
    config["run_monitoring"].update(
        start_timeout_seconds=120,
        max_runtime_seconds=60,
        poll_interval_seconds=2,
        free_slots_after_run_end_seconds=1,
    )
    return config


@dataclass
class Cluster:
    root: Path
    env: dict[str, str]
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    restarted_at: float = 0.0

    def host_env(self, name: str) -> dict[str, str]:
        """One host's environment: its own state folder and Dagster home, the shared services."""
        home = self.root / name
        (home / "dagster").mkdir(parents=True, exist_ok=True)
        (home / "dagster" / "dagster.yaml").write_text(yaml.safe_dump(instance_yaml()))
        return {**self.env, "QUANTCRAFT_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")}

    def start(self, name: str, cmd: list[str]) -> None:
        log = open(self.root / f"{name}.log", "ab")  # noqa: SIM115 - the child's for its lifetime
        self.procs[name] = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=self.host_env(name),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def start_worker(self, name: str) -> None:
        self.start(name, [str(BIN / "quantcraft"), "worker", "--name", name])

    def node(self, name: str) -> str:
        return f"{name}@{socket.gethostname()}"

    def bucket(self) -> S3Bucket:
        env = self.env
        return S3Bucket(
            env["QUANTCRAFT_S3_BUCKET"], env["QUANTCRAFT_S3_ENDPOINT"], access_key="test", secret_key="test"
        )

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for name, proc in self.procs.items():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            print(f"--- {name}.log (tail)\n" + "\n".join(self.log(name).splitlines()[-15:]))

    def log(self, name: str) -> str:
        return (self.root / f"{name}.log").read_text(errors="replace")


@pytest.fixture
def cluster(postgres, redis, s3_server, tmp_path, monkeypatch) -> Iterator[Cluster]:
    env = {
        **os.environ,
        **postgres,
        **redis,
        "QUANTCRAFT_JUDGING_QUEUE": "judging",
        "QUANTCRAFT_BUCKET_BACKEND": "s3",
        "QUANTCRAFT_S3_ENDPOINT": s3_server,
        "QUANTCRAFT_S3_BUCKET": f"qc-{uuid.uuid4().hex[:12]}",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "QUANTCRAFT_OFFICIAL_SECRET": secrets.token_hex(32),
        "QUANTCRAFT_PROFILE": "quick",
        # This VM's noise bursts reach milliseconds: the test asserts the platform, not the host.
        "QUANTCRAFT_MAX_SEND_LAG_P99_US": "20000",
        # This machine's CPU locks, shared by both "hosts" since they share its cores.
        "QUANTCRAFT_SLOTS_DIR": str(tmp_path / "slots"),
        "PYTHONPATH": str(ROOT),
    }
    for name in (*postgres, *redis):
        monkeypatch.setenv(name, env[name])
    cluster = Cluster(tmp_path, env)
    # The control host: official traces and a calibration first (what every judging reads), then
    # the daemon (sensor, queue, launcher, monitoring, retries).
    prepare = "from quantcraft_dagster.definitions import prepare_judging; prepare_judging()"
    subprocess.run([sys.executable, "-c", prepare], cwd=ROOT, env=cluster.host_env("control"), check=True)
    cluster.start("control", [str(BIN / "dagster-daemon"), "run", "-w", str(ROOT / "workspace.yaml")])
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
    home = cluster.root / "control" / "dagster"
    wait_for(lambda: len(app.control.ping(timeout=1)) == 2, 60, "both workers up")

    def worker_of(run: dg.DagsterRun) -> str | None:
        return app.AsyncResult(run.tags[TASK_ID_TAG]).worker if TASK_ID_TAG in run.tags else None

    engine = (engines / "engine").read_bytes()
    bucket = cluster.bucket()
    for i in range(4):  # the first wave; the second once the dead host's run is retried
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
            return next((r for r in retries if worker_of(r)), None)

        retry = wait_for(retried, 240, "the dead host's run failed by run monitoring and retried")
        detected_s = time.monotonic() - killed_at
        failure = instance.get_run_by_id(victim_run.run_id)
        assert worker_of(retry) == cluster.node(survivor)
        cluster.start_worker(victim)  # the host comes back
        restarted_at = time.time()
        wait_for(lambda: len(app.control.ping(timeout=1)) == 2, 60, "the restarted worker up")
        for i in range(4, 8):
            bucket.put_bytes(f"submissions/c{i}/engine", engine)

        def all_scored() -> dict[str, lifecycle.SubmissionState] | None:
            states = lifecycle.states(instance)
            done = {p: s for p, s in states.items() if s.stage in lifecycle.TERMINAL and s.score}
            return states if len(done) == 8 else None

        states = wait_for(all_scored, 420, "eight scored submissions", 2)
        assert {s.stage for s in states.values()} == {"finished"}, states
        assert sorted(s.score["contestant"] for s in states.values()) == [f"c{i}" for i in range(8)]
        for asset in ("raw_telemetry", "score"):
            records = instance.fetch_materializations(dg.AssetKey(asset), limit=1000).records
            per_partition = [r.partition_key for r in records]
            assert sorted(per_partition) == sorted(states), f"{asset}: each judged exactly once"

        succeeded = judge_runs(dg.DagsterRunStatus.SUCCESS)
        assert len(succeeded) == 8 and len({r.tags["dagster/partition"] for r in succeeded}) == 8
        workers = {r.run_id: worker_of(r) for r in succeeded}
        assert set(workers.values()) == {cluster.node("host-a"), cluster.node("host-b")}
        assert failure.tags.get("dagster/will_retry") == "true"
        assert [r.run_id for r in judge_runs(dg.DagsterRunStatus.FAILURE)] == [victim_run.run_id]
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
        f"\nscale-out: 8 judged by {sorted(set(workers.values()))}; dead host's run failed and retried"
        f" {detected_s:.0f} s after the kill; launched → run started median {statistics.median(to_run):.2f} s"
        f" (max {max(to_run):.2f}), → first step median {statistics.median(to_step):.2f} s;"
        f" wall {time.monotonic() - started:.0f} s"
    )
