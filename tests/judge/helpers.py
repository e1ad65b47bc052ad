"""Judgings as the platform runs them, and assertions about the machine after one: nothing of the
engine may survive."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from quantcraft_dagster.core.trial import ValidityConfig
from quantcraft_dagster.judge import cgroups
from quantcraft_dagster.judge.judging import (
    INFRASTRUCTURE_RETRIES,
    InfrastructureError,
    JudgeConfig,
    JudgeResult,
    infrastructure_retry_wait_s,
    judge_binary,
)
from quantcraft_dagster.judge.sandbox import NOBODY

# Short timeouts keep hostile tests fast; the rules are the same as the defaults. The send-lag bound
# is raised because this VM's noise bursts reach milliseconds: these tests assert the engines'
# verdicts, not the host (tests/judge/test_trials.py asserts the bound itself).
NOISY_HOST = ValidityConfig(max_send_lag_p99_us=20_000.0, max_interference=0.05)
FAST = JudgeConfig(
    profile="quick", health_timeout_s=3.0, report_timeout_s=2.0, phase_time_limit_s=10.0, validity=NOISY_HOST
)


def judge_retried(binary: Path, config: JudgeConfig, **kwargs) -> JudgeResult:
    """``judge_binary`` as a judging run gets it: a judging the host spoiled (an
    :class:`InfrastructureError`, never the engine's doing) is run again after the platform's waits.
    This VM's bursts outlast a judging's re-runs now and then (a CI run lost four phase-B trials in
    a row to 11-21 % off-CPU); what these tests assert is the verdict the platform would give."""
    for retry in range(INFRASTRUCTURE_RETRIES):
        try:
            return judge_binary(binary, config, **kwargs)
        except InfrastructureError:
            time.sleep(infrastructure_retry_wait_s(retry))
    return judge_binary(binary, config, **kwargs)


def sandbox_processes() -> list[str]:
    out = subprocess.run(["ps", "-o", "pid=,comm=", "-u", str(NOBODY)], capture_output=True, text=True)
    return out.stdout.split("\n")[:-1] if out.stdout.strip() else []


def engine_cgroups() -> list[Path]:
    root = cgroups.ROOT
    parents = [root / cgroups.PARENT] + [p / cgroups.PARENT for p in root.iterdir() if p.is_dir()]
    return [
        child
        for parent in parents
        if parent.is_dir()
        for child in parent.iterdir()
        if child.is_dir() and child.name.startswith("engine-")
    ]


def assert_nothing_left(grace_s: float = 2.0) -> None:
    """No process of the sandbox user and no engine cgroup (killed zombies get a moment to go)."""
    deadline = time.monotonic() + grace_s
    while sandbox_processes() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sandbox_processes() == []
    assert engine_cgroups() == []
