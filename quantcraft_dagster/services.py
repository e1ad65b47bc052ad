"""The embedded default: Dagster webserver + daemon on SQLite, all state in one folder.

``quantcraft up`` writes ``$QUANTCRAFT_HOME/dagster/dagster.yaml`` and starts the processes with
``DAGSTER_HOME`` pointing there, so stopping and starting again loses nothing.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from . import settings
from .judge.cpus import background, split_cpus

PROJECT = Path(__file__).resolve().parent.parent

# One run worker at a time: SQLite must never see concurrent run workers, and the judging pool
# has one slot per disjoint CPU set (one on a 2-core host).
DAGSTER_YAML = """\
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
  config:
    dequeue_interval_seconds: 1
concurrency:
  runs:
    max_concurrent_runs: 1
  pools:
    default_limit: {judging_slots}
    granularity: op
run_retries:
  enabled: true
  max_retries: 0
telemetry:
  enabled: false
"""


def dagster_home() -> Path:
    return settings.home() / "dagster"


def prepare(judging_slots: int = 1) -> dict[str, str]:
    """Create the state folder and return the environment every Dagster process gets."""
    home = dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(DAGSTER_YAML.format(judging_slots=judging_slots))
    settings.bucket_root().mkdir(parents=True, exist_ok=True)
    # Create (or migrate) the SQLite storage once, here: the webserver and the daemon starting
    # together on an empty folder would otherwise race on the schema.
    from dagster import DagsterInstance

    with DagsterInstance.from_config(str(home)) as instance:
        instance.get_runs(limit=1)
    env = dict(os.environ)
    env.update(
        DAGSTER_HOME=str(home),
        QUANTCRAFT_HOME=str(settings.home()),
        PYTHONPATH=os.pathsep.join(filter(None, [str(PROJECT), env.get("PYTHONPATH", "")])),
    )
    return env


def _bin(name: str) -> str:
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else (shutil.which(name) or name)


class Services:
    """The webserver and the daemon as child processes, logs under $QUANTCRAFT_HOME/logs."""

    def __init__(self, port: int = 3000, host: str = "127.0.0.1", leaderboard_port: int = 8000) -> None:
        self.port, self.host, self.leaderboard_port = port, host, leaderboard_port
        self.env = prepare()
        self.procs: dict[str, subprocess.Popen] = {}

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def leaderboard_url(self) -> str:
        return f"http://{self.host}:{self.leaderboard_port}"

    def start(self, daemon: bool = True, webserver: bool = True, leaderboard: bool = True) -> None:
        logs = settings.home() / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        workspace = str(PROJECT / "workspace.yaml")
        commands = {}
        if webserver:
            commands["webserver"] = [
                _bin("dagster-webserver"),
                "-h",
                self.host,
                "-p",
                str(self.port),
                "-w",
                workspace,
            ]
        if daemon:
            commands["daemon"] = [_bin("dagster-daemon"), "run", "-w", workspace]
        if leaderboard:
            self.env["QUANTCRAFT_DAGSTER_URL"] = self.url
            commands["leaderboard"] = [
                _bin("uvicorn"), "--factory", "leaderboard_app.app:app_factory",
                "--host", self.host, "--port", str(self.leaderboard_port), "--no-access-log",
                "--timeout-graceful-shutdown", "5",
            ]  # fmt: skip

        off_engine = split_cpus()[1]
        for name, cmd in commands.items():
            if name in self.procs and self.procs[name].poll() is None:
                continue  # already running: never orphan a live child by starting a twin
            log = open(logs / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child for its lifetime
            self.procs[name] = subprocess.Popen(
                cmd,
                cwd=PROJECT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=functools.partial(background, off_engine),
            )

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"dagster {name} exited ({proc.returncode}); see {settings.home()}/logs"
                    )
            probes = {
                "webserver": f"{self.url}/server_info",
                "leaderboard": f"{self.leaderboard_url}/api/leaderboard",
            }
            try:
                for name, url in probes.items():
                    if name in self.procs:
                        with urllib.request.urlopen(url, timeout=2):
                            pass
                return
            except OSError:
                time.sleep(0.5)
        raise TimeoutError(f"Dagster webserver not up on {self.url} after {timeout:.0f} s")

    def stop(self, name: str | None = None, sig: int = signal.SIGTERM) -> None:
        for key in [name] if name else list(self.procs):
            proc = self.procs.pop(key, None)
            if proc is None or proc.poll() is not None:
                continue
            os.killpg(proc.pid, sig)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
