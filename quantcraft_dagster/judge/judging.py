"""Judge one binary end to end: validate, then per phase a fresh sandboxed engine and a load run.

``quantcraft judge`` and the Dagster assets both call :func:`judge_binary`, so a contestant's
local run and the official run are the same code.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import pickle
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .. import settings
from ..core import book, check, protocol, trace
from ..core.binary import MAX_BINARY_BYTES, Rejected, validate
from ..core.bundle import PhaseBundle, assemble, build, trace_id
from ..core.metrics import phase_metrics
from ..core.scoring import ScoringConfig
from ..core.trial import (
    ValidityConfig,
    client_limited,
    disturbed_orders,
    host_stalls,
    interfered,
    invalid_reason,
)
from ..core.verdict import PhaseOutcome, Verdict, decide, rejected
from . import cpu_weight, interference
from .cgroups import PlatformGroup
from .cpus import cleared, placed, split_cpus
from .errors import InfrastructureError
from .quiet import quiet_platform
from .replay import LoadPlan, LoadResult
from .sandbox import BubblewrapSandbox, EngineExit, LoadgenRun, RunningEngine, Sandbox, SandboxLimits

Progress = Callable[[str, int, int, str], None]
"""(phase, orders answered, orders in phase, note)."""


INFRASTRUCTURE_RETRIES = 2
"""Times a judging that ended in :class:`InfrastructureError` is run again, later."""


def infrastructure_retry_wait_s(retry_number: int) -> int:
    """Seconds to wait before retry ``retry_number`` (0-based) of a judging the host spoiled. A
    host's bursts (a container's copy-on-start, a backup) last seconds to a minute: each wait is
    four times longer than the last (5, 20 s) to get past one."""
    return 5 * 4**retry_number


@dataclass(frozen=True, slots=True)
class JudgeConfig:
    profile: str = "quick"
    port: int = 8080
    engine_cpus: tuple[int, ...] = field(default_factory=lambda: split_cpus()[0])
    loadgen_cpus: tuple[int, ...] = field(default_factory=lambda: split_cpus()[1])
    memory_bytes: int = 4 * 2**30
    pids: int = 256
    scoring: ScoringConfig = field(default_factory=ScoringConfig)
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
    report_timeout_s: float = 5.0
    health_timeout_s: float = 30.0
    loadgen_client: str = "native"  # replay.CLIENTS: the picows reference only to compare with
    phase_time_limit_s: float = 120.0  # bounds a crawling engine; a good one needs a few seconds
    # The reference engine of control trials (``_Judging.control_runs_clean``); None: no control.
    control_engine: Path | None = field(
        default_factory=lambda: settings.current().calibration_engines / "engine"
    )

    def sandbox_limits(self) -> SandboxLimits:
        return SandboxLimits(memory_bytes=self.memory_bytes, pids=self.pids, cpus=self.engine_cpus)


def docker_sandbox(config: JudgeConfig, image: str, judging_id: str = "") -> Sandbox:
    """The Docker backend with this config's limits; a sandbox outliving the judge's own deadlines
    is a leftover (reaped by the next judging)."""
    from .docker_sandbox import LIFETIME_MARGIN_S, DockerSandbox  # the Docker SDK where Docker judges

    lifetime = config.health_timeout_s + config.phase_time_limit_s + LIFETIME_MARGIN_S
    limits = config.sandbox_limits()
    return DockerSandbox(limits, image, lifetime, judging_id, loadgen_cpus=config.loadgen_cpus)


def cache_dir() -> Path:
    return settings.current().cache


def _bundle_key(spec: trace.PhaseSpec) -> str:
    """Changes whenever the spec or any rule that shapes traces or answers changes."""
    digest = hashlib.sha256(repr(spec).encode())
    for module in (trace, book, protocol):
        digest.update(Path(module.__file__ or "").read_bytes())
    return digest.hexdigest()[:20]


def _cached(name: str, build: Callable[[], PhaseBundle]) -> PhaseBundle:
    """A bundle from the judge host's disk cache (root-only), or built and stored there."""
    path = cache_dir() / "bundles" / f"{name}.pkl"
    with (
        contextlib.suppress(OSError, pickle.UnpicklingError, EOFError, AttributeError, TypeError),
        open(path, "rb") as fh,
    ):
        return pickle.load(fh)
    result = build()
    with contextlib.suppress(OSError):
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            pickle.dump(result, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    return result


@functools.lru_cache(maxsize=6)
def phase_bundle(profile: str, phase: str) -> PhaseBundle:
    """A public phase, built as the trace assets build theirs; cached by the code that makes it."""
    spec = trace.get_spec(profile, phase)
    return _cached(f"{profile}-{phase}-{_bundle_key(spec)}", lambda: build(spec, "public"))


def public_bundles(profile: str) -> dict[str, PhaseBundle]:
    """Every phase of a public profile: what a contestant self-judges with."""
    return {phase: phase_bundle(profile, phase) for phase in trace.PHASES}


def official_bundle(spec: trace.PhaseSpec, orders: list[bytes], answers: list[bytes]) -> PhaseBundle:
    """A phase from the official trace and expected-reports assets' values. Never cached on disk:
    every judging has its own trace, so a cache would only grow and never hit (assembling is
    about 1.5 s of a standard judging: docs/official-traces.md)."""
    if len(orders) != spec.orders:
        raise ValueError(
            f"the stored phase {spec.phase} trace has {len(orders):,} orders, the profile {spec.orders:,}:"
            " re-materialise the trace assets for this profile"
        )
    return assemble(spec, orders, answers, "official")


TELEMETRY_COLUMNS = (
    "phase", "trial", "connection", "seq", "order_id", "intended_ns", "sent_ns", "recv_ns", "status", "exact",
    "disturbed",
)  # fmt: skip


@dataclass(slots=True)
class Telemetry:
    """Per-order rows of one judging, column-wise (the raw telemetry asset)."""

    columns: dict[str, list] = field(default_factory=lambda: {k: [] for k in TELEMETRY_COLUMNS})

    def add(
        self, phase: str, trial: int, bundle: PhaseBundle, result: LoadResult, outcome: PhaseOutcome
    ) -> None:
        n = len(bundle.orders)
        checked, disturbed = outcome.check, outcome.disturbed
        conn_of = [bundle.spec.connection_of(o.symbol) for o in bundle.orders]
        zeros = [0] * n
        cols = self.columns
        cols["phase"] += [phase] * n
        cols["trial"] += [trial] * n
        cols["connection"] += conn_of
        cols["seq"] += list(range(n))
        cols["order_id"] += [o.order_id for o in bundle.orders]
        cols["intended_ns"] += result.intended_ns or zeros
        cols["sent_ns"] += result.sent_ns or zeros
        cols["recv_ns"] += result.recv_ns or zeros
        cols["status"] += checked.status
        cols["exact"] += checked.exact.tolist()
        cols["disturbed"] += disturbed.tolist() if disturbed is not None else [False] * n

    def __len__(self) -> int:
        return len(self.columns["seq"])

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame(self.columns)


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


class _Judging:
    """Phase A once, then trials of B and C interleaved (B C B C …), each on a fresh engine.

    A trial the judge cannot vouch for (``core.trial.invalid_reason``) is discarded and run again;
    after ``max_reruns`` of those the judging is an infrastructure failure, never a score. Once the
    engine has failed, the judge finishes the round it is in and stops: the verdict is decided.
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
        while any(valid[p] < wanted for p in trial_phases):
            for phase in trial_phases:
                if valid[phase] < wanted and self.run_once(phase, valid[phase]):
                    valid[phase] += 1
            if self.skip or any(o.problem for o in self.counted):
                wanted = 1
        verdict = decide(
            self.config.profile, self.counted, self.book_problems, self.config.scoring, self.invalid
        )
        verdict.stderr_tail = self.stderr_tail
        verdict.control_interference = self.own_interference
        return JudgeResult(verdict, self.telemetry)

    def control_runs_clean(self, bundle: PhaseBundle) -> bool:
        """Run the judge's reference engine on the same phase, now: when nothing keeps it off its
        CPUs, the host is quiet and what kept the contestant's engine off them, trial after trial,
        is the engine's own doing (kernel work it causes: a fork bomb's process churn measured
        5–6 % of its replays). Its trials then count; the verdict records the control. The control
        gets a second run when its first is disturbed: work the contestant's engine left behind
        (Docker still copying a stderr flood's logs) took 9 % of a control replay run right after."""
        control = self.config.control_engine
        if control is None or not control.exists():
            self.not_own = "no reference engine to control with"
            return False
        for _ in range(2):
            result, engine_exit = run_phase(self.sandbox, control, bundle, self.config, None, timed=True)
            m = phase_outcome(bundle.spec.phase, bundle, result, engine_exit, self.config.validity).metrics
            if m.interference is not None and not interfered(m, self.config.validity):
                self.own_interference = m.interference
                return True
        shown = "unmeasured" if m.interference is None else f"{m.interference:.2%}"
        self.not_own = f"the reference engine was kept off its CPUs too ({shown})"
        return False

    def interference_follows_the_engine(self, phase: str) -> bool:
        """Whether the interference that used up the re-runs is the engine's own: twice over, the
        reference engine runs clean and, between the two, the contestant's engine is kept off its
        CPUs again. Host noise that comes and goes (a backup, a burst of disk interrupts) seldom
        lines up like that; an engine's own churn always does. One clean control would count a
        trial that a passing burst disturbed. "Again" is over half the bound: churn that sits at
        the bound (a fork bomb's, 5-6 %) would otherwise make the confirmation a coin toss."""
        bundle = self.bundles[phase]
        if not self.control_runs_clean(bundle):
            return False
        result, engine_exit = run_phase(
            self.sandbox, self.binary, bundle, self.config, self.progress, timed=True
        )
        validity = self.config.validity
        again = phase_outcome(phase, bundle, result, engine_exit, validity).metrics
        half = replace(
            validity, max_interference=validity.max_interference / 2, max_disturbed=validity.max_disturbed / 2
        )
        if not interfered(again, half):
            shown = "unmeasured" if again.interference is None else f"{again.interference:.2%}"
            self.not_own = f"run again, the engine was kept off its CPUs for {shown} only"
            return False
        return self.control_runs_clean(bundle)

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
            if not (interfered(outcome.metrics, validity) and self.interference_follows_the_engine(phase)):
                why_not = f" (not the engine's own: {self.not_own})" if self.not_own else ""
                raise InfrastructureError(
                    f"no valid trial of phase {phase} after re-runs: {'; '.join(reasons)}{why_not}"
                )
            reasons.pop()  # this one counts: what kept the engine off its CPUs was its own doing
            if (why := invalid_reason(outcome.metrics, bundle.spec.rate, validity, True)) is not None:
                raise InfrastructureError(f"no valid trial of phase {phase} after re-runs: {why}")
        if self.own_interference is not None and outcome.disturbed is not None:
            # the stalls are the engine's own doing: every order it held up is charged to it
            outcome = phase_outcome(phase, bundle, result, engine_exit, validity, trial, watched=False)
        self.telemetry.add(phase, trial, bundle, result, outcome)
        self.counted.append(outcome)
        if engine_exit is not None and (outcome.problem or not self.stderr_tail):
            self.stderr_tail = engine_exit.stderr_tail
        if phase == "A" and result.healthy:
            self.book_problems = check.compare_books(bundle.books, result.books)
        if not result.healthy and self.skip is None:
            self.skip = f"not run: the engine never became healthy in phase {phase}"
        return True


def phase_outcome(
    phase: str,
    bundle: PhaseBundle,
    result: LoadResult,
    engine_exit: EngineExit | None,
    validity: ValidityConfig,
    trial: int = 0,
    watched: bool = True,
) -> PhaseOutcome:
    """One run's checked reports and figures; ``watched``: the orders the host or the judge held
    up (the load generator's stall samples) are left out of the latency figures."""
    n = len(bundle.orders)
    received = result.received or [None] * n
    missing = result.missing_reasons if result.healthy else dict.fromkeys(range(n), result.health_error or "")
    checked = check.check_phase(phase, bundle.orders, bundle.expected, received, missing, result.tainted)
    zeros = np.zeros(n, dtype=np.int64)

    def column(values: list[int]) -> np.ndarray:
        return np.asarray(values, dtype=np.int64) if values else zeros

    stamps = column(result.intended_ns), column(result.sent_ns), column(result.recv_ns)
    disturbed = None
    if watched and result.stall_samples:
        stalls = host_stalls(result.stall_samples, result.watched_cpus, int(validity.min_stall_us * 1_000))
        lag_ns = int(validity.max_send_lag_p99_us * 1_000)
        disturbed = disturbed_orders(*stamps, stalls, lag_ns, validity.min_held_share)
    metrics = phase_metrics(
        *stamps,
        checked.exact,
        cpu_ns=engine_exit.cpu_ns if engine_exit is not None and result.healthy else None,
        client_busy=(result.cpu_s + result.run_delay_s) / result.wall_s if result.wall_s > 0 else None,
        client_run_delay=result.run_delay_s / result.wall_s if result.wall_s > 0 else None,
        interference=result.interference_ns / (result.wall_s * 1e9)
        if result.interference_ns is not None and result.wall_s > 0
        else None,
        disturbed=disturbed,
    )
    metrics.client_limited = bundle.spec.window > 1 and client_limited(metrics, validity)
    return PhaseOutcome(
        phase,
        metrics,
        checked,
        problem=_problem(result, engine_exit, metrics.answered, n),
        engine_exit=engine_exit.describe() if engine_exit else "",
        protocol_errors=result.errors[:10],
        protocol_error_count=result.error_count,
        trial=trial,
        disturbed=disturbed,
    )


def _problem(result: LoadResult, engine_exit: EngineExit | None, answered: int, n: int) -> str | None:
    """The public one-line reason a phase failed (no order ids), or None when it ran to the end."""
    if engine_exit is not None and engine_exit.leftover_pids:
        raise InfrastructureError(f"sandbox cleanup left processes {engine_exit.leftover_pids}")
    if not result.healthy:
        why = result.health_error or "never became healthy"
        if engine_exit is not None and engine_exit.died_early:
            why += f"; engine {engine_exit.describe()}"
        return why if why.startswith("not run") else f"engine never became healthy: {why}"
    if engine_exit is not None and (engine_exit.died_early or engine_exit.oom_killed):
        return f"engine {engine_exit.describe()} after {answered:,} of {n:,} orders"
    if result.missing_reasons:
        first = min(result.missing_reasons)
        return f"{result.missing_reasons[first]} ({answered:,} of {n:,} orders answered)"
    return None


def run_phase(
    sandbox: Sandbox,
    binary: Path,
    bundle: PhaseBundle,
    config: JudgeConfig,
    progress: Progress | None,
    timed: bool = False,
) -> tuple[LoadResult, EngineExit]:
    """One run of a phase on a fresh engine. ``timed``: on a quiet host (``judge.quiet``, entered
    after the progress announcement, so the caller's bookkeeping is done before anything freezes),
    with the host's interference with the engine measured over the replay (``judge.interference``)."""
    spec = bundle.spec
    plan = LoadPlan(
        phase=spec.phase,
        port=config.port,
        payloads=bundle.payloads,
        order_ids=[o.order_id for o in bundle.orders],
        conn_of=[spec.connection_of(o.symbol) for o in bundle.orders],
        connections=spec.connections,
        window=spec.window,
        rate=spec.rate,
        book_symbols=list(bundle.books) if spec.phase == "A" else [],
        cpus=list(config.loadgen_cpus),
        engine_cpus=list(config.engine_cpus) if timed else [],
        health_timeout_s=config.health_timeout_s,
        report_timeout_s=config.report_timeout_s,
        time_limit_s=config.phase_time_limit_s,
        client=config.loadgen_client,
    )
    with tempfile.TemporaryDirectory(prefix="qc-phase-") as tmp:
        plan_path, result_path = Path(tmp, "plan.pkl"), Path(tmp, "result.pkl")
        if progress:
            # Announced here, before anything is timed: a caller's bookkeeping (the Dagster asset
            # logs a lifecycle event) then never shares the load generator's CPU during a replay.
            progress(spec.phase, 0, len(plan.payloads), "starting a fresh engine")
        group = PlatformGroup() if timed and config.quiet_platform else None
        interfered = None
        slot = config.engine_cpus + config.loadgen_cpus
        clearing = cleared(slot) if timed and config.clear_slot_cpus else contextlib.nullcontext()
        with quiet_platform(group, config.quiet_max_s), clearing:
            engine = sandbox.start(binary, config.port)
            try:
                # The judge meters where it sees the engine's processes, else the load generator.
                meter = (
                    interference.Meter(config.engine_cpus, engine)
                    if timed and engine.meter_uid is None
                    else None
                )
                if timed and engine.meter_uid is not None:
                    plan.meter = (config.engine_cpus, engine.meter_uid)
                elif timed:
                    plan.engine_procs = engine.procs_files()
                with open(plan_path, "wb") as fh:
                    pickle.dump(plan, fh, protocol=pickle.HIGHEST_PROTOCOL)
                _drive_loadgen(
                    engine, plan, plan_path, result_path, config, progress, meter.mark if meter else None
                )
                if meter is not None and engine.exit_code() is None:  # the replay's end
                    meter.mark()
                    interfered = meter.ns()
            finally:
                engine_exit = engine.stop()
        if not result_path.exists():
            return LoadResult(
                False, 0.0, f"engine {engine_exit.describe()} before becoming healthy"
            ), engine_exit
        with open(result_path, "rb") as fh:
            result = pickle.load(fh)
        if meter is not None:
            result.interference_ns = interfered
        return result, engine_exit


def _drive_loadgen(
    engine: RunningEngine,
    plan: LoadPlan,
    plan_path: Path,
    result_path: Path,
    config: JudgeConfig,
    progress: Progress | None,
    on_healthy: Callable[[], None] | None = None,
) -> None:
    """Run the load generator beside the engine; stop it if the engine dies first. ``on_healthy``
    is called when the engine answered its health check: the replay starts."""
    total = len(plan.payloads)
    state = {"healthy": False}
    proc = engine.run_loadgen(plan_path, result_path)
    reader = threading.Thread(
        target=_read_progress, args=(proc, plan.phase, total, state, progress, on_healthy)
    )
    reader.start()
    # The load generator enforces the phase limit itself; this only catches a stuck harness.
    deadline = time.monotonic() + config.health_timeout_s + config.phase_time_limit_s + 60
    try:
        while proc.poll() is None:
            if engine.exit_code() is not None and not state["healthy"]:
                proc.kill()
                break
            if time.monotonic() > deadline:
                proc.kill()
                raise InfrastructureError(f"load generator overran its deadline in phase {plan.phase}")
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.kill()
        code = proc.wait()
        reader.join(5)
    if code not in (0, -9) or (code == 0 and not result_path.exists()):
        raise InfrastructureError(f"load generator failed ({code}): {proc.errors()}")


def _read_progress(
    proc: LoadgenRun,
    phase: str,
    total: int,
    state: dict,
    progress: Progress | None,
    on_healthy: Callable[[], None] | None,
) -> None:
    """The load generator's lines, as they come: its "healthy" starts the replay's measurement
    (``on_healthy``). At the load generator's own priority: beside its busy-polling sender on a
    shared CPU, a thread at nice 0 got its turn only after the replay, and marked its start too
    late (the interference meter then measured almost nothing)."""
    with contextlib.suppress(OSError):  # no CAP_SYS_NICE (a run container): it meters in the load generator
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), -20)
    for line in proc.stdout:
        parts = line.split()
        if parts and parts[0] == "healthy":
            state["healthy"] = True
            if on_healthy:
                on_healthy()
            if progress:
                progress(phase, 0, total, f"engine healthy after {parts[1]} s")
        elif len(parts) == 4 and parts[0] == "progress" and progress:
            progress(phase, int(parts[2]), total, "")
