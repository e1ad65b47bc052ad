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
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core import book, check, protocol, trace
from ..core.binary import MAX_BINARY_BYTES, BinaryInfo, Rejected, validate
from ..core.book import Level
from ..core.metrics import phase_metrics
from ..core.protocol import Order, Report
from ..core.scoring import ScoringConfig
from ..core.verdict import PhaseOutcome, Verdict, decide, rejected
from .cpus import placed, split_cpus
from .loadgen import LoadPlan, LoadResult
from .sandbox import BubblewrapSandbox, EngineExit, RunningEngine, Sandbox, SandboxLimits

Progress = Callable[[str, int, int, str], None]
"""(phase, orders answered, orders in phase, note)."""


class InfrastructureError(RuntimeError):
    """The judge itself failed (not the engine): safe to retry the judging."""


@dataclass(frozen=True, slots=True)
class JudgeConfig:
    profile: str = "quick"
    port: int = 8080
    engine_cpus: tuple[int, ...] = field(default_factory=lambda: split_cpus()[0])
    loadgen_cpus: tuple[int, ...] = field(default_factory=lambda: split_cpus()[1])
    memory_bytes: int = 4 * 2**30
    pids: int = 256
    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    report_timeout_s: float = 5.0
    health_timeout_s: float = 30.0
    phase_time_limit_s: float = 120.0  # bounds a crawling engine; a good one needs a few seconds

    def sandbox_limits(self) -> SandboxLimits:
        return SandboxLimits(memory_bytes=self.memory_bytes, pids=self.pids, cpus=self.engine_cpus)


@dataclass(frozen=True, slots=True)
class PhaseBundle:
    """A phase's trace, its wire payloads and the reference answers, built once per process."""

    spec: trace.PhaseSpec
    orders: list[Order]
    payloads: list[bytes]
    expected: list[Report]
    books: dict[str, tuple[Level, Level]]


def cache_dir() -> Path:
    return Path(os.environ.get("QUANTCRAFT_CACHE", Path.home() / ".cache" / "quantcraft"))


def _bundle_key(spec: trace.PhaseSpec) -> str:
    """Changes whenever the spec or any rule that shapes traces or answers changes."""
    digest = hashlib.sha256(repr(spec).encode())
    for module in (trace, book, protocol):
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()[:20]


@functools.lru_cache(maxsize=6)
def phase_bundle(profile: str, phase: str) -> PhaseBundle:
    """Built once per machine: traces are deterministic, so a disk cache keyed by code is exact."""
    spec = trace.get_spec(profile, phase)
    path = cache_dir() / "bundles" / f"{profile}-{phase}-{_bundle_key(spec)}.pkl"
    with (
        contextlib.suppress(OSError, pickle.UnpicklingError, EOFError, AttributeError),
        open(path, "rb") as fh,
    ):
        return pickle.load(fh)
    orders = list(trace.generate(spec))
    expected, books = book.expected_reports(orders)
    bundle = PhaseBundle(spec, orders, [protocol.encode_order(o) for o in orders], expected, books)
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            pickle.dump(bundle, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    return bundle


@dataclass(slots=True)
class Telemetry:
    """Per-order rows of one judging, column-wise (the raw telemetry asset)."""

    columns: dict[str, list] = field(default_factory=lambda: {k: [] for k in TELEMETRY_COLUMNS})

    def add(self, phase: str, bundle: PhaseBundle, result: LoadResult, checked: check.PhaseCheck) -> None:
        n = len(bundle.orders)
        conn_of = [bundle.spec.connection_of(o.symbol) for o in bundle.orders]
        zeros = [0] * n
        cols = self.columns
        cols["phase"] += [phase] * n
        cols["connection"] += conn_of
        cols["seq"] += list(range(n))
        cols["order_id"] += [o.order_id for o in bundle.orders]
        cols["intended_ns"] += result.intended_ns or zeros
        cols["sent_ns"] += result.sent_ns or zeros
        cols["recv_ns"] += result.recv_ns or zeros
        cols["status"] += checked.status
        cols["exact"] += checked.exact.tolist()

    def __len__(self) -> int:
        return len(self.columns["seq"])

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame(self.columns)


TELEMETRY_COLUMNS = (
    "phase", "connection", "seq", "order_id", "intended_ns", "sent_ns", "recv_ns", "status", "exact",
)  # fmt: skip


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
) -> JudgeResult:
    """Validate, then judge all phases; always returns a verdict for the engine's own failures."""
    config = config or JudgeConfig()
    telemetry = Telemetry()
    try:
        info = validate(read_upload(binary))
    except Rejected as exc:
        return JudgeResult(rejected(str(exc)), telemetry)
    sandbox = sandbox or BubblewrapSandbox(config.sandbox_limits())
    with placed(config.loadgen_cpus):  # the judge itself stays off the engine's CPUs
        return _judge_phases(binary, info, config, sandbox, progress)


def _judge_phases(
    binary: Path, info: BinaryInfo, config: JudgeConfig, sandbox: Sandbox, progress: Progress | None
) -> JudgeResult:
    telemetry = Telemetry()
    outcomes: list[PhaseOutcome] = []
    book_problems: list[str] | None = None
    stderr_tail = ""
    skip: str | None = None
    for phase in trace.PHASES:
        bundle = phase_bundle(config.profile, phase)
        if skip is not None:
            result, engine_exit = LoadResult(False, 0.0, skip), None
        else:
            result, engine_exit = run_phase(sandbox, binary, bundle, config, progress)
        outcome = phase_outcome(phase, bundle, result, engine_exit)
        telemetry.add(phase, bundle, result, outcome.check)
        outcomes.append(outcome)
        if engine_exit is not None and (outcome.problem or not stderr_tail):
            stderr_tail = engine_exit.stderr_tail
        if phase == "A" and result.healthy:
            book_problems = check.compare_books(bundle.books, result.books)
        if not result.healthy and skip is None:
            skip = f"not run: the engine never became healthy in phase {phase}"
    verdict = decide(config.profile, outcomes, book_problems, config.scoring)
    verdict.binary = {"size": info.size, "sha256": info.sha256, "linkage": info.linkage}
    verdict.engine_cpus = len(config.engine_cpus)
    verdict.stderr_tail = stderr_tail
    return JudgeResult(verdict, telemetry)


def phase_outcome(
    phase: str, bundle: PhaseBundle, result: LoadResult, engine_exit: EngineExit | None
) -> PhaseOutcome:
    n = len(bundle.orders)
    received = result.received or [None] * n
    missing = result.missing_reasons if result.healthy else dict.fromkeys(range(n), result.health_error or "")
    checked = check.check_phase(phase, bundle.orders, bundle.expected, received, missing, result.tainted)
    zeros = np.zeros(n, dtype=np.int64)
    start = np.asarray(result.intended_ns, dtype=np.int64) if result.intended_ns else zeros
    recv = np.asarray(result.recv_ns, dtype=np.int64) if result.recv_ns else zeros
    metrics = phase_metrics(start, recv, checked.exact)
    return PhaseOutcome(
        phase,
        metrics,
        checked,
        problem=_problem(result, engine_exit, metrics.answered, n),
        engine_exit=engine_exit.describe() if engine_exit else "",
        protocol_errors=result.errors[:10],
        protocol_error_count=result.error_count,
    )


def _problem(result: LoadResult, engine_exit: EngineExit | None, answered: int, n: int) -> str | None:
    """The one-line reason a phase failed, or None when it ran to the end."""
    if engine_exit is not None and engine_exit.leftover_pids:
        raise InfrastructureError(f"sandbox cleanup left processes {engine_exit.leftover_pids}")
    if not result.healthy:
        why = result.health_error or "never became healthy"
        if engine_exit is not None and engine_exit.died_early:
            why += f"; engine {engine_exit.describe()}"
        return why if why.startswith("not run") else f"engine never became healthy: {why}"
    if engine_exit is not None and (engine_exit.died_early or engine_exit.oom_killed):
        return f"engine {engine_exit.describe()} after {answered} of {n} orders"
    if result.missing_reasons:
        first = min(result.missing_reasons)
        return f"{result.missing_reasons[first]} ({answered} of {n} orders answered)"
    return None


def run_phase(
    sandbox: Sandbox,
    binary: Path,
    bundle: PhaseBundle,
    config: JudgeConfig,
    progress: Progress | None,
) -> tuple[LoadResult, EngineExit]:
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
        health_timeout_s=config.health_timeout_s,
        report_timeout_s=config.report_timeout_s,
        time_limit_s=config.phase_time_limit_s,
    )
    with tempfile.TemporaryDirectory(prefix="qc-phase-") as tmp:
        plan_path, result_path = Path(tmp, "plan.pkl"), Path(tmp, "result.pkl")
        with open(plan_path, "wb") as fh:
            pickle.dump(plan, fh, protocol=pickle.HIGHEST_PROTOCOL)
        engine = sandbox.start(binary, config.port)
        try:
            _drive_loadgen(engine, plan, plan_path, result_path, config, progress)
        finally:
            engine_exit = engine.stop()
        if not result_path.exists():
            return LoadResult(
                False, 0.0, f"engine {engine_exit.describe()} before becoming healthy"
            ), engine_exit
        with open(result_path, "rb") as fh:
            return pickle.load(fh), engine_exit


def _drive_loadgen(
    engine: RunningEngine,
    plan: LoadPlan,
    plan_path: Path,
    result_path: Path,
    config: JudgeConfig,
    progress: Progress | None,
) -> None:
    """Run the load generator in the engine's network namespace; stop it if the engine dies first."""
    cmd = [
        "nsenter", f"--net={engine.netns_path}", "--",
        sys.executable, "-m", "quantcraft_dagster.judge.loadgen", str(plan_path), str(result_path),
    ]  # fmt: skip
    total = len(plan.payloads)
    state = {"healthy": False}
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errors, text=True)
        reader = threading.Thread(target=_read_progress, args=(proc, plan.phase, total, state, progress))
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
            proc.wait()
            reader.join(5)
        if proc.returncode not in (0, -9) or (proc.returncode == 0 and not result_path.exists()):
            errors.seek(0)
            tail = errors.read()[-2000:].decode(errors="replace")
            raise InfrastructureError(f"load generator failed ({proc.returncode}): {tail}")


def _read_progress(
    proc: subprocess.Popen, phase: str, total: int, state: dict, progress: Progress | None
) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        parts = line.split()
        if parts and parts[0] == "healthy":
            state["healthy"] = True
            if progress:
                progress(phase, 0, total, f"engine healthy after {parts[1]} s")
        elif len(parts) == 4 and parts[0] == "progress" and progress:
            progress(phase, int(parts[2]), total, "")
