"""Judge one binary end to end: validate, then per phase a fresh sandboxed engine and a load run.

``quantcraft judge`` and the Dagster assets both call :func:`judge_binary`, so a contestant's
local run and the official run are the same code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from ..core import check, trace
from ..core.binary import MAX_BINARY_BYTES, Rejected, validate
from ..core.bundle import PhaseBundle, trace_id
from ..core.telemetry import Telemetry
from ..core.trial import (
    disturbed,
    invalid_reason,
)
from ..core.verdict import PhaseOutcome, Verdict, decide, rejected
from . import cpu_weight
from .bundles import public_bundles
from .config import JudgeConfig
from .cpus import placed
from .errors import InfrastructureError
from .phase_run import Progress, phase_outcome, run_phase
from .replay import LoadResult
from .sandbox import BubblewrapSandbox, EngineExit, Sandbox


def docker_sandbox(config: JudgeConfig, image: str, judging_id: str = "") -> Sandbox:
    """The Docker backend with this config's limits; a sandbox outliving the judge's own deadlines
    is a leftover (reaped by the next judging)."""
    from .docker_sandbox import LIFETIME_MARGIN_S, DockerSandbox  # the Docker SDK where Docker judges

    lifetime = config.health_timeout_s + config.phase_time_limit_s + LIFETIME_MARGIN_S
    limits = config.sandbox_limits()
    return DockerSandbox(limits, image, lifetime, judging_id, loadgen_cpus=config.loadgen_cpus)


@dataclass(slots=True)
class JudgeResult:
    verdict: Verdict
    telemetry: Telemetry


def read_upload(path: Path) -> bytes:
    """At most one byte over the limit, so a huge upload is refused without reading it all."""
    with open(path, "rb") as fh:
        return fh.read(MAX_BINARY_BYTES + 1)


def judge_binary(
    binary: Path,
    config: JudgeConfig | None = None,
    progress: Progress | None = None,
    sandbox: Sandbox | None = None,
    bundles: Mapping[str, PhaseBundle] | None = None,
) -> JudgeResult:
    """Validate, then judge every phase; always returns a verdict for the engine's own failures.

    ``bundles`` are the traces and answers to judge with (the official ones, from the trace
    assets, in the pipeline); by default the profile's public traces. ``sandbox`` (default:
    bubblewrap) is closed when the judging ends.
    """
    config = config or JudgeConfig()
    try:
        info = validate(read_upload(binary))
    except Rejected as exc:
        return JudgeResult(rejected(str(exc)), Telemetry())
    bundles = bundles or public_bundles(config.profile)
    box: Sandbox = sandbox or BubblewrapSandbox(config.sandbox_limits())
    cpu_weight.place(cpu_weight.JUDGES)  # this process and its load generators outweigh the host's work
    try:
        with placed(config.loadgen_cpus, every_thread=True):  # the judge stays off the engine's CPUs
            result = _Judging(binary, config, box, bundles, progress).run()
    finally:
        box.close()  # the judging's engines are stopped: what they shared goes
    verdict = result.verdict
    verdict.binary = {"size": info.size, "sha256": info.sha256, "linkage": info.linkage}
    verdict.engine_cpus = len(config.engine_cpus)
    verdict.traces = next(iter(bundles.values())).traces
    verdict.trace_versions = {phase: b.version for phase, b in bundles.items()}
    verdict.trace_id = trace_id(verdict.trace_versions)
    return result


_Run = tuple[LoadResult, EngineExit | None]  # one run of a phase: what the judge saw, how the engine ended


class _Judging:
    """Phase A once, then trials of B and C interleaved (B C B C …), each on a fresh engine.

    A trial the judge cannot vouch for (``core.trial.invalid_reason``) is discarded and run again;
    after ``max_reruns`` of those the judging is an infrastructure failure, never a score. Once the
    engine has failed, the judge finishes the round it is in and stops: the verdict is decided, and
    a phase the judge could not time by then is left unscored rather than failing the judging.
    """

    def __init__(
        self,
        binary: Path,
        config: JudgeConfig,
        sandbox: Sandbox,
        bundles: Mapping[str, PhaseBundle],
        progress: Progress | None,
    ) -> None:
        self.binary, self.config, self.sandbox, self.bundles = binary, config, sandbox, bundles
        self.progress = progress
        self.telemetry = Telemetry()
        self.counted: list[PhaseOutcome] = []
        self.invalid: dict[str, list[str]] = {}
        self.unscored: set[str] = set()  # phases left untimed after the engine had failed
        self.book_problems: list[str] | None = None
        self.stderr_tail = ""
        self.skip: str | None = None
        self.own_interference: float | None = None  # the clean control's figure, once there is one
        self.not_own = ""  # why the control rule last refused to call the interference the engine's

    def run(self) -> JudgeResult:
        self.run_once("A", 0)
        trial_phases = [p for p in trace.PHASES if p != "A"]
        wanted = self.config.trials or trace.PROFILES[self.config.profile].trials
        valid = dict.fromkeys(trial_phases, 0)

        def owed(phase: str) -> bool:
            return valid[phase] < wanted and phase not in self.unscored

        while any(map(owed, trial_phases)):
            for phase in trial_phases:
                if owed(phase) and self.run_once(phase, valid[phase]):
                    valid[phase] += 1
            if self.skip or self.engine_failed():
                wanted = 1
        verdict = decide(
            self.config.profile, self.counted, self.book_problems, self.config.scoring, self.invalid
        )
        verdict.stderr_tail = self.stderr_tail
        verdict.control_interference = self.own_interference
        return JudgeResult(verdict, self.telemetry)

    def engine_failed(self) -> bool:
        """Whether a counted run already failed the engine: its verdict is decided."""
        return any(o.problem for o in self.counted)

    def clean_control(self, bundle: PhaseBundle) -> float | None:
        """Run the judge's reference engine on the same phase, now, and return its interference
        share when it ran clean: nothing kept it off its CPUs and the judge kept its schedule, so
        the host is quiet, and what disturbed the contestant's trials, trial after trial, is the
        engine's own doing (kernel work it causes: a fork bomb's process churn takes its CPUs and,
        through the kernel, makes the judge late). None when it was disturbed (``not_own`` says
        how). The control gets a second run when its first is disturbed: work the contestant's
        engine left behind (Docker still copying a stderr flood's logs) took 9 % of a control
        replay run right after."""
        control = self.config.control_engine
        if control is None or not control.exists():
            self.not_own = "no reference engine to control with"
            return None
        for _ in range(2):
            result, engine_exit = run_phase(self.sandbox, control, bundle, self.config, None, timed=True)
            m = phase_outcome(bundle.spec.phase, bundle, result, engine_exit, self.config.validity).metrics
            if m.interference is not None and not disturbed(m, bundle.spec.rate, self.config.validity):
                return m.interference
        why = invalid_reason(m, bundle.spec.rate, self.config.validity) or "its interference unmeasured"
        self.not_own = f"the reference engine's trial was disturbed too: {why}"
        return None

    def disturbance_follows_the_engine(self, phase: str) -> tuple[bool, _Run | None]:
        """Whether the disturbance that used up the re-runs (the judge late, or the engine kept off
        its CPUs) is the engine's own: twice over, the reference engine runs clean and, between the
        two, the contestant's engine is disturbed again. Host noise that comes and goes (a backup, a
        burst of disk interrupts) seldom lines up like that; an engine's own churn always does. One
        clean control would count a trial that a passing burst disturbed. "Again" is over half the
        bounds: churn that sits at a bound (a fork bomb's, 5-6 % interference) would otherwise make
        the confirmation a coin toss.

        The run between the controls is returned when the judge can vouch for it (the burst
        passed, or the engine failed in it): it is a trial like any other, and counts."""
        bundle = self.bundles[phase]
        if self.clean_control(bundle) is None:
            return False, None
        result, engine_exit = run_phase(
            self.sandbox, self.binary, bundle, self.config, self.progress, timed=True
        )
        validity = self.config.validity
        again = phase_outcome(phase, bundle, result, engine_exit, validity)
        half = replace(
            validity,
            max_interference=validity.max_interference / 2,
            max_disturbed=validity.max_disturbed / 2,
            max_send_lag_p99_us=validity.max_send_lag_p99_us / 2,
            max_rate_error=validity.max_rate_error / 2,
        )
        if again.problem or again.protocol_error_count:
            return False, (result, engine_exit)  # the engine failed in it: that decides
        if disturbed(again.metrics, bundle.spec.rate, half):
            control = self.clean_control(bundle)
            if control is not None:
                self.own_interference = control
                return True, None
        if not disturbed(again.metrics, bundle.spec.rate, validity):
            return False, (result, engine_exit)
        return False, None

    def run_once(self, phase: str, trial: int) -> bool:
        """One run of ``phase``; False when the judge discarded it (it is run again)."""
        bundle = self.bundles[phase]
        if self.skip is not None:
            result, engine_exit = LoadResult(False, 0.0, self.skip), None
        else:
            result, engine_exit = run_phase(
                self.sandbox, self.binary, bundle, self.config, self.progress,
                timed=phase != "A",  # phase A's latency is not scored
            )  # fmt: skip
        outcome = phase_outcome(phase, bundle, result, engine_exit, self.config.validity, trial)
        engine_at_fault = outcome.problem or outcome.protocol_error_count
        validity = self.config.validity
        why = (
            None
            if engine_at_fault
            else invalid_reason(
                outcome.metrics, bundle.spec.rate, validity, self.own_interference is not None
            )
        )
        if why is not None:
            reasons = self.invalid.setdefault(phase, [])
            reasons.append(why)
            if sum(map(len, self.invalid.values())) <= validity.max_reruns:
                return False
            own, rerun = False, None
            if disturbed(outcome.metrics, bundle.spec.rate, validity):
                own, rerun = self.disturbance_follows_the_engine(phase)
            if rerun is not None:  # the run between the controls counts in place of this one
                result, engine_exit = rerun
                outcome = phase_outcome(phase, bundle, result, engine_exit, validity, trial)
            elif own:
                reasons.pop()  # this one counts: what disturbed the trial was the engine's own doing
            elif self.engine_failed():
                # A fork bomb that starved itself in phase A (its verdict) and made the judge late
                # in phase C while the host was noisy too: C goes unscored, the engine keeps the
                # verdict it earned.
                self.unscored.add(phase)
                return False
            else:
                why_not = f" (not the engine's own: {self.not_own})" if self.not_own else ""
                raise InfrastructureError(
                    f"no valid trial of phase {phase} after re-runs: {'; '.join(reasons)}{why_not}"
                )
        if self.own_interference is not None and outcome.disturbed is not None:
            # the stalls and the judge's lateness are the engine's own doing: every order is
            # charged to it, from its intended send time
            outcome = phase_outcome(phase, bundle, result, engine_exit, validity, trial, watched=False)
        self.telemetry.add(
            phase, trial, bundle, (result.intended_ns, result.sent_ns, result.recv_ns), outcome
        )
        self.counted.append(outcome)
        if engine_exit is not None and (outcome.problem or not self.stderr_tail):
            self.stderr_tail = engine_exit.stderr_tail
        if phase == "A" and result.healthy:
            self.book_problems = check.compare_books(bundle.books, result.books)
        if not result.healthy and self.skip is None:
            self.skip = f"not run: the engine never became healthy in phase {phase}"
        return True
