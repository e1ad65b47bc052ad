"""What one judging is asked to do: the judge's config, from the contract's defaults.

The contract's numbers live in ``core.protocol``, the validity and scoring rules in ``core``; this
gathers them with the CPUs of the slot a judging runs on. The CLI, the Dagster resources and the
tests build one; the orchestrator (``judge.judging``) and a phase's run (``judge.phase_run``) read it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .. import settings
from ..core import protocol
from ..core.scoring import DEFAULT_PRESET, ScoringConfig, preset
from ..core.trial import ValidityConfig
from .cpus import split_cpus
from .sandbox import SandboxLimits


@dataclass(frozen=True, slots=True)
class JudgeConfig:
    profile: str = "quick"
    port: int = protocol.PORT
    engine_cpus: tuple[int, ...] = field(default_factory=lambda: split_cpus()[0])
    loadgen_cpus: tuple[int, ...] = field(default_factory=lambda: split_cpus()[1])
    memory_bytes: int = protocol.MEMORY_BYTES
    pids: int = protocol.PIDS
    scoring: ScoringConfig = field(default_factory=lambda: preset(DEFAULT_PRESET))
    validity: ValidityConfig = field(default_factory=ValidityConfig)
    trials: int | None = None  # trials of phases B and C; None: the profile's
    # Freeze the platform's services during timed trials when they share this host's CPUs (one
    # judging slot: the embedded default); production judge hosts run none.
    quiet_platform: bool = True
    quiet_max_s: float = 10.0  # never longer per trial: a crawling engine must not stall the platform
    # For each timed trial, move every other thread that may run outside this slot's CPUs (engine
    # and load generator) off them (``cpus.cleared``): the host's housekeeping then runs on the
    # CPUs no judging uses. A host with none (2 cores) has nothing to move.
    clear_slot_cpus: bool = True
    report_timeout_s: float = protocol.REPORT_TIMEOUT_S
    health_timeout_s: float = protocol.HEALTH_TIMEOUT_S
    loadgen_client: str = "native"  # replay.CLIENTS: the picows reference only to compare with
    phase_time_limit_s: float = protocol.PHASE_TIME_LIMIT_S
    # The reference engine of control trials (``_Judging.clean_control``); None: no control.
    control_engine: Path | None = field(
        default_factory=lambda: settings.current().calibration_engines / "engine"
    )

    def sandbox_limits(self) -> SandboxLimits:
        return SandboxLimits(memory_bytes=self.memory_bytes, pids=self.pids, cpus=self.engine_cpus)
