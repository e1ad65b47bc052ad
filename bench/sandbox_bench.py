"""The Docker sandbox against bubblewrap, in one run (issue 8's goals).

    .venv/bin/python bench/sandbox_bench.py [--starts 5] [--judgings 2] [--profile standard] [--run-container]

On a noisy host, relax the trial validity bounds for both backends with QUANTCRAFT_MAX_INTERFERENCE
and QUANTCRAFT_MAX_SEND_LAG_P99_US. Needs a Docker daemon and the sandbox image (``bash scripts/dockerd.sh``,
``bash deploy/build-images.sh``). Prints, for each backend:
1. start -> listening (the engine's own "listening" line) and stop, median and worst of ``--starts``;
2. a judging of the correct example engine, ``--judgings`` times, the backends interleaved
   (bubblewrap, docker, bubblewrap, ...): wall time, correctness, phase C corrected p99 per trial;
then the Docker/bubblewrap wall-time ratio (goal <= 1.3) and whether Docker's phase C p99 falls
within the range bubblewrap's own trials span (goal: the same engine measures the same).

``--run-container`` adds the production path, interleaved with the others: the judge itself in a
container made as DockerRunLauncher makes a judging's (``deploy/dagster.yaml``'s container_kwargs:
no capability, the Docker socket), from the project image, judging the engine compiled into it with
``quantcraft judge --sandbox docker`` (timed around the ``docker exec``; the run container's own
creation and its first build of the public traces are not the sandbox's cost, and left untimed).
There the judge sees neither the engines' processes nor their cgroups: everything goes through
the API and the probe.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import docker
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from quantcraft_dagster import settings  # noqa: E402
from quantcraft_dagster.judge.config import JudgeConfig  # noqa: E402
from quantcraft_dagster.judge.judging import docker_sandbox, judge_binary  # noqa: E402
from quantcraft_dagster.judge.sandbox import BubblewrapSandbox, Sandbox  # noqa: E402

ENGINE = ROOT / "examples" / "engines" / "build" / "engine"
IMAGE_ENGINE = "/opt/quantcraft/examples/engines/build/engine"  # deploy/Dockerfile compiles it in
RUN_CONTAINER = "run container"


class RunContainer:
    """A long-lived container with a DockerRunLauncher run container's settings, judging by exec."""

    def __init__(self, profile: str) -> None:
        launcher = yaml.safe_load((ROOT / "deploy" / "dagster.yaml").read_text())["run_launcher"]["config"]
        kwargs = {
            k: v for k, v in launcher["container_kwargs"].items() if k not in ("auto_remove", "stop_timeout")
        }
        self.client = docker.from_env()
        self.container = self.client.containers.run(
            "quantcraft/app:latest", ["sleep", "infinity"], detach=True, network_mode="none", **kwargs
        )
        # The bounds this bench was given reach the judge inside as they reach a run container.
        self.env = {k: v for k, v in os.environ.items() if k.startswith("QUANTCRAFT_MAX_")}
        # The public traces built once, untimed, as the other backends' judge host has them cached
        # (a Dagster run gets its official traces from the trace assets instead).
        warm = f"from quantcraft_dagster.judge.judging import public_bundles; public_bundles({profile!r})"
        code, out = self.container.exec_run(["python", "-c", warm])
        if code != 0:
            raise SystemExit(f"could not build the traces in the run container: {out[-2000:].decode()}")
        self.argv = [
            "quantcraft",
            "judge",
            IMAGE_ENGINE,
            "--sandbox",
            "docker",
            "--profile",
            profile,
            "--json",
        ]

    def judge(self) -> dict:
        """The verdict, as ``quantcraft judge --json`` prints it."""
        code, (out, err) = self.container.exec_run(self.argv, environment=self.env, demux=True)
        if code != 0:
            raise SystemExit(f"the judge in the run container exited {code}: {(err or b'')[-2000:].decode()}")
        return json.loads(out)

    def close(self) -> None:
        self.container.remove(force=True)


def sandboxes(config: JudgeConfig) -> dict[str, Sandbox]:
    return {
        "bubblewrap": BubblewrapSandbox(config.sandbox_limits()),
        "docker": docker_sandbox(config, settings.current().sandbox_image),
    }


def start_stop(sandbox: Sandbox, port: int) -> tuple[float, float]:
    """Seconds from start() to the engine's "listening" line, and for stop()."""
    begin = time.perf_counter()
    engine = sandbox.start(ENGINE, port)
    while "listening" not in engine.stderr.text(join_timeout=0):
        if time.perf_counter() - begin > 30:
            raise SystemExit(f"{type(sandbox).__name__}: the engine never listened")
        time.sleep(0.002)
    up = time.perf_counter() - begin
    begin = time.perf_counter()
    engine.stop()
    return up, time.perf_counter() - begin


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument("--judgings", type=int, default=2)
    parser.add_argument("--profile", default="standard")
    parser.add_argument("--run-container", action="store_true", help="add the judge in a run container")
    args = parser.parse_args()
    # The validity bounds from the settings: on a noisy host, QUANTCRAFT_MAX_INTERFERENCE and
    # QUANTCRAFT_MAX_SEND_LAG_P99_US relax them for both backends alike.
    config = JudgeConfig(profile=args.profile, validity=settings.current().validity())
    boxes = sandboxes(config)

    print(f"1. start -> listening, stop ({args.starts} engines of one judging each, median / worst:")
    print("   the first copies the binary in)")
    for name, box in boxes.items():
        runs = [start_stop(box, config.port) for _ in range(args.starts)]
        box.close()
        ups, downs = [r[0] for r in runs], [r[1] for r in runs]
        print(
            f"   {name:10s} start {statistics.median(ups):.3f} / {max(ups):.3f} s"
            f"   stop {statistics.median(downs):.3f} / {max(downs):.3f} s"
        )

    judges = {
        name: (lambda box=box: judge_binary(ENGINE, config, sandbox=box).verdict.to_obj())
        for name, box in boxes.items()
    }
    runner = RunContainer(args.profile) if args.run_container else None
    if runner is not None:
        judges[RUN_CONTAINER] = runner.judge
    print(f"2. {args.profile} judging of the correct engine, interleaved, {args.judgings} each")
    walls: dict[str, list[float]] = {name: [] for name in judges}
    c_p99: dict[str, list[float]] = {name: [] for name in judges}
    try:
        for _ in range(args.judgings):
            for name, judge in judges.items():
                begin = time.perf_counter()
                verdict = judge()
                walls[name].append(time.perf_counter() - begin)
                trials = [t["p99_us"] for t in verdict["phases"]["C"]["trials"]]
                c_p99[name].extend(trials)
                invalid = sum(p["invalid_trials"]["count"] for p in verdict["phases"].values())
                print(
                    f"   {name:13s} {walls[name][-1]:5.1f} s  status {verdict['status']}"
                    f"  correctness {verdict['scores']['correctness']:.1f}"
                    f"  C p99 per trial {', '.join(f'{p:.0f}' for p in trials)} us  invalid trials {invalid}"
                )
    finally:
        if runner is not None:
            runner.close()
    base = statistics.median(walls["bubblewrap"])
    low, high = min(c_p99["bubblewrap"]), max(c_p99["bubblewrap"])
    for name in judges:
        if name == "bubblewrap":
            continue
        ratio, p99 = statistics.median(walls[name]) / base, statistics.median(c_p99[name])
        inside = "inside" if low <= p99 <= high else "outside"
        print(f"3. {name} / bubblewrap wall time (medians): {ratio:.2f}x (goal <= 1.3x)")
        print(f"   its median C p99 {p99:.0f} us: {inside} bubblewrap's trials {low:.0f}-{high:.0f} us")


if __name__ == "__main__":
    main()
