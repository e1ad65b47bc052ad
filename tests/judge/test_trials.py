"""Trials on the real judge: a stalled load generator is caught and re-run, never scored; a
client-bound phase B is flagged; a judge that cannot get valid trials gives up as its own failure."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import replace
from pathlib import Path

import pytest

from quantcraft_dagster.core.trial import ValidityConfig
from quantcraft_dagster.judge.judging import InfrastructureError, JudgeConfig, judge_binary

from .helpers import NOISY_HOST, assert_nothing_left

QUICK = JudgeConfig(profile="quick", validity=NOISY_HOST)


def loadgen_pids() -> list[int]:
    """This judge's load generator processes (the judge is their parent)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if b"quantcraft_dagster.judge.loadgen" in cmdline and ppid == os.getpid():
            found.append(int(entry.name))
    return found


def test_a_stalled_load_generator_makes_the_trial_invalid_and_it_is_run_again(engines):
    stalled: list[int] = []

    def stall_first_phase_c(phase: str, done: int, total: int, note: str) -> None:
        if phase == "C" and note.startswith("engine healthy") and not stalled:
            time.sleep(0.1)  # the open loop is replaying now (3,000 orders over 0.5 s)
            for pid in loadgen_pids():
                os.kill(pid, signal.SIGSTOP)
                time.sleep(0.1)  # 600 orders late by up to 100 ms: far over the (noise-tolerant) bound
                os.kill(pid, signal.SIGCONT)
                stalled.append(pid)

    v = judge_binary(engines / "engine", QUICK, progress=stall_first_phase_c).verdict
    assert stalled, "the test never caught the load generator"
    assert v.status == "finished", v.reason
    reasons = v.invalid_trials["C"]
    assert reasons and ("send-lag p99" in reasons[0] or "missed its rate" in reasons[0])
    counted = v.trials["C"]
    assert len(counted) == 3  # three valid trials despite the discarded one
    bound = QUICK.validity.max_send_lag_p99_us
    assert all(t.send_lag_p99_us <= bound for t in counted)
    obj = v.to_obj()["phases"]["C"]
    assert obj["invalid_trials"]["count"] == len(reasons) and len(obj["trials"]) == 3
    assert_nothing_left()


def test_a_judge_that_never_keeps_up_fails_as_infrastructure_not_as_a_score(engines):
    never = replace(QUICK, validity=ValidityConfig(max_send_lag_p99_us=0.0, max_reruns=1))
    with pytest.raises(InfrastructureError, match="no valid trial of phase C"):
        judge_binary(engines / "engine", never)
    assert_nothing_left()


def test_phase_b_against_a_trivial_engine_is_client_limited_and_a_slow_one_is_not(engines):
    one = replace(QUICK, trials=1)
    fast = judge_binary(engines / "trivial", one).verdict
    assert fast.phases["B"].client_limited and fast.to_obj()["phases"]["B"]["client_limited"] is True
    slow = judge_binary(engines / "slow", one).verdict
    assert not slow.phases["B"].client_limited
    assert slow.phases["B"].client_busy < fast.phases["B"].client_busy
    # the engine's own CPU time per order comes from its cgroup
    assert slow.phases["B"].cpu_us_per_order > 0 and fast.phases["B"].cpu_us_per_order > 0
