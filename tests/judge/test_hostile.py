"""Hostile engines: each is contained, ends with a verdict and a reason, leaves nothing behind,
and the next judging still works."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import threading
from dataclasses import replace

import pytest

from quantcraft_dagster.core import protocol
from quantcraft_dagster.judge.judging import judge_binary

from .helpers import FAST, assert_nothing_left

# Containment and verdicts are what these tests show: one trial of phases B and C is enough.
ONE_TRIAL = replace(FAST, trials=1)


@pytest.fixture
def judge_hostile(sandbox_backend):
    """Judge a hostile binary and check it left nothing behind (the backend's fixture checks
    Docker's containers); the last test shows the judge still judges a correct engine."""

    def run(binary, config=ONE_TRIAL):
        verdict = judge_binary(binary, config).verdict
        assert verdict.status in ("finished", "failed") and verdict.reason
        assert_nothing_left()
        return verdict

    return run


def test_fork_bomb(engines, judge_hostile):
    """The pids limit holds and the engine gets a verdict at the bounds the product ships: its
    churn starves its own phase A past the time limit, and the judge lateness it causes in the
    timed phases is its own disturbance (or, with the host noisy too, leaves a phase unscored),
    never a judge failure."""
    v = judge_hostile(engines / "fork_bomb")
    assert v.status == "failed" and v.reason.startswith("phase A: phase time limit"), v.reason
    assert v.scores is not None


def test_memory_bomb(engines, judge_hostile):
    # Touching 4 GiB takes seconds: give the OOM killer time to act before the report timeout.
    v = judge_hostile(engines / "memory_bomb", replace(ONE_TRIAL, report_timeout_s=20.0))
    assert v.status == "failed"
    assert "memory limit" in v.reason


def test_tmp_fill_stops_at_100_mib(engines, judge_hostile):
    v = judge_hostile(engines / "tmp_fill")
    assert "No space left on device" in v.stderr_tail or "File too large" in v.stderr_tail


@pytest.fixture
def canary_server():
    """A TCP server on the host's loopback recording every connection it gets."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    hits: list[bytes] = []
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            hits.append(conn.recv(100) or b"connected")
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], hits
    stop.set()
    thread.join()
    server.close()


def test_cannot_reach_host_loopback(build_variant, judge_hostile, canary_server):
    port, hits = canary_server
    v = judge_hostile(build_variant("canary_connect", CANARY_PORT=port))
    assert hits == []
    assert "canary" in v.stderr_tail and "connected" not in v.stderr_tail.replace("not connected", "")


def test_cannot_read_host_files(build_variant, judge_hostile, tmp_path):
    secret = secrets.token_hex(16)
    canary = tmp_path / "canary.txt"
    canary.write_text(secret)
    canary.chmod(0o644)
    os.chmod(tmp_path, 0o755)
    v = judge_hostile(build_variant("canary_file", CANARY_PATH=str(canary)))
    assert secret not in v.stderr_tail
    assert "canary: open failed" in v.stderr_tail


def test_cannot_look_into_the_load_generator(build_variant, judge_hostile, sandbox_backend):
    """Docker's engines share the probe's pid namespace, whose PID 1 and load generator run as
    root and see the plan (the orders still to come) in /work: another uid's ``/proc/<pid>/root``
    is closed to the engine. Under bubblewrap, PID 1 is the sandbox's own init: nothing there."""
    v = judge_hostile(build_variant("canary_file", CANARY_PATH="/proc/1/root/work"))
    assert "canary: open failed" in v.stderr_tail
    if sandbox_backend == "docker":
        assert "Permission denied" in v.stderr_tail


def test_cannot_signal_other_processes(build_variant, judge_hostile):
    victim = subprocess.Popen(["sleep", "120"])
    try:
        v = judge_hostile(build_variant("kill_others", VICTIM_PID=victim.pid))
        assert victim.poll() is None, "the engine killed a host process"
        assert v.status == "finished"
    finally:
        victim.kill()
        victim.wait()


def test_never_healthy(engines, judge_hostile):
    v = judge_hostile(engines / "never_healthy")
    assert v.status == "failed"
    assert "never became healthy" in v.reason and "503" in v.reason
    assert v.scores.final == 0.0


def test_crash_mid_phase(engines, judge_hostile):
    v = judge_hostile(engines / "crash_mid_phase")
    assert v.status == "failed"
    assert "SIGABRT" in v.reason and "after 200 of" in v.reason
    assert 0 < v.scores.correctness < 100


def test_hang_mid_phase(engines, judge_hostile):
    v = judge_hostile(engines / "hang_mid_phase")
    assert v.status == "failed"
    assert "no report within 2 s" in v.reason
    assert v.phases["A"].answered == 200


def test_stderr_flood(engines, judge_hostile):
    """64 KiB of stderr per order: the engine pays for its output in its latency, and under Docker
    (the daemon's stream, then the tail's) phase C's last reports come about 2 s after their
    orders, past the 2 s of the other hostile tests: judged at the report timeout users get."""
    users_timeout = replace(ONE_TRIAL, report_timeout_s=protocol.REPORT_TIMEOUT_S)
    v = judge_hostile(engines / "stderr_flood", users_timeout)
    assert v.status == "finished"
    assert 0 < len(v.stderr_tail.encode()) <= 64 * 1024


def test_frame_over_64_kib(engines, judge_hostile):
    v = judge_hostile(engines / "big_frame")
    assert v.scores.correctness < 100
    assert any("64 KiB" in d.reason for d in v.divergences)


def test_invalid_json(engines, judge_hostile):
    v = judge_hostile(engines / "invalid_json")
    assert v.scores.correctness < 100
    assert "invalid JSON" in v.divergences[0].reason


def test_unknown_and_extra_reports(engines, judge_hostile):
    v = judge_hostile(engines / "unknown_orders")
    assert v.scores.correctness < 100
    assert "protocol errors" in v.reason and "NOPE-" not in v.reason  # the detail is the owner's
    assert any("unknown order 'NOPE-" in e for e in v.protocol_errors)


def test_daemonized_child_does_not_survive(engines, judge_hostile):
    v = judge_hostile(engines / "daemonize")
    assert v.status == "finished"


def test_cannot_write_into_app(engines, judge_hostile):
    v = judge_hostile(engines / "write_app")
    assert v.status == "finished"
    assert "Read-only file system" in v.stderr_tail or "Permission denied" in v.stderr_tail


def test_root_is_read_only_but_tmp_is_writable(engines, judge_hostile):
    v = judge_hostile(engines / "write_root")
    assert v.status == "finished", f"{v.reason}\n{v.stderr_tail}"
    for path in ("/pwned", "/usr/pwned", "/etc/pwned", "/app/pwned", "/dev/pwned", "/dev/shm/pwned"):
        # Docker's /dev is a tmpfs of root's: closed to the engine's uid rather than read-only
        refused = (f"open {path} failed: {why}" for why in ("Read-only file system", "Permission denied"))
        assert any(line in v.stderr_tail for line in refused), v.stderr_tail
    assert "write_root: wrote /tmp/pwned: ok" in v.stderr_tail


# Last in this module, on each backend.
def test_a_correct_engine_is_judged_as_before_after_the_hostile_ones(engines):
    """Whatever the engines above did to this host, the next judging is as a user's: nothing they
    left (a lock, a cgroup, a CPU still held) shows only in a judging that follows."""
    verdict = judge_binary(engines / "engine", ONE_TRIAL).verdict
    assert verdict.status == "finished" and verdict.scores.correctness == 100.0, verdict.reason
    assert_nothing_left()
