"""Verdicts per judging through the embedded stack, at the bounds the product ships (issue 18).

    .venv/bin/python bench/verdict_bench.py [--count 32] [--profile standard]

Starts the embedded default (``quantcraft up``'s services) in a fresh state folder and uploads
COUNT engines at once, a fixed mix: a quarter each of the C example engine, the threaded C engine
and the Go engine, the rest broken ones (wrong priority, never cancels, crashes mid-phase). Then,
with the same bounds, judges the C example engine once with ``quantcraft judge``'s code path
(the CLI's) for comparison. Prints:

- verdicts / judgings (a judging waiting for a quiet judge counts as none), and first-attempt
  verdicts (no step retry, no requeue);
- per judging: discarded trials, control runs, wall time of the judging step, phase C send-lag
  p99 of every counted trial (max);
- the CLI's phase C send-lag p99 and wall beside the pipeline's for the same engine and profile.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ENGINES = ROOT / "examples" / "engines" / "build"
CORRECT = ("engine", "threaded_engine", "go_engine")
BROKEN = ("lifo_priority", "never_cancel", "crash_mid_phase")


def mix(count: int) -> list[str]:
    """A quarter each of the correct engines, the rest broken, interleaved."""
    quarter = max(1, count // 4)
    engines = [e for e in CORRECT for _ in range(quarter)]
    engines += [BROKEN[i % len(BROKEN)] for i in range(count - len(engines))]
    order = sorted(range(count), key=lambda i: (i % 4, i))
    return [engines[i] for i in order]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=32)
    parser.add_argument("--profile", default="standard")
    parser.add_argument("--timeout", type=float, default=7200)
    args = parser.parse_args()
    os.environ["QUANTCRAFT_HOME"] = tempfile.mkdtemp(prefix="qc-verdicts-")
    os.environ["QUANTCRAFT_PROFILE"] = args.profile

    import dagster as dg

    from quantcraft_dagster import lifecycle, services
    from quantcraft_dagster.cli_stack import submit, wait_settled
    from quantcraft_dagster.judge import cpus

    cpus.background()
    engines = mix(args.count)
    svc = services.Services(port=3988, leaderboard_port=8988)
    svc.start()
    try:
        svc.wait_ready()
        for i, engine in enumerate(engines):
            submit(f"c{i:02d}-{engine.replace('_', '-')}", ENGINES / engine)
        wait_settled(args.count, args.timeout)
        time.sleep(5)  # the score record follows its judging's last stage by a moment
        with dg.DagsterInstance.from_config(str(services.dagster_home())) as instance:
            rows = judged(instance, lifecycle.states(instance))
    finally:
        svc.stop()
    report(rows, args.count)
    cli_baseline(args.profile, rows)


def judged(instance, states) -> list[dict]:
    """Per submission: its stage, attempts, and the verdict's figures (from the bucket)."""
    import dagster as dg
    import orjson

    from quantcraft_dagster import lifecycle, settings
    from quantcraft_dagster.core import keys
    from resources import BucketResource

    client = BucketResource.from_settings(settings.current()).client()
    rows = []
    for partition, state in sorted(states.items()):
        runs = instance.get_run_records(dg.RunsFilter(tags={"dagster/partition": partition}))
        retries = sum(
            len(instance.all_logs(r.dagster_run.run_id, of_type=dg.DagsterEventType.STEP_UP_FOR_RETRY))
            for r in runs
        )
        row = {"partition": partition, "stage": state.stage, "runs": len(runs), "retries": retries}
        if state.score:
            verdict = orjson.loads(
                client.get_bytes(keys.asset_value(lifecycle.VERDICT_ASSET.path, partition))
            )
            phases = verdict["phases"]
            row["discarded"] = sum(p.get("invalid_trials", {}).get("count", 0) for p in phases.values())
            row["control"] = verdict.get("control_interference") is not None
            row["lag"] = max((t["send_lag_p99_us"] or 0) for t in phases.get("C", {}).get("trials", [{}]))
        deploying = [
            r.timestamp
            for r in instance.fetch_observations(lifecycle.LIFECYCLE_ASSET, limit=10_000).records
            if r.partition_key == partition and r.asset_observation.metadata["stage"].value == "deploying"
        ]
        if state.score and deploying:
            row["wall"] = state.updated - deploying[-1]
        rows.append(row)
    return rows


def report(rows: list[dict], count: int) -> None:
    from quantcraft_dagster import lifecycle

    verdicts = [r for r in rows if "discarded" in r]
    first = [r for r in verdicts if r["runs"] == 1 and r["retries"] == 0]
    waiting = [r for r in rows if r["stage"] == lifecycle.WAITING]
    head = ("submission", "stage", "runs", "retry", "disc", "ctrl", "C lag", "wall")
    print(f"{head[0]:48} {head[1]:10} " + " ".join(f"{h:>6}" for h in head[2:]))
    nan = float("nan")
    for r in rows:
        cells = (r["runs"], r["retries"], r.get("discarded", "-"), "yes" if r.get("control") else "-")
        figures = f"{r.get('lag', nan):6.1f} {r.get('wall', nan):6.1f}"
        print(f"{r['partition']:48} {r['stage']:10} " + " ".join(f"{c:>6}" for c in cells) + f" {figures}")
    extra = sorted(r["discarded"] + r["control"] for r in verdicts) or [0]
    print(
        f"\nverdicts {len(verdicts)}/{count}, first attempt {len(first)}/{count}, waiting {len(waiting)};"
        f" discarded+control trials per judging median {statistics.median(extra)}, max {max(extra)};"
        f" phase C send-lag p99 max {max((r['lag'] for r in verdicts), default=float('nan')):.1f} µs"
    )
    walls = [r["wall"] for r in verdicts if "wall" in r and r["partition"].split("-", 2)[1] == "engine"]
    if walls:
        print(f"pipeline judging step, C example engine: median {statistics.median(walls):.1f} s")


def cli_baseline(profile: str, rows: list[dict]) -> None:
    """The CLI's judging of the C example engine, same bounds, right after the pipeline."""
    from quantcraft_dagster.judge.config import JudgeConfig
    from quantcraft_dagster.judge.judging import judge_binary

    start = time.monotonic()
    verdict = judge_binary(ENGINES / "engine", JudgeConfig(profile=profile)).verdict
    wall = time.monotonic() - start
    lag = max(t.send_lag_p99_us for t in verdict.trials["C"])
    print(f"CLI (judge_binary), C example engine: wall {wall:.1f} s, phase C send-lag p99 max {lag:.1f} µs")


if __name__ == "__main__":
    main()
