"""Verdicts per judging through the embedded stack, at the bounds the product ships (issue 18).

    .venv/bin/python bench/verdict_bench.py [--count 32] [--profile standard] [--compose]

Starts the embedded default (``quantcraft up``'s services) in a fresh state folder and uploads
COUNT engines at once, a fixed mix: a quarter each of the C example engine, the threaded C engine
and the Go engine, the rest broken ones (wrong priority, never cancels, crashes mid-phase). Then,
with the same bounds, judges the C example engine once with ``quantcraft judge``'s code path
(the CLI's) for comparison. Prints:

- verdicts / judgings (a judging waiting for a quiet judge counts as none), and first-attempt
  verdicts (no step retry, no requeue);
- per judging: discarded trials, control runs, phase C send-lag p99 of every counted trial (max),
  the wall time of its judging step (the judge's work on the official traces, the CLI's work on
  the public ones) and of the whole judging (from "deploying" to its verdict and score, with the
  official traces generated for it, which the CLI does not need);
- the CLI's phase C send-lag p99 and wall beside the pipeline's for the same engine and profile;
- this host's floor under any send lag: the send-lag p99 a sender perfect but for the moments its
  CPU is taken from it (interrupts, the hypervisor) would have at phase C's rate, measured by a
  loop that only reads the clock on the load generator's CPU (``host_floor``).

``--compose``: the production path instead, docker-compose with the offline override (images from
``bash deploy/build-images.sh offline``; secrets from ``quantcraft deploy init``) under a throwaway
project: the uploads go through its S3 endpoint, DockerRunLauncher runs judge them through the
Docker sandbox. Also prints the run containers alive while runs waited in the queue and their
CPU time, and what ``docker-compose down`` left behind.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
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
    parser.add_argument("--compose", action="store_true", help="the compose stack, not the embedded one")
    args = parser.parse_args()
    os.environ["QUANTCRAFT_HOME"] = tempfile.mkdtemp(prefix="qc-verdicts-")
    os.environ["QUANTCRAFT_PROFILE"] = args.profile

    from quantcraft_dagster.judge import cpus

    cpus.background()
    engines = mix(args.count)
    rows = compose(args, engines) if args.compose else embedded(args, engines)
    report(rows, args.count)
    cli_baseline(args.profile, rows)
    host_floor(args.profile)


def embedded(args: argparse.Namespace, engines: list[str]) -> list[dict]:
    import dagster as dg

    from quantcraft_dagster import lifecycle, services, settings
    from quantcraft_dagster.cli_stack import submit, wait_settled
    from resources import BucketResource

    svc = services.Services(port=3988, leaderboard_port=8988)
    svc.start()
    try:
        svc.wait_ready()
        for i, engine in enumerate(engines):
            submit(f"c{i:02d}-{engine.replace('_', '-')}", ENGINES / engine)
        wait_settled(args.count, args.timeout)
        time.sleep(5)  # the score record follows its judging's last stage by a moment
        with dg.DagsterInstance.from_config(str(services.dagster_home())) as instance:
            bucket = BucketResource.from_settings(settings.current()).client()  # the embedded folder
            return judged(instance, lifecycle.states(instance), bucket)
    finally:
        svc.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def compose(args: argparse.Namespace, engines: list[str]) -> list[dict]:
    """The production stack under a throwaway project, as an organiser starts it."""
    import dagster as dg
    import docker

    from quantcraft_dagster import lifecycle
    from quantcraft_dagster.storage.bucket import S3Bucket

    home = Path(os.environ["QUANTCRAFT_HOME"])
    env_file = home / ".env"
    quantcraft = [sys.executable, "-m", "quantcraft_dagster.cli"]
    subprocess.run([*quantcraft, "deploy", "init", "--env-file", str(env_file)], check=True)
    ports = {name: free_port() for name in ("DAGSTER_PG_PORT", "QUANTCRAFT_S3_PORT", "QUANTCRAFT_WEB_PORT")}
    ports["QUANTCRAFT_LEADERBOARD_PORT"] = free_port()
    with env_file.open("a") as fh:
        fh.write(f"QUANTCRAFT_PROFILE={args.profile}\n")
        fh.writelines(f"{name}={port}\n" for name, port in ports.items())
    stack = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
    name = f"qcbench{uuid.uuid4().hex[:6]}"
    files = ["-f", str(ROOT / "docker-compose.yml"), "-f", str(ROOT / "deploy" / "compose.offline.yml")]
    cmd = ["docker-compose", *files, "-p", name, "--env-file", str(env_file)]
    client = docker.from_env()
    subprocess.run([*cmd, "up", "-d"], check=True, cwd=ROOT)
    try:
        bucket = S3Bucket(
            "quantcraft",
            f"http://127.0.0.1:{stack['QUANTCRAFT_S3_PORT']}",
            access_key=stack["QUANTCRAFT_S3_ACCESS_KEY"],
            secret_key=stack["QUANTCRAFT_S3_SECRET_KEY"],
        )
        os.environ.update(
            QUANTCRAFT_BUCKET_BACKEND="s3",
            QUANTCRAFT_S3_ENDPOINT=f"http://127.0.0.1:{stack['QUANTCRAFT_S3_PORT']}",
            AWS_ACCESS_KEY_ID=stack["QUANTCRAFT_S3_ACCESS_KEY"],
            AWS_SECRET_ACCESS_KEY=stack["QUANTCRAFT_S3_SECRET_KEY"],
            DAGSTER_PG_HOST="127.0.0.1",
            DAGSTER_PG_PORT=stack["DAGSTER_PG_PORT"],
            DAGSTER_PG_PASSWORD=stack["DAGSTER_PG_PASSWORD"],
            DAGSTER_PG_USER="dagster",
            DAGSTER_PG_DB="dagster",
        )
        dagster_home = home / "dagster"
        dagster_home.mkdir()
        shutil.copy(ROOT / "deploy" / "dagster.yaml", dagster_home / "dagster.yaml")
        for i, engine in enumerate(engines):
            bucket.put_bytes(
                f"submissions/c{i:02d}-{engine.replace('_', '-')}/engine", (ENGINES / engine).read_bytes()
            )
        runs_label = {"label": f"com.docker.compose.project={name}"}
        waiting_containers, deadline = [], time.monotonic() + args.timeout
        with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
            model = lifecycle.ReadModel(instance)
            while True:
                model.poll()
                queued = instance.get_runs_count(dg.RunsFilter(statuses=[dg.DagsterRunStatus.QUEUED]))
                started = instance.get_runs_count(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
                runs = [c for c in client.containers.list(filters=runs_label) if "dagster/run_id" in c.labels]
                if queued:
                    waiting_containers.append((queued, started, len(runs)))
                settled = [s for s in model.states.values() if lifecycle.settled(s)]
                if len(settled) >= len(engines) or time.monotonic() > deadline:
                    break
                time.sleep(5)
            time.sleep(5)
            rows = judged(instance, lifecycle.states(instance), bucket)
        most = max(waiting_containers, default=(0, 0, 0), key=lambda w: w[0])
        print(
            f"while runs waited in the queue: at most {most[0]} queued beside {most[1]} started,"
            f" {most[2]} run containers alive (a queued run has none: it costs no CPU)"
        )
    finally:
        subprocess.run([*cmd, "down", "-v", "-t", "5"], cwd=ROOT, capture_output=True)
    left = client.containers.list(all=True, filters={"label": f"com.docker.compose.project={name}"})
    print(f"after docker-compose down: {len(left)} containers of the project left {[c.name for c in left]}")
    return rows


def judged(instance, states, client) -> list[dict]:
    """Per submission: its stage, attempts, and the verdict's figures (from the bucket ``client``)."""
    import dagster as dg
    import orjson

    from quantcraft_dagster import lifecycle
    from quantcraft_dagster.core import keys

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
            row["step"] = judging_step_s(instance, runs[0].dagster_run.run_id)
        rows.append(row)
    return rows


def judging_step_s(instance, run_id: str) -> float:
    """The wall time of a run's judging step, from its event log: from its first start to its
    success, so a step the judge retried counts its every attempt and the waits between them."""
    import dagster as dg

    kinds = {dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS}
    events = [
        e
        for e in instance.all_logs(run_id, of_type=kinds)
        if e.dagster_event and e.dagster_event.step_key == "judging"
    ]
    starts = [e.timestamp for e in events if e.dagster_event.event_type == dg.DagsterEventType.STEP_START]
    ends = [e.timestamp for e in events if e.dagster_event.event_type == dg.DagsterEventType.STEP_SUCCESS]
    return ends[-1] - starts[0] if starts and ends else float("nan")


def report(rows: list[dict], count: int) -> None:
    from quantcraft_dagster import lifecycle

    verdicts = [r for r in rows if "discarded" in r]
    first = [r for r in verdicts if r["runs"] == 1 and r["retries"] == 0]
    waiting = [r for r in rows if r["stage"] == lifecycle.WAITING]
    head = ("submission", "stage", "runs", "retry", "disc", "ctrl", "C lag", "step", "wall")
    print(f"{head[0]:48} {head[1]:10} " + " ".join(f"{h:>6}" for h in head[2:]))
    nan = float("nan")
    for r in rows:
        cells = (r["runs"], r["retries"], r.get("discarded", "-"), "yes" if r.get("control") else "-")
        figures = " ".join(f"{r.get(k, nan):6.1f}" for k in ("lag", "step", "wall"))
        print(f"{r['partition']:48} {r['stage']:10} " + " ".join(f"{c:>6}" for c in cells) + f" {figures}")
    extra = sorted(r["discarded"] + r["control"] for r in verdicts) or [0]
    print(
        f"\nverdicts {len(verdicts)}/{count}, first attempt {len(first)}/{count}, waiting {len(waiting)};"
        f" discarded+control trials per judging median {statistics.median(extra)}, max {max(extra)};"
        f" phase C send-lag p99 max {max((r['lag'] for r in verdicts), default=float('nan')):.1f} µs"
    )
    example = [r for r in verdicts if "wall" in r and r["partition"].split("-", 2)[1] == "engine"]
    if example:
        step, wall = (statistics.median(r[k] for r in example) for k in ("step", "wall"))
        print(f"pipeline, C example engine: judging step median {step:.1f} s, whole judging {wall:.1f} s")


def cli_baseline(profile: str, rows: list[dict]) -> None:
    """The CLI's judging of the C example engine, same bounds, right after the pipeline."""
    from quantcraft_dagster.judge.config import JudgeConfig
    from quantcraft_dagster.judge.judging import judge_binary

    start = time.monotonic()
    verdict = judge_binary(ENGINES / "engine", JudgeConfig(profile=profile)).verdict
    wall = time.monotonic() - start
    lag = max(t.send_lag_p99_us for t in verdict.trials["C"])
    print(f"CLI (judge_binary), C example engine: wall {wall:.1f} s, phase C send-lag p99 max {lag:.1f} µs")


def host_floor(profile: str, seconds: float = 5.0) -> None:
    """The send lag no load generator can beat here. A loop that only reads the clock, in the
    foreground on the load generator's CPU, sees every moment the CPU was taken from it as a gap
    between two reads; an order due in a gap is sent when it ends at the earliest."""
    import numpy as np

    from quantcraft_dagster.core.trace import get_spec
    from quantcraft_dagster.judge.config import JudgeConfig
    from quantcraft_dagster.judge.cpus import placed

    rate = get_spec(profile, "C").rate or 1.0
    gaps: list[tuple[int, int]] = []
    clock = time.perf_counter_ns
    with placed(JudgeConfig().loadgen_cpus):
        start = prev = clock()
        end = start + int(seconds * 1e9)
        while prev < end:
            now = clock()
            if now - prev > 1_000:
                gaps.append((prev, now))
            prev = now
    period = 1e9 / rate
    due = start + np.arange(int(seconds * rate)) * period
    lag = np.zeros(len(due))
    for a, b in gaps:  # the orders due inside the gap, by bisection: due is sorted
        inside = slice(np.searchsorted(due, a, "right"), np.searchsorted(due, b, "left"))
        lag[inside] = b - due[inside]
    lost = sum(b - a for a, b in gaps) / (end - start)
    print(
        f"host floor on the load generator's CPU: {len(gaps) / seconds:.0f} gaps/s over 1 µs,"
        f" {lost:.2%} of its time; a perfect sender at {rate:,.0f} orders/s: send-lag p99"
        f" {np.percentile(lag, 99) / 1e3:.1f} µs, p99.9 {np.percentile(lag, 99.9) / 1e3:.1f} µs"
    )


if __name__ == "__main__":
    main()
