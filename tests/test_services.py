"""``quantcraft up`` takes its whole stack down with it, whatever ends it."""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import orjson
import pytest

from quantcraft_dagster import services
from quantcraft_dagster.core.standings import rank

from .judge.helpers import engine_cgroups, sandbox_processes
from .servers import free_port


def stack_pids(home: Path) -> set[int]:
    """Every live process that inherited this stack's QUANTCRAFT_HOME, however it was reparented."""
    marker = b"QUANTCRAFT_HOME=" + str(home).encode() + b"\0"
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):  # gone meanwhile
                if marker in (entry / "environ").read_bytes():
                    found.add(int(entry.name))
    return found


def port_free(port: int) -> bool:
    """Whether a new server could listen on the port (with SO_REUSEADDR, as uvicorn does)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@contextlib.contextmanager
def running_up(tmp_path: Path) -> Iterator[tuple[subprocess.Popen, Path, tuple[int, int]]]:
    """``quantcraft up`` on free ports with its own QUANTCRAFT_HOME, once it says it is serving."""
    home = tmp_path / "state"
    ports = free_port(), free_port()
    log = tmp_path / "up.log"
    cmd = [str(Path(sys.executable).parent / "quantcraft"), "up", "--port", str(ports[0])]
    with open(log, "wb") as out:
        up = subprocess.Popen(
            [*cmd, "--leaderboard-port", str(ports[1])],
            env={**os.environ, "QUANTCRAFT_HOME": str(home)},
            stdout=out,
            stderr=subprocess.STDOUT,
            # As from a terminal: under `nohup` (a CI runner's) SIGHUP is inherited ignored, and
            # `up` rightly keeps an ignored signal ignored.
            preexec_fn=functools.partial(signal.signal, signal.SIGHUP, signal.SIG_DFL),
        )
    try:
        deadline = time.monotonic() + 180
        while b"stops every service" not in log.read_bytes():
            assert up.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.5)
        started = stack_pids(home)
        # up, the webserver, the daemon, the leaderboard and Dagster's code servers
        assert len(started) >= 5 and up.pid in started, started
        assert not any(port_free(p) for p in ports)
        yield up, home, ports
    finally:
        for pid in stack_pids(home):
            os.kill(pid, signal.SIGKILL)  # only this test's own stack: its QUANTCRAFT_HOME is unique


@contextlib.contextmanager
def busy_cpus() -> Iterator[None]:
    """Every CPU busy at normal priority, as during a judging: the stack runs at SCHED_IDLE."""
    hogs = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"])
        for _ in range(len(os.sched_getaffinity(0)))
    ]
    try:
        yield
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


def assert_stack_gone(
    up: subprocess.Popen, home: Path, ports: tuple[int, int], within_s: float = 10.0
) -> None:
    """``up`` has exited (an exiting process no longer shows its environment), its stack too."""
    deadline = time.monotonic() + within_s
    while up.poll() is None or stack_pids(home) or not all(map(port_free, ports)):
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    left = {pid: Path(f"/proc/{pid}/cmdline").read_bytes()[:200] for pid in stack_pids(home)}
    assert left == {}, "processes of the stack outlived quantcraft up"
    assert all(map(port_free, ports)), "a port of the stack is still taken"
    assert up.returncode is not None, "quantcraft up is still exiting"


@pytest.mark.slow
def test_up_stops_every_service_on_sighup_even_on_a_busy_host(tmp_path):
    """The terminal went away, every CPU busy. SIGTERM (systemd, supervisors, docker stop), which
    the same handler takes (``services.STOP_SIGNALS``), stops a judging in flight below."""
    with running_up(tmp_path) as (up, home, ports), busy_cpus():
        up.send_signal(signal.SIGHUP)
        assert_stack_gone(up, home, ports)
        assert up.returncode == 0


@pytest.mark.slow
def test_services_die_with_up(tmp_path):
    """SIGKILL (docker stop's second signal) leaves up no say: the services' death signal acts."""
    with running_up(tmp_path) as (up, home, ports):
        up.kill()
        assert_stack_gone(up, home, ports)


@pytest.mark.slow
def test_up_stops_a_judging_in_flight(tmp_path, engines):
    """The run worker, its load generator and the sandboxed engine belong to the stack too."""
    with running_up(tmp_path) as (up, home, ports):
        env = {**os.environ, "QUANTCRAFT_HOME": str(home)}
        submit = [str(Path(sys.executable).parent / "quantcraft"), "submit", "--contestant", "alice"]
        subprocess.run([*submit, str(engines / "engine")], env=env, check=True, capture_output=True)
        deadline = time.monotonic() + 120
        while not sandbox_processes():
            assert time.monotonic() < deadline, "the judging never started an engine"
            time.sleep(0.2)
        up.send_signal(signal.SIGTERM)
        assert_stack_gone(up, home, ports)
        assert sandbox_processes() == [] and engine_cgroups() == []


def test_status_only_reads_it_never_calibrates(tmp_path, monkeypatch):
    """``quantcraft status`` reads the instance and writes nothing: no state folder where there
    is none (it says so), and a prepared one left byte for byte as it was (no calibration, no
    migration, no rewritten dagster.yaml)."""
    state = tmp_path / "state"
    env = {**os.environ, "QUANTCRAFT_HOME": str(state)}
    cli = str(Path(sys.executable).parent / "quantcraft")
    fresh = subprocess.run([cli, "status", "--json"], env=env, capture_output=True, check=True)
    assert orjson.loads(fresh.stdout) == {"submissions": []} and "no state folder" in fresh.stderr.decode()
    assert not state.exists()
    monkeypatch.setenv("QUANTCRAFT_HOME", str(state))
    services.prepare()

    def snapshot() -> dict[str, tuple[bytes, int]]:
        return {str(p): (p.read_bytes(), p.stat().st_mtime_ns) for p in state.rglob("*") if p.is_file()}

    before = snapshot()
    out = subprocess.run([cli, "status", "--json"], env=env, capture_output=True, check=True).stdout
    assert orjson.loads(out) == {"submissions": []}
    assert snapshot() == before
    with dg.DagsterInstance.from_config(str(state / "dagster")) as instance:
        assert instance.get_runs() == []
        assert instance.get_dynamic_partitions("judge_slots") == []


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_up_demo_judges_the_examples_and_ranks_the_correct_engine_first(tmp_path):
    """The README's first command, as a new user runs it (quick profile, the bounds as shipped):
    every example engine is judged and alice's correct engine ranks first, alone, above carol's
    LIFO twin of it and bob's (``correct_first``), then every service stops."""
    env = {
        **os.environ,
        "QUANTCRAFT_HOME": str(tmp_path / "state"),
        "QUANTCRAFT_PROFILE": "quick",
    }
    cli = str(Path(sys.executable).parent / "quantcraft")
    ports = ["--port", str(free_port()), "--leaderboard-port", str(free_port())]
    up = subprocess.run([cli, "up", "--demo", "--exit", *ports], env=env, capture_output=True, timeout=850)
    assert up.returncode == 0, up.stderr[-3000:]
    out = subprocess.run([cli, "status", "--json"], env=env, capture_output=True, check=True).stdout
    scores = [row["score"] for row in orjson.loads(out)["submissions"] if row["score"]]
    assert sorted((s["contestant"], s["status"]) for s in scores) == [
        ("alice", "finished"), ("bob", "finished"), ("carol", "finished")
    ]  # fmt: skip
    board = rank(scores)
    assert board[0].contestant == "alice" and not board[0].tied
    assert {s.contestant for s in board[1:]} == {"bob", "carol"}
    assert b"rank" in up.stdout and b"alice" in up.stdout  # the standings it printed
    assert stack_pids(tmp_path / "state") == set()
