"""Judge benchmarks against the example engines, all in one run (issue 2's goals).

    .venv/bin/python bench/judge_bench.py [--profile standard]

Prints, each against a baseline measured in the same run where one exists:
1. phase A p50/p99 of the judge's load generator vs a minimal uvloop+picows loop (ratio),
   both on the same sandboxed correct engine with the same CPU split;
2. phase B orders/s against the trivial engine (harness bound) and the correct engine;
3. the reference engine's orders/s on the standard phase A trace;
4. a full standard judging of the correct engine: wall time and peak memory (judge + load gen).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from quantcraft_dagster.core.book import expected_reports  # noqa: E402
from quantcraft_dagster.core.metrics import nearest_rank  # noqa: E402
from quantcraft_dagster.judge.bundles import phase_bundle  # noqa: E402
from quantcraft_dagster.judge.config import JudgeConfig  # noqa: E402
from quantcraft_dagster.judge.judging import judge_binary  # noqa: E402
from quantcraft_dagster.judge.phase_run import phase_outcome, run_phase  # noqa: E402
from quantcraft_dagster.judge.sandbox import BubblewrapSandbox  # noqa: E402

ENGINES = ROOT / "examples" / "engines" / "build"


def raw_loop_latency(config: JudgeConfig, trace_lines: list[bytes]) -> tuple[float, float, float]:
    """p50, p99 (µs) and wall time of the minimal client on a fresh sandboxed engine."""
    sandbox = BubblewrapSandbox(config.sandbox_limits())
    engine = sandbox.start(ENGINES / "engine", config.port)
    with tempfile.TemporaryDirectory() as tmp:
        trace_path, out = Path(tmp, "trace.jsonl"), Path(tmp, "out.json")
        trace_path.write_bytes(b"\n".join(trace_lines) + b"\n")
        try:
            subprocess.run(
                ["nsenter", f"--net={engine.netns_path}", "--", sys.executable,
                 str(ROOT / "bench" / "raw_client.py"), str(config.port), str(trace_path), str(out),
                 ",".join(map(str, config.loadgen_cpus))],
                check=True,
            )  # fmt: skip
        finally:
            engine.stop()
        data = json.loads(out.read_text())
    rtt = np.asarray(data["rtt_ns"], dtype=np.float64) / 1000
    p50, p99 = nearest_rank(rtt, (50.0, 99.0))
    return p50, p99, data["wall_s"]


def judge_phase(config: JudgeConfig, binary: Path, phase: str):
    bundle = phase_bundle(config.profile, phase)
    sandbox = BubblewrapSandbox(config.sandbox_limits())
    result, engine_exit = run_phase(sandbox, binary, bundle, config, None)
    judge_phase.loadgen_peak = max(getattr(judge_phase, "loadgen_peak", 0), result.peak_rss_bytes)
    return phase_outcome(phase, bundle, result, engine_exit, config.validity).metrics


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--profile", default="standard")
    parser.add_argument("--rounds", type=int, default=3, help="alternating judge/raw rounds for phase A")
    args = parser.parse_args()
    config = JudgeConfig(profile=args.profile)
    print(f"CPU split: engine {config.engine_cpus}, load generator {config.loadgen_cpus}")

    bundle_a = phase_bundle(args.profile, "A")
    judge_p50, judge_p99, raw_p50, raw_p99 = [], [], [], []
    for _ in range(args.rounds):  # alternate so drift on the host hits both equally
        m = judge_phase(config, ENGINES / "engine", "A")
        judge_p50.append(m.p50_us)
        judge_p99.append(m.p99_us)
        p50, p99, _ = raw_loop_latency(config, bundle_a.payloads)
        raw_p50.append(p50)
        raw_p99.append(p99)
    jp50, jp99, rp50, rp99 = (float(np.median(x)) for x in (judge_p50, judge_p99, raw_p50, raw_p99))
    print(f"\n1. phase A ({len(bundle_a.orders):,} orders, medians of {args.rounds} rounds)")
    print(f"   judge     p50 {jp50:8.1f} µs   p99 {jp99:8.1f} µs")
    print(f"   raw loop  p50 {rp50:8.1f} µs   p99 {rp99:8.1f} µs")
    print(f"   ratio     p50 {jp50 / rp50:8.2f}×     p99 {jp99 / rp99:8.2f}×   (goal: p50 ≤ 1.2×)")

    print("\n2. phase B throughput")
    for name in ("trivial", "engine"):
        m = judge_phase(config, ENGINES / name, "B")
        figures = f"{m.orders_per_s:12,.0f} orders/s  ({m.answered:,} answered, p99 {m.p99_us:,.0f} µs)"
        print(f"   {name:8s} {figures}")

    orders = bundle_a.orders
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        expected_reports(orders)
        best = min(best, time.perf_counter() - start)
    print(f"\n3. reference engine: {len(orders) / best:,.0f} orders/s ({best:.3f} s for phase A)")

    phase_bundle.cache_clear()  # a judging in a fresh process: traces come from the disk cache
    start = time.perf_counter()
    verdict = judge_binary(ENGINES / "engine", config).verdict
    wall = time.perf_counter() - start
    self_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10
    print(
        f"\n4. {args.profile} judging: {verdict.status}, final {verdict.scores.final:.2f}, wall {wall:.2f} s"
    )
    loadgen_mb = judge_phase.loadgen_peak / 2**20
    print(f"   peak RSS: this process {self_mb:.0f} MB (whole bench), load generator {loadgen_mb:.0f} MB")


if __name__ == "__main__":
    main()
