"""How small a difference in an engine's work the score resolves (issue 19's resolution goal).

    .venv/bin/python bench/resolution_bench.py [--profile standard] [--runs 3] [--scoring contest]

Judges the correct example engine and its twins that spend 5, 10 and 40 µs more CPU on every order
(``examples/engines/build/busy{5,10,40}_engine``), interleaved (engine, +5, +10, +40, engine, ...),
each with ``quantcraft judge`` exactly as a contestant runs it. Prints every judging's final with
its range over trials and its components, then per run:

- the smallest added work whose final-score range no longer overlaps the engine's (the
  resolution of that run);
- whether each step of the acceptance (engine → +10 → +40) is at least 3 points lower on the
  final and 1 point lower on latency and on throughput, with ranges that do not overlap, in order;
- whether any correct engine scored 0 or 100 on latency or throughput (a saturated scale).

And over the runs, each engine's spread of finals. Nothing is asserted: the figures are printed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
ENGINES = ROOT / "examples" / "engines" / "build"
QUANTCRAFT = ROOT / ".venv" / "bin" / "quantcraft"
TWINS = {"engine": 0, "busy5_engine": 5, "busy10_engine": 10, "busy40_engine": 40}
STEPS = (("engine", "busy10_engine"), ("busy10_engine", "busy40_engine"))
MIN_FINAL_STEP, MIN_COMPONENT_STEP = 3.0, 1.0


def judge(engine: str, profile: str, scoring: str) -> dict:
    """One judging's public figures, as ``quantcraft judge --json`` prints them."""
    cmd = [str(QUANTCRAFT), "judge", str(ENGINES / engine), "--profile", profile, "--scoring", scoring]
    proc = subprocess.run([*cmd, "--json", "--quiet"], capture_output=True, text=True)
    if proc.returncode != 0:
        return {"status": "judge failure", "reason": proc.stderr.strip().splitlines()[-1:]}
    return orjson.loads(proc.stdout)


def overlap(a: list[float], b: list[float]) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


def row(engine: str, v: dict) -> str:
    if not v.get("scores"):
        return f"  {engine:14} {v['status']}: {v['reason']}"
    s, (lo, hi) = v["scores"], v["scores_range"]["final"]
    trials = len(v["phases"]["C"]["trials"])
    return (
        f"  {engine:14} final {s['final']:6.2f} [{lo:6.2f}, {hi:6.2f}]  latency {s['latency']:6.2f}"
        f"  throughput {s['throughput']:6.2f}  C p99 {v['phases']['C']['p99_us']:>8} µs"
        f"  B {v['phases']['B']['orders_per_s']:>12} orders/s  {trials} trials"
    )


def assess(run: dict[str, dict]) -> list[str]:
    """What this run shows: its resolution and each acceptance condition that held or failed."""
    lines = []
    base = run["engine"]
    if not all(v.get("scores") for v in run.values()):
        return ["  no verdict for every engine: nothing to compare"]
    resolved = [
        us
        for name, us in TWINS.items()
        if us and not overlap(base["scores_range"]["final"], run[name]["scores_range"]["final"])
    ]
    lines.append(f"  resolution: {min(resolved)} µs/order" if resolved else "  resolution: none of the twins")
    for hi, lo in STEPS:
        a, b = run[hi], run[lo]
        drops = {k: a["scores"][k] - b["scores"][k] for k in ("final", "latency", "throughput")}
        ok = (
            drops["final"] >= MIN_FINAL_STEP
            and min(drops["latency"], drops["throughput"]) >= MIN_COMPONENT_STEP
            and not overlap(a["scores_range"]["final"], b["scores_range"]["final"])
            and min(len(v["phases"]["C"]["trials"]) for v in (a, b)) >= 3
        )
        lines.append(
            f"  {hi} → {lo}: final −{drops['final']:.2f}, latency −{drops['latency']:.2f},"
            f" throughput −{drops['throughput']:.2f}: {'met' if ok else 'MISSED'}"
        )
    saturated = [
        f"{name} {k} {v['scores'][k]:.2f}"
        for name, v in run.items()
        for k in ("latency", "throughput")
        if v["scores"][k] in (0.0, 100.0)
    ]
    lines.append(f"  saturated components: {', '.join(saturated) or 'none'}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="standard")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scoring", default="contest")
    args = parser.parse_args()
    print(f"profile {args.profile}, scoring {args.scoring}, {args.runs} runs of {', '.join(TWINS)}")
    finals: dict[str, list[float]] = {name: [] for name in TWINS}
    met = 0
    for i in range(args.runs):
        print(f"run {i + 1}")
        run = {}
        for engine in TWINS:
            run[engine] = judge(engine, args.profile, args.scoring)
            print(row(engine, run[engine]), flush=True)
            if run[engine].get("scores"):
                finals[engine].append(run[engine]["scores"]["final"])
        lines = assess(run)
        print("\n".join(lines), flush=True)
        met += all("MISSED" not in line for line in lines[1:-1]) and lines[-1].endswith("none")
    print(f"acceptance met in {met} of {args.runs} runs")
    for name, values in finals.items():
        if values:
            lo, hi = min(values), max(values)
            print(f"  {name:14} finals {lo:6.2f}–{hi:6.2f} (spread {hi - lo:.2f})")


if __name__ == "__main__":
    sys.exit(main())
