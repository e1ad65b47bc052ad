"""A scale-out cluster on one machine, for the scale-out test and bench/capacity_bench.py: the
control host (the Dagster daemon with deploy/dagster-celery.yaml) and judge hosts (``quantcraft
worker``, which calibrates its slots first), each "host" with its own name, state folder and
Dagster home, all on the Postgres, Redis and S3 servers given."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from quantcraft_dagster.storage.bucket import S3Bucket
from tests.servers import elsewhere

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TASK_ID_TAG = "dagster-celery/task_id"  # dagster-celery's tag: the run's Celery task


def instance_yaml(max_runtime_s: int) -> dict:
    """deploy/dagster-celery.yaml with run monitoring scaled to the judgings at hand."""
    config = yaml.safe_load((ROOT / "deploy" / "dagster-celery.yaml").read_text())
    config["run_coordinator"]["config"]["dequeue_interval_seconds"] = 1
    config["run_monitoring"].update(
        start_timeout_seconds=120,
        max_runtime_seconds=max_runtime_s,
        poll_interval_seconds=2,
        free_slots_after_run_end_seconds=1,
    )
    return config


def cluster_env(services: dict[str, str], s3_url: str, root: Path, profile: str) -> dict[str, str]:
    """What every host's processes get: the shared servers, a fresh bucket, the profile."""
    return {
        **os.environ,
        **services,
        "QUANTCRAFT_JUDGING_QUEUE": "judging",
        "QUANTCRAFT_BUCKET_BACKEND": "s3",
        "QUANTCRAFT_S3_ENDPOINT": s3_url,
        "QUANTCRAFT_S3_BUCKET": f"qc-{uuid.uuid4().hex[:12]}",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "QUANTCRAFT_OFFICIAL_SECRET": secrets.token_hex(32),
        "QUANTCRAFT_PROFILE": profile,
        # This machine's CPU locks, shared by every "host" since they share its cores.
        "QUANTCRAFT_SLOTS_DIR": str(root / "slots"),
        "PYTHONPATH": str(ROOT),
    }


@dataclass
class Cluster:
    root: Path
    env: dict[str, str]
    max_runtime_s: int = 900
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    def host_env(self, name: str) -> dict[str, str]:
        """One host's environment: its own state folder and Dagster home, the shared services."""
        home = self.root / name
        (home / "dagster").mkdir(parents=True, exist_ok=True)
        (home / "dagster" / "dagster.yaml").write_text(yaml.safe_dump(instance_yaml(self.max_runtime_s)))
        return {
            **self.env,
            "QUANTCRAFT_HOME": str(home),
            "DAGSTER_HOME": str(home / "dagster"),
            "QUANTCRAFT_JUDGE_HOST": name,
        }

    @property
    def control_home(self) -> Path:
        return self.root / "control" / "dagster"

    def start_control(self) -> None:
        """The daemon (sensor, queue, launcher, monitoring, retries); it judges nothing, so it has
        no slot to calibrate."""
        self.start("control", [str(BIN / "dagster-daemon"), "run", "-w", str(ROOT / "workspace.yaml")])

    def start_worker(self, name: str) -> None:
        self.start(name, [str(BIN / "quantcraft"), "worker", "--name", name])

    def start(self, name: str, cmd: list[str]) -> None:
        """A host's process. The control host is another machine in production: here it runs
        where the judge leaves room (``tests.servers.elsewhere``; a worker places itself:
        ``quantcraft worker``)."""
        log = open(self.root / f"{name}.log", "ab")  # noqa: SIM115 - the child's for its lifetime
        self.procs[name] = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=self.host_env(name),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=elsewhere if name == "control" else None,
        )

    def node(self, name: str) -> str:
        """The Celery node name of worker ``name`` (``quantcraft worker`` adds @HOSTNAME)."""
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
            tail = (self.root / f"{name}.log").read_text(errors="replace").splitlines()[-15:]
            print(f"--- {name}.log (tail)\n" + "\n".join(tail))
