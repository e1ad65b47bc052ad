"""The load generator's clients against each other (issue 18's goals for the native client).

    .venv/bin/python bench/loadgen_bench.py [--profile standard] [--runs 3]

For each engine, timed runs of phases B and C with the native client (qcload) and the picows
reference, interleaved (native, picows, native, ...) on fresh sandboxed engines, the judge's CPU
split and priorities as in a judging. Prints per engine and client the medians over runs of:
phase C send-lag p99 and corrected p99 (µs), phase B orders/s and the client's busy share, and the
native/picows ratio of each. Goals: send-lag p99 <= 10 µs against the example engine, <= 20 µs
against the Go engine; phase B >= 2M orders/s against `trivial` on one core.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from quantcraft_dagster.judge.bundles import phase_bundle  # noqa: E402
from quantcraft_dagster.judge.config import JudgeConfig  # noqa: E402
from quantcraft_dagster.judge.cpus import placed  # noqa: E402
from quantcraft_dagster.judge.phase_run import phase_outcome, run_phase  # noqa: E402
from quantcraft_dagster.judge.replay import CLIENTS  # noqa: E402
from quantcraft_dagster.judge.sandbox import BubblewrapSandbox  # noqa: E402

ENGINES = ROOT / "examples" / "engines" / "build"
FIGURES = (
    ("C", "send_lag_p99_us", "C send-lag p99 µs"),
    ("C", "p99_us", "C p99 µs"),
    ("B", "orders_per_s", "B orders/s"),
    ("B", "client_busy", "B client busy"),
)


def measure(engine: str, config: JudgeConfig, runs: int) -> dict[str, dict[str, list[float]]]:
    """Per client, per figure: one value per run."""
    out: dict[str, dict[str, list[float]]] = {c: {f[2]: [] for f in FIGURES} for c in CLIENTS}
    sandbox = BubblewrapSandbox(config.sandbox_limits())
    try:
        with placed(config.loadgen_cpus, every_thread=True):
            for _ in range(runs):
                for client in CLIENTS:
                    cfg = replace(config, loadgen_client=client)
                    for phase in ("B", "C"):
                        bundle = phase_bundle(config.profile, phase)
                        binary = ENGINES / engine
                        result, engine_exit = run_phase(sandbox, binary, bundle, cfg, None, timed=True)
                        m = phase_outcome(phase, bundle, result, engine_exit, cfg.validity).metrics
                        for fig_phase, key, label in FIGURES:
                            if fig_phase == phase and getattr(m, key) is not None:
                                out[client][label].append(float(getattr(m, key)))
    finally:
        sandbox.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="standard")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--engines", default="engine,go_engine,threaded_engine,trivial")
    args = parser.parse_args()
    config = JudgeConfig(profile=args.profile)
    print(f"profile {args.profile}, {args.runs} runs per client, engine CPUs {config.engine_cpus},"
          f" load generator CPUs {config.loadgen_cpus}")  # fmt: skip
    header = f"{'engine':16} {'figure':18} {'native':>12} {'picows':>12} {'ratio':>7}"
    print(header)
    for engine in args.engines.split(","):
        figures = measure(engine, config, args.runs)
        for _, _, label in FIGURES:
            native, ref = (statistics.median(figures[c][label] or [float("nan")]) for c in CLIENTS)
            ratio = native / ref if ref else float("nan")
            print(f"{engine:16} {label:18} {native:12.2f} {ref:12.2f} {ratio:7.2f}")


if __name__ == "__main__":
    main()
