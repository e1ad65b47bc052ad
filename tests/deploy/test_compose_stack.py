"""The production path, run for real: docker-compose with the offline override brings up Postgres,
the S3 stand-in, the gRPC code location, webserver, daemon and leaderboard from the images
``deploy/build-images.sh`` builds; one upload is judged by the sensor → a DockerRunLauncher run
container → the Docker sandbox, and its score reaches the leaderboard."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.scheduler.instigation import TickStatus  # not exported: ticks are the daemon's

from quantcraft_dagster.judge.docker_sandbox import JUDGING_LABEL, LABEL, OWNER_LABEL
from quantcraft_dagster.lifecycle import CONTESTANT_TAG
from quantcraft_dagster.storage.bucket import S3Bucket
from tests import servers
from tests.docker_env import ROOT, docker_client, sandbox_image, sandbox_leftovers  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

OFFLINE = ROOT / "deploy" / "compose.offline.yml"
COMPOSE_ARGS = "_compose_args"  # not the stack's: how this test names its project to docker-compose
COMPOSE = ["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "-f", str(OFFLINE)]


def wait_for(
    check: Callable[[], object], timeout: float, what: str, state: Callable[[], object] = lambda: None
) -> object:
    """:func:`tests.servers.wait_for` every 2 s, through the stack's services coming and going."""
    return servers.wait_for(check, timeout, what, every=2, state=state, ignore=(OSError, ValueError))


def assert_no_failed_run(instance: dg.DagsterInstance, contestant: str) -> None:
    """Fail at once rather than wait out a timeout when a contestant's judging run has failed."""
    failed = instance.get_runs(
        dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE], tags={CONTESTANT_TAG: contestant})
    )
    if failed:
        raise AssertionError(why_failed(instance, failed[0].run_id))


def why_failed(instance: dg.DagsterInstance, run_id: str) -> str:
    """A failed run's failure events and its last messages, for a test's failure message."""
    events = instance.all_logs(
        run_id, of_type={dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.RUN_FAILURE}
    )
    reasons = [str(event.dagster_event.event_specific_data) for event in events if event.dagster_event]
    messages = [event.message for event in instance.all_logs(run_id)][-15:]
    return f"judging run {run_id} failed: {reasons}; last messages: {messages}"


def deploy_init(env_file: Path) -> None:
    """The deployment's secrets, made as an organiser makes them: ``quantcraft deploy init``."""
    subprocess.run(
        [sys.executable, "-m", "quantcraft_dagster.cli", "deploy", "init", "--env-file", str(env_file)],
        check=True,
    )


def read_env(path: Path) -> dict[str, str]:
    lines = path.read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def stack_bucket(stack: dict[str, str]) -> S3Bucket:
    """The stack's bucket through its S3 endpoint, with the keys `quantcraft deploy init` generated."""
    return S3Bucket(
        "quantcraft",
        f"http://127.0.0.1:{stack['QUANTCRAFT_S3_PORT']}",
        access_key=stack["QUANTCRAFT_S3_ACCESS_KEY"],
        secret_key=stack["QUANTCRAFT_S3_SECRET_KEY"],
    )


def leaderboard(stack: dict[str, str]) -> list[dict]:
    url = f"http://127.0.0.1:{stack['QUANTCRAFT_LEADERBOARD_PORT']}/api/leaderboard"
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.load(resp)["leaderboard"]


def service(client, stack: dict[str, str], name: str):  # docker.models.containers.Container
    (container,) = client.containers.list(
        filters={
            "label": [
                f"com.docker.compose.project={stack['COMPOSE_PROJECT_NAME']}",
                f"com.docker.compose.service={name}",
            ]
        }
    )
    return container


def engines_of(instance: dg.DagsterInstance, client, contestant: str) -> list:
    """The contestant's engine containers only: the hourly calibration may start one of its own."""
    runs = {r.run_id for r in instance.get_runs(dg.RunsFilter(tags={CONTESTANT_TAG: contestant}))}
    engines = client.containers.list(filters={"label": f"{LABEL}=engine"})
    return [c for c in engines if c.labels[JUDGING_LABEL] in runs]


def scored_once(instance: dg.DagsterInstance, contestant: str) -> list[dg.DagsterRun] | None:
    """The contestant's runs once their one submission has exactly one score and no run is left
    to finish; None while it is still being judged."""
    partitions = [k for k in instance.get_dynamic_partitions("submissions") if k.startswith(f"{contestant}-")]
    if not partitions:
        return None
    (partition,) = partitions
    runs = instance.get_runs(dg.RunsFilter(tags={"dagster/partition": partition}))
    if not runs or any(not r.is_finished for r in runs):
        return None
    scores = instance.fetch_materializations(dg.AssetKey("score"), limit=1000).records
    count = [r.partition_key for r in scores].count(partition)
    assert count <= 1, f"{contestant} scored {count} times"
    return runs if count == 1 else None


@pytest.fixture(scope="module")
def offline_images() -> None:
    """Always built: an image left from older code would test that code. Docker's build cache
    makes it about 13 s when nothing changed (.ci/run has built them already)."""
    subprocess.run(["bash", str(ROOT / "deploy" / "build-images.sh"), "offline"], check=True)


@pytest.fixture(scope="module")
def stack(offline_images, docker_client, tmp_path_factory) -> Iterator[dict[str, str]]:  # noqa: F811
    """The whole stack under a throwaway project name, secrets from `quantcraft deploy init`, quick profile.
    ``up`` returns once the one-shot ``prepare`` service has materialised the official traces and
    calibrated (the daemon waits for it), so the first upload finds everything a judging reads."""
    home = tmp_path_factory.mktemp("stack")
    env_file = home / ".env"
    deploy_init(env_file)
    assert oct(env_file.stat().st_mode & 0o777) == "0o600"
    ports = {
        "DAGSTER_PG_PORT": servers.free_port(),
        "QUANTCRAFT_S3_PORT": servers.free_port(),
        "QUANTCRAFT_WEB_PORT": servers.free_port(),
        "QUANTCRAFT_LEADERBOARD_PORT": servers.free_port(),
    }
    with env_file.open("a") as fh:
        fh.write("QUANTCRAFT_PROFILE=quick\n")
        fh.writelines(f"{name}={port}\n" for name, port in ports.items())
    name = f"qc{uuid.uuid4().hex[:8]}"
    project = ["-p", name, "--env-file", str(env_file)]
    env = {**read_env(env_file), "COMPOSE_PROJECT_NAME": name, COMPOSE_ARGS: " ".join(project)}
    try:
        subprocess.run([*COMPOSE, *project, "up", "-d"], check=True, cwd=ROOT)
        yield env
    finally:
        subprocess.run([*COMPOSE, *project, "logs", "--no-color", "--tail", "80"], cwd=ROOT)
        subprocess.run([*COMPOSE, *project, "down", "-v", "-t", "5"], cwd=ROOT)


@pytest.fixture
def instance(stack, tmp_path, monkeypatch) -> Iterator[dg.DagsterInstance]:
    """The stack's Dagster instance on Postgres, read from this process with deploy/dagster.yaml."""
    shutil.copy(ROOT / "deploy" / "dagster.yaml", tmp_path / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_PG_HOST", "127.0.0.1")
    monkeypatch.setenv("QUANTCRAFT_RUN_NETWORK", "host")
    for name in ("DAGSTER_PG_PORT", "DAGSTER_PG_PASSWORD"):
        monkeypatch.setenv(name, stack[name])
    monkeypatch.setenv("DAGSTER_PG_USER", "dagster")
    monkeypatch.setenv("DAGSTER_PG_DB", "dagster")
    with dg.DagsterInstance.from_config(str(tmp_path)) as inst:
        yield inst


def test_compose_config_needs_the_generated_secrets(tmp_path):
    """No default secret: without `quantcraft deploy init`'s .env the file refuses; with it, it validates."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_PG", "QUANTCRAFT_S3"))}
    env_file = tmp_path / ".env"
    env_file.write_text("")
    config = [*COMPOSE, "--env-file", str(env_file), "config"]
    out = subprocess.run(config, cwd=ROOT, env=env, capture_output=True)
    assert out.returncode != 0 and b"run quantcraft deploy init first" in out.stderr
    env_file.unlink()
    deploy_init(env_file)
    out = subprocess.run(config, cwd=ROOT, env=env, capture_output=True, check=True)
    assert read_env(env_file)["DAGSTER_PG_PASSWORD"].encode() in out.stdout


def test_the_scale_out_control_host_adds_redis_and_the_celery_launcher(tmp_path):
    """deploy/compose.celery.yml on the stack: Redis with the generated password, the Dagster
    services on the CeleryRunLauncher instance with that broker, no slot of its own to calibrate,
    and Redis and Postgres published only on the private address given (none: it refuses)."""
    env_file = tmp_path / ".env"
    deploy_init(env_file)
    celery = [
        "docker-compose",
        "-f",
        str(ROOT / "docker-compose.yml"),
        "-f",
        str(ROOT / "deploy" / "compose.celery.yml"),
    ]
    config = [*celery, "--env-file", str(env_file), "config"]
    out = subprocess.run(config, cwd=ROOT, capture_output=True)
    assert out.returncode != 0 and b"the private address judge hosts reach" in out.stderr
    with env_file.open("a") as fh:
        fh.write("QUANTCRAFT_CLUSTER_BIND=10.1.2.3\n")
    stack = yaml.safe_load(subprocess.run(config, cwd=ROOT, capture_output=True, check=True).stdout)[
        "services"
    ]
    password = read_env(env_file)["QUANTCRAFT_REDIS_PASSWORD"]
    assert f"--requirepass {password}" in stack["redis"]["command"]  # docker-compose 1.29: a string
    assert stack["redis"]["ports"] == ["10.1.2.3:6379:6379/tcp"]
    for name in ("dagster-code", "dagster-webserver", "dagster-daemon"):
        env = stack[name]["environment"]
        assert env["DAGSTER_HOME"] == "/opt/dagster/celery", name  # the image's deploy/dagster-celery.yaml
        assert env["QUANTCRAFT_CELERY_BROKER"] == f"redis://:{password}@redis:6379/0", name
    assert stack["prepare"]["command"] == "true"


def test_an_upload_is_judged_through_docker_run_launcher(stack, instance, engines, docker_client):  # noqa: F811
    stack_bucket(stack).put_bytes("submissions/alice/engine", (engines / "engine").read_bytes())

    def alice_scored():
        assert_no_failed_run(instance, "alice")
        return [row for row in leaderboard(stack) if row["contestant"] == "alice"]

    (row,) = wait_for(alice_scored, 600, "alice's score on the leaderboard")
    assert row["correctness"] == 100.0, row

    # Her score is on the board once written; her run ends a moment later.
    judged = wait_for(lambda: scored_once(instance, "alice"), 60, "alice's run to end")
    assert [r.status for r in judged] == [dg.DagsterRunStatus.SUCCESS]
    assert judged[0].tags.get("docker/container_id"), "the run did not go through DockerRunLauncher"
    assert sandbox_leftovers(docker_client) == []


def test_a_killed_run_worker_is_failed_by_monitoring_and_retried_once(
    stack,
    instance,
    engines,
    docker_client,  # noqa: F811 (fixture)
):
    """Infrastructure failure: the run container dies mid-judging. Run monitoring fails the run,
    run retries start it again, the new run's reaper removes the orphaned engine, and the
    submission ends with exactly one score."""
    stack_bucket(stack).put_bytes("submissions/bob/engine", (engines / "engine").read_bytes())

    def engine_running():
        assert_no_failed_run(instance, "bob")
        return engines_of(instance, docker_client, "bob")

    (engine,) = wait_for(engine_running, 300, "bob's engine to start")
    run_container = docker_client.containers.get(engine.labels[OWNER_LABEL])
    # Judging needs no privilege (issue 8): what deploy/dagster.yaml asks is what the run got.
    host = run_container.attrs["HostConfig"]
    assert host["CapDrop"] == ["ALL"] and not host["CapAdd"] and not host["Privileged"]
    assert host["PidMode"] != "host" and host["SecurityOpt"] == ["no-new-privileges:true"]
    run_container.kill()
    (partition,) = [k for k in instance.get_dynamic_partitions("submissions") if k.startswith("bob-")]
    failed_then_retried = {dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.SUCCESS}

    def bob_runs():
        return instance.get_runs(dg.RunsFilter(tags={"dagster/partition": partition}))

    def failed_and_retried():
        runs = bob_runs()
        return runs if {r.status for r in runs} == failed_then_retried else None

    def queue():
        pool = instance.event_log_storage.get_concurrency_info("judging")
        runs = bob_runs()
        failures = [why_failed(instance, r.run_id) for r in runs if r.status.value == "FAILURE"]
        return [(r.run_id[:8], r.status.value) for r in runs], pool, failures

    runs = wait_for(failed_and_retried, 600, "bob's run to fail and its retry to succeed", queue)
    assert len(runs) == 2
    scores = instance.fetch_materializations(dg.AssetKey("score"), limit=1000).records
    assert [r.partition_key for r in scores].count(partition) == 1
    assert sandbox_leftovers(docker_client) == []


def test_the_sensor_resumes_after_the_bucket_was_down_a_minute(stack, instance, engines, docker_client):  # noqa: F811
    """MinIO unreachable for a minute (paused: connections hang, the harsher failure): no sensor
    tick can list the bucket meanwhile, then the sensor lists again from its cursor. An upload
    made just before the outage is judged exactly once, and no earlier upload is requested again."""
    before = set(instance.get_dynamic_partitions("submissions"))
    stack_bucket(stack).put_bytes("submissions/carol/engine", (engines / "engine").read_bytes())
    bucket = service(docker_client, stack, "minio")
    bucket.pause()
    down_at = time.time()
    try:
        time.sleep(60)
    finally:
        bucket.unpause()
        up_at = time.time()
    ticks = lambda: servers.sensor_ticks(instance, down_at - 5)  # noqa: E731
    runs = wait_for(lambda: scored_once(instance, "carol"), 600, "carol's one score", ticks)
    assert runs[0].status == dg.DagsterRunStatus.SUCCESS  # the newest: the judging or its retry
    now = set(instance.get_dynamic_partitions("submissions"))
    assert before <= now and [k.split("-")[0] for k in now - before] == ["carol"]
    assert any(row["contestant"] == "carol" for row in leaderboard(stack))
    listed = (TickStatus.SUCCESS, TickStatus.SKIPPED)
    during = [
        t
        for t in ticks()
        if t.status in listed and down_at + 1 < t.timestamp < (t.end_timestamp or 0) < up_at
    ]
    assert not during, "a tick listed the bucket while it was down: the outage was not real"
    assert any(t.status in listed and t.timestamp > up_at for t in ticks()), "the sensor did not resume"


def test_a_postgres_restart_mid_judging_loses_nothing(stack, instance, engines, docker_client):  # noqa: F811
    """Postgres restarted while a judging is in flight: the judging ends with one score (at once,
    or through a retried run), and every score before it is still on the leaderboard."""
    stack_bucket(stack).put_bytes("submissions/dave/engine", (engines / "engine").read_bytes())

    wait_for(lambda: engines_of(instance, docker_client, "dave"), 300, "dave's engine to start")
    ranked_before = {row["contestant"] for row in leaderboard(stack)}
    service(docker_client, stack, "postgres").restart(timeout=5)
    runs = wait_for(lambda: scored_once(instance, "dave"), 600, "dave's one score")
    assert runs[0].status == dg.DagsterRunStatus.SUCCESS  # the newest: the judging or its retry
    assert ranked_before | {"dave"} <= {row["contestant"] for row in leaderboard(stack)}
    assert sandbox_leftovers(docker_client) == []


# Last in this module: it takes the stack down.
def test_a_judging_waits_in_the_queue_and_down_leaves_nothing_behind(stack, instance, engines, docker_client):  # noqa: F811
    """Two uploads at once on the stack's one judging slot: one is judged, the other's run waits in
    Dagster's queue with no container (pool granularity ``run``), burning no CPU beside it. Then
    ``docker-compose down`` mid-judging leaves no run container and no engine or probe behind:
    they are one-offs of the daemon's service (``quantcraft_dagster.launcher``), so compose stops
    and removes them with the stack."""
    both = ("erin", "frank")
    for who in both:
        stack_bucket(stack).put_bytes(f"submissions/{who}/engine", (engines / "engine").read_bytes())

    def one_judged() -> tuple[str, list] | None:
        runs = {who: instance.get_runs(dg.RunsFilter(tags={CONTESTANT_TAG: who})) for who in both}
        started = [(who, e) for who in both if (e := engines_of(instance, docker_client, who))]
        return started[0] if all(runs.values()) and started else None

    judged, started = wait_for(one_judged, 300, "one of two uploads judged, both runs made")
    (other,) = [who for who in both if who != judged]
    (waiting,) = instance.get_runs(dg.RunsFilter(tags={CONTESTANT_TAG: other}))
    assert waiting.status == dg.DagsterRunStatus.QUEUED and "docker/container_id" not in waiting.tags
    project = f"com.docker.compose.project={stack['COMPOSE_PROJECT_NAME']}"
    judging = started[0].labels[JUDGING_LABEL]
    (run,) = docker_client.containers.list(filters={"label": [project, f"dagster/run_id={judging}"]})
    assert run.labels["com.docker.compose.service"] == "dagster-daemon"
    subprocess.run([*COMPOSE, *stack[COMPOSE_ARGS].split(), "down", "-t", "10"], cwd=ROOT)

    def left() -> list[str]:
        mine = docker_client.containers.list(all=True, filters={"label": project})
        sandboxes = docker_client.containers.list(all=True, filters={"label": f"{JUDGING_LABEL}={judging}"})
        return [c.name for c in {c.id: c for c in mine + sandboxes}.values()]

    wait_for(lambda: not left(), 30, "no container of the stack, its runs or their sandboxes", left)
