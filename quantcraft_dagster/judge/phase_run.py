"""One run of a phase: a fresh sandboxed engine, the load generator beside it, and the outcome.

:func:`run_phase` drives the processes (the engine, the load generator in its network
namespace, the interference meter, a quiet platform for timed trials); :func:`phase_outcome`
turns what came back into checked reports and figures. The orchestrator (``judge.judging``)
decides which runs count.
"""

from __future__ import annotations

import contextlib
import pickle
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..core import check
from ..core.bundle import PhaseBundle
from ..core.metrics import phase_metrics
from ..core.trial import ValidityConfig, client_limited, disturbed_orders, host_stalls
from ..core.verdict import PhaseOutcome
from .cgroups import PlatformGroup
from .config import JudgeConfig
from .cpus import cleared
from .errors import InfrastructureError
from .quiet import quiet_platform
from .replay import LoadPlan, LoadResult
from .sandbox import EngineExit, LoadgenRun, RunningEngine, Sandbox

Progress = Callable[[str, int, int, str], None]
"""(phase, orders answered, orders in phase, note)."""


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
        interference=result.interference,
        disturbed=disturbed,
        in_flight=bundle.spec.in_flight,
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
    with the load generator watching the engine's CPUs (``judge.interference``)."""
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
        slot = config.engine_cpus + config.loadgen_cpus
        clearing = cleared(slot) if timed and config.clear_slot_cpus else contextlib.nullcontext()
        with quiet_platform(group, config.quiet_max_s), clearing:
            engine = sandbox.start(binary, config.port)
            try:
                if timed:
                    plan.engine_uid, plan.engine_procs = engine.meter_uid, engine.procs_files()
                    plan.usage_file = engine.usage_file
                with open(plan_path, "wb") as fh:
                    pickle.dump(plan, fh, protocol=pickle.HIGHEST_PROTOCOL)
                _drive_loadgen(engine, plan, plan_path, result_path, config, progress)
            finally:
                engine_exit = engine.stop()
        if not result_path.exists():
            return LoadResult(
                False, 0.0, f"engine {engine_exit.describe()} before becoming healthy"
            ), engine_exit
        with open(result_path, "rb") as fh:
            result = pickle.load(fh)
        return result, engine_exit


def _drive_loadgen(
    engine: RunningEngine,
    plan: LoadPlan,
    plan_path: Path,
    result_path: Path,
    config: JudgeConfig,
    progress: Progress | None,
) -> None:
    """Run the load generator beside the engine; stop it if the engine dies first.

    Until then this thread polls (an engine that dies first ends the wait); from then on it
    blocks until the load generator exits, and nothing of the judge's wakes on the load
    generator's CPU during the replay: a poll every 50 ms there made the sender 50-150 µs late
    each time (seen in phase C's send lag, 50 ms apart)."""
    total = len(plan.payloads)
    healthy = threading.Event()
    proc = engine.run_loadgen(plan_path, result_path)
    reader = threading.Thread(target=_read_progress, args=(proc, plan.phase, total, healthy, progress))
    reader.start()
    # The load generator enforces the phase limit itself; this only catches a stuck harness.
    limit_s = config.health_timeout_s + config.phase_time_limit_s + 60
    overran = threading.Event()

    def overrun() -> None:
        overran.set()
        proc.kill()

    watchdog = threading.Timer(limit_s, overrun)
    watchdog.daemon = True
    watchdog.start()
    try:
        while proc.poll() is None and not healthy.wait(0.05):
            if engine.exit_code() is not None:
                proc.kill()
                break
        code = proc.wait()
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
        code = proc.wait()
        reader.join(5)
    if overran.is_set():
        raise InfrastructureError(f"load generator overran its deadline in phase {plan.phase}")
    if code not in (0, -9) or (code == 0 and not result_path.exists()):
        raise InfrastructureError(f"load generator failed ({code}): {proc.errors()}")


def _read_progress(
    proc: LoadgenRun,
    phase: str,
    total: int,
    healthy: threading.Event,
    progress: Progress | None,
) -> None:
    """The load generator's lines, as they come: its "healthy" ends the wait for the engine."""
    for line in proc.stdout:
        parts = line.split()
        if parts and parts[0] == "healthy":
            healthy.set()
            if progress:
                progress(phase, 0, total, f"engine healthy after {parts[1]} s")
        elif len(parts) == 4 and parts[0] == "progress" and progress:
            progress(phase, int(parts[2]), total, "")
