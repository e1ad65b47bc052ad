"""qctail on its own (the sandboxes run it in every judging: test_hostile, test_docker_sandbox): the
tail it keeps, the exit it passes on, and the stop it carries."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from quantcraft_dagster.judge import tail
from quantcraft_dagster.judge.errors import InfrastructureError


def qctail(script: str, tail_bytes: int = tail.STDERR_TAIL_BYTES, dump_after_ms: int = 300):
    argv = [str(tail.program()), str(tail_bytes), str(dump_after_ms), "0", "-", "/bin/sh", "-c", script]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_the_last_bytes_of_stdout_and_stderr_and_the_exit_code():
    proc = qctail("head -c 300000 /dev/zero; echo out; echo err >&2; exit 3", tail_bytes=8)
    out, _ = proc.communicate(timeout=30)
    assert out == b"out\nerr\n" and proc.returncode == 3


def test_a_flood_is_drained_and_only_the_tail_kept():
    proc = qctail("head -c 200000000 /dev/zero; printf end")
    out, _ = proc.communicate(timeout=60)
    assert len(out) == tail.STDERR_TAIL_BYTES and out.endswith(b"\0end") and proc.returncode == 0


def test_a_fatal_signal_is_passed_on():
    proc = qctail("echo dying; kill -USR1 $$")
    out, _ = proc.communicate(timeout=30)
    assert out == b"dying\n" and proc.returncode == -signal.SIGUSR1


def test_sigterm_reaches_the_engine_which_may_still_say_goodbye():
    proc = qctail("trap 'echo bye; exit 4' TERM; echo up; while :; do sleep 0.02; done")
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert out == b"up\nbye\n" and proc.returncode == 4


def test_an_engine_that_ignores_sigterm_has_its_tail_dumped_before_the_kill():
    """The judge's SIGKILL comes after the grace period; the tail is out half way through it."""
    proc = qctail("trap '' TERM; echo stubborn; sleep 30", dump_after_ms=200)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    assert proc.stdout is not None
    assert proc.stdout.read(len(b"stubborn\n")) == b"stubborn\n"
    assert proc.poll() is None  # still waiting for the engine
    proc.kill()
    proc.communicate(timeout=30)


@pytest.mark.skipif(os.geteuid() != 0, reason="what qctail refuses to root")
def test_it_will_not_signal_everything_as_root():
    argv = [str(tail.program()), "16", "100", "1", "-", "/bin/true"]
    done = subprocess.run(argv, capture_output=True, timeout=30)
    assert done.returncode == 125 and b"as root" in done.stderr


@pytest.mark.parametrize("argv", [["x", "100", "0", "-"], ["16", "100", "0", "0:1"], ["16", "100", "2", "-"]])
def test_bad_arguments_are_refused(argv):
    done = subprocess.run([str(tail.program()), *argv, "/bin/true"], capture_output=True, timeout=30)
    assert done.returncode == 125 and done.stderr.startswith(b"qctail: bad")


def test_a_judge_without_it_says_how_to_build_it(tmp_path, monkeypatch):
    """A judge failure (never the engine's), naming the command."""
    monkeypatch.setattr(tail, "PROGRAM", tmp_path / "qctail")
    with pytest.raises(InfrastructureError, match="make -C"):
        tail.program()
