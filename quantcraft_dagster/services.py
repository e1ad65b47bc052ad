"""The embedded default: Dagster webserver + daemon on SQLite, all state in one folder.

``quantcraft up`` writes ``$QUANTCRAFT_HOME/dagster/dagster.yaml`` and starts the processes with
``DAGSTER_HOME`` pointing there, so stopping and starting again loses nothing.

Whatever ends ``quantcraft up`` ends the whole stack: Ctrl-C, SIGTERM (systemd, supervisors,
``docker stop``), SIGHUP (its terminal went away) stop every service and everything they started;
if ``up`` itself is killed outright, each service gets SIGTERM from the kernel.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from . import settings
from .judge.cgroups import PlatformGroup
from .judge.cpus import background, split_cpus
from .lifecycle import CONTESTANT_TAG

PROJECT = settings.PROJECT

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True)  # loaded here: a forked child must not dlopen

# One run worker at a time: SQLite must never see concurrent run workers, and the judging pool
# has one slot per disjoint CPU set (one on a 2-core host). The fair queue (on unless
# QUANTCRAFT_FAIR_QUEUE=0) adds FAIR_QUEUE_LIMITS; its other half is the run priority the
# submission sensor sets.
DAGSTER_YAML = """\
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
  config:
    dequeue_interval_seconds: 1
concurrency:
  runs:
    max_concurrent_runs: {runs_at_once}
{fair_queue}  pools:
    default_limit: {judging_slots}
    granularity: op
run_retries:
  enabled: true
telemetry:
  enabled: false
"""


# At most one judging in flight per contestant: the queued run coordinator launches no run whose
# contestant tag already has a run starting or started. It lives under ``concurrency: runs``,
# beside max_concurrent_runs: Dagster refuses tag limits in the run coordinator's own config once
# that section exists. deploy/dagster.yaml carries the same block.
FAIR_QUEUE_LIMITS = f"""\
    tag_concurrency_limits:
      - key: {CONTESTANT_TAG}
        value:
          applyLimitPerUniqueValue: true
        limit: 1
"""


def dagster_yaml(judging_slots: int = 1, runs_at_once: int = 1, fair_queue: bool | None = None) -> str:
    """The embedded instance's configuration (``runs_at_once`` above 1 only for tests of the queue)."""
    fair = settings.current().fair_queue if fair_queue is None else fair_queue
    return DAGSTER_YAML.format(
        judging_slots=judging_slots, runs_at_once=runs_at_once, fair_queue=FAIR_QUEUE_LIMITS if fair else ""
    )


def dagster_home() -> Path:
    return settings.current().home / "dagster"


def prepare(judging_slots: int = 1) -> dict[str, str]:
    """Create the state folder and return the environment every Dagster process gets."""
    now = settings.current()
    home = dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(dagster_yaml(judging_slots))
    now.bucket_root.mkdir(parents=True, exist_ok=True)
    # Create (or migrate) the SQLite storage once, here: the webserver and the daemon starting
    # together on an empty folder would otherwise race on the schema.
    from dagster import DagsterInstance

    with DagsterInstance.from_config(str(home)) as instance:
        instance.get_runs(limit=1)
    env = dict(os.environ)
    env.update(
        DAGSTER_HOME=str(home),
        PYTHONPATH=os.pathsep.join(filter(None, [str(PROJECT), env.get("PYTHONPATH", "")])),
    )
    env[settings.ENV["home"]] = str(now.home)
    env[settings.ENV["official_secret"]] = now.organisers_secret()
    return env


def prepare_to_judge() -> dict[str, str]:
    """:func:`prepare`, then this host's slots calibrated (:func:`prepare_host`): once, before
    this process starts judging (``quantcraft up``, in-process finals). Never on a read such as
    ``quantcraft status``: a calibration is a judging, and one per poll starved real judgings."""
    env = prepare()
    prepare_host(env)
    return env


def prepare_host(env: dict[str, str] | None = None) -> None:
    """This host's judging slots registered and calibrated (``definitions.prepare_judging``) in a
    process of its own: the code location loads from ``env`` as every service loads it, and nothing
    it opens (a bucket connection) is inherited by a process that forks judgings after it."""
    prepare = "from quantcraft_dagster.definitions import prepare_judging; prepare_judging()"
    subprocess.run([sys.executable, "-c", prepare], env=env, check=True)


def _bin(name: str) -> str:
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else (shutil.which(name) or name)


def _service_child(cpus: tuple[int, ...], parent: int, platform_procs: str) -> None:
    """Between fork and exec of a service: off the engines' CPUs, in the platform's freezer group
    (the judge freezes it for timed trials: ``judge.quiet``), and SIGTERM when ``parent`` dies.

    The death signal covers what no handler can: the parent killed by SIGKILL (``docker stop``
    after its timeout, the OOM killer). It fires when the forking thread ends, so services are
    started from a thread that lives as long as they should. A parent already gone would never
    send it: then the service does not start at all.
    """
    background(cpus)
    with open(platform_procs, "w") as fh:
        fh.write(str(os.getpid()))
    if _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")
    if os.getppid() != parent:
        os._exit(1)


def _group_members(pgids: set[int]) -> list[int]:
    """The processes whose process group is one of ``pgids`` (the kernel lists them only in /proc)."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):  # gone meanwhile
                # /proc/PID/stat: "pid (comm) state ppid pgrp ..."; comm may hold spaces and ")"
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[2]) in pgids:
                    members.append(int(entry.name))
    return members


def _leave_idle(pids: list[int]) -> None:
    """Normal priority for every thread of ``pids``, which may be SCHED_IDLE (``cpus.background``).

    Shutting down must not wait for idle CPUs: on a busy host (a judging spins on every CPU) it
    took over 30 s. Per thread, because a policy is per thread and a process exits only once each
    of its threads has run.
    """
    for pid in pids:
        with contextlib.suppress(OSError):  # gone meanwhile
            for tid in os.listdir(f"/proc/{pid}/task"):
                with contextlib.suppress(OSError):
                    os.sched_setscheduler(int(tid), os.SCHED_OTHER, os.sched_param(0))


def _group_alive(proc: subprocess.Popen) -> bool:
    """Whether any process of the service's group remains (the leader is reaped on the way)."""
    if proc.poll() is None:
        return True
    try:
        os.killpg(proc.pid, 0)
    except ProcessLookupError:
        return False
    return True


class Services:
    """The webserver, the daemon and the leaderboard as child processes, logs under $QUANTCRAFT_HOME/logs.

    Each service leads its own session and process group, which holds everything it starts
    (Dagster's code servers, run workers and their load generators): stopping a group stops all.
    """

    def __init__(self, port: int = 3000, host: str = "127.0.0.1", leaderboard_port: int = 8000) -> None:
        self.port, self.host, self.leaderboard_port = port, host, leaderboard_port
        self.env = prepare_to_judge()
        self.procs: dict[str, subprocess.Popen] = {}

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def leaderboard_url(self) -> str:
        return f"http://{self.host}:{self.leaderboard_port}"

    def start(self, daemon: bool = True, webserver: bool = True, leaderboard: bool = True) -> None:
        logs = settings.current().home / "logs"
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
            self.env[settings.ENV["dagster_url"]] = self.url
            commands["leaderboard"] = [
                _bin("uvicorn"), "--factory", "leaderboard_app.app:app_factory",
                "--host", self.host, "--port", str(self.leaderboard_port), "--no-access-log",
                "--timeout-graceful-shutdown", "5",
            ]  # fmt: skip

        off_engine = split_cpus()[1]
        platform_procs = PlatformGroup().procs_file()
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
                preexec_fn=functools.partial(_service_child, off_engine, os.getpid(), platform_procs),
            )

    @contextlib.contextmanager
    def supervised(self) -> Iterator[Services]:
        """Start the services for the block and stop them all when it ends, however it ends.

        By default SIGTERM and SIGHUP end this process without running ``finally`` clauses, which
        orphaned the stack; here they raise KeyboardInterrupt like Ctrl-C. Signals set to be
        ignored (``nohup``) stay ignored. Once stopping, further signals are ignored so that they
        cannot cut the stop short; it is bounded anyway. The stop and the exit that usually follows
        run at normal priority.
        """
        watched = [sig for sig in STOP_SIGNALS if signal.getsignal(sig) is not signal.SIG_IGN]

        def interrupt(signum: int, frame: object) -> None:
            for sig in watched:
                signal.signal(sig, signal.SIG_IGN)
            raise KeyboardInterrupt(signal.Signals(signum).name)

        previous = {sig: signal.signal(sig, interrupt) for sig in watched}
        try:
            self.start()
            yield self
        finally:
            for sig in watched:
                signal.signal(sig, signal.SIG_IGN)
            _leave_idle([os.getpid()])
            try:
                self.stop()
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"dagster {name} exited ({proc.returncode}); see {settings.current().home}/logs"
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

    def stop(self, name: str | None = None, grace_s: float = 5.0) -> None:
        """SIGTERM every service's group at once, SIGKILL what is left of them after ``grace_s``.

        Whole groups, because a service's children outlive it otherwise; all at once, so the stack
        is down within one grace period (the leaderboard bounds its own graceful shutdown to 5 s).
        Thawed throughout: a service frozen for a judging's trial (``judge.quiet``) would not act
        on either signal.
        """
        procs = [self.procs.pop(key) for key in ([name] if name else list(self.procs)) if key in self.procs]
        platform = PlatformGroup()
        _leave_idle(_group_members({proc.pid for proc in procs}))
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while any(_group_alive(proc) for proc in procs) and time.monotonic() < deadline:
            platform.thaw()  # a judging's timed trial may have frozen them, or freeze them again
            time.sleep(0.05)
        for proc in procs:
            if _group_alive(proc):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
        platform.thaw()
        for proc in procs:
            proc.wait()
