"""``quantcraft judge``: a contestant's self-judging, the same judge as the pipeline's, and how its
verdict is printed; the helpers every command shares (official scope, usage errors, a judge not
built yet).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path

import orjson

from . import settings


def official_scope(args: argparse.Namespace) -> tuple[bool, str | None]:
    """Whether the organiser asked for an official trace set (``--submission ID`` or ``--finals``),
    and whose: reproduced from the organisers' secret (settings), as the pipeline made it."""
    return bool(args.submission or args.finals), args.submission or None


def add_official_scope(p: argparse.ArgumentParser) -> None:
    scope = p.add_mutually_exclusive_group()
    scope.add_argument(
        "--submission", metavar="ID", help="organisers: that judging's official trace (its partition key)"
    )
    scope.add_argument("--finals", action="store_true", help="organisers: the finals' official trace set")


def _progress_printer(stream):
    """Live counter on a terminal; one line per event otherwise (logs, CI)."""
    live = stream.isatty()
    finished: set[str] = set()

    def show(phase: str, done: int, total: int, note: str) -> None:
        if note:
            stream.write(f"{chr(13) if live else ''}phase {phase}: {note}\n")
        elif live:
            stream.write(f"\rphase {phase}: {done:>9,}/{total:,} orders")
        if done >= total and phase not in finished:
            finished.add(phase)
            stream.write(f"{chr(13) if live else ''}phase {phase}: {done:,}/{total:,} orders\n")
        stream.flush()

    return show


def _spread(values: list[float | None]) -> dict[str, float | None]:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if len(finite) < len(values) or not finite:
        return {"min": None, "max": None, "spread": None, "stdev": None}
    return {
        "min": min(finite),
        "max": max(finite),
        "spread": round(max(finite) - min(finite), 3),
        "stdev": round(statistics.pstdev(finite), 3),
    }


def cmd_judge(args: argparse.Namespace) -> int:
    from .core.bundle import official_bundles
    from .core.scoring import preset
    from .judge.config import JudgeConfig
    from .judge.errors import InfrastructureError
    from .judge.judging import judge_binary
    from .judge.slots import host_slots, take_slot

    configured = settings.current()
    binary = Path(args.binary)
    if not binary.is_file():
        what = "a directory" if binary.is_dir() else "not there"
        sys.stderr.write(f"quantcraft judge: {binary} is {what}; give the path of your engine's binary\n")
        return USAGE_ERROR
    if missing := unbuilt():
        sys.stderr.write(f"quantcraft judge: {missing}\n")
        return USAGE_ERROR
    show = None if args.quiet else _progress_printer(sys.stderr)
    official, submission = official_scope(args)
    bundles = None  # judge_binary's default: the profile's public traces
    if official:
        bundles = official_bundles(args.profile, configured.organisers_secret(), submission)
    verdicts = []
    # A judging slot like any other judging on this host (a worker's, `quantcraft up`'s): it waits
    # for one, and no other judging shares its CPUs or takes its engine for a dead judging's.
    slots = host_slots(configured.judge_cpus, configured.cpus_per_slot)
    with take_slot(configured.slots_dir, slots) as slot:
        config = JudgeConfig(
            profile=args.profile,
            port=args.port,
            validity=configured.validity(),
            scoring=preset(args.scoring),
            engine_cpus=slot.engine_cpus,
            loadgen_cpus=slot.loadgen_cpus,
            loadgen_client=args.loadgen,
        )
        sandbox = None  # judge_binary's default: bubblewrap
        if args.sandbox == "docker":
            from .judge.judging import docker_sandbox

            sandbox = docker_sandbox(config, configured.sandbox_image)
        try:
            for i in range(args.repeat):
                if args.repeat > 1 and show:
                    sys.stderr.write(f"judging {i + 1} of {args.repeat}\n")
                verdicts.append(judge_binary(binary, config, show, sandbox, bundles).verdict.to_obj())
        except InfrastructureError as exc:
            sys.stderr.write(_judge_failure(exc))
            return JUDGE_FAILURE
    result = verdicts[0] if args.repeat == 1 else _with_spread(verdicts)
    if args.json:
        sys.stdout.buffer.write(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
    else:
        _print_human(result)
    return 0


# `quantcraft judge`'s exit status when the judge, not the engine, failed: no verdict was made.
JUDGE_FAILURE = 3


USAGE_ERROR = 2  # argparse's own


def _judge_failure(exc: Exception) -> str:
    """What a contestant reads when this host was too busy for the judge to vouch for a trial."""
    return (
        f"judge failure, not a verdict on the engine: {exc}\n"
        "Other work on this host kept taking the judge's or the engine's CPUs, trial after trial, so"
        " the judge could not vouch for a trial (see 'Trials, medians and ties' in"
        " docs/contestant-guide.md). Nothing was judged wrong: run it again when the machine is quieter.\n"
    )


def unbuilt() -> str | None:
    """What the judge needs that is not built, as a sentence naming the command that builds it."""
    from .judge import native_client, tail

    needed = (settings.current().calibration_engines / "engine", native_client.BINARY, tail.PROGRAM)
    missing = [str(p) for p in needed if not p.exists()]
    if not missing:
        return None
    return (
        f"the judge's own programs are not built ({', '.join(missing)}): run `bash scripts/setup.sh`"
        " (or `make -C examples/engines && make -C quantcraft_dagster/judge/native`)"
    )


def _with_spread(verdicts: list[dict]) -> dict:
    """The last verdict plus, per figure, min/max/spread over the repeats."""
    result = dict(verdicts[-1])
    spread: dict = {"scores": {}, "phases": {}}
    for key in ("latency", "throughput", "correctness", "final"):
        spread["scores"][key] = _spread([(v["scores"] or {}).get(key) for v in verdicts])
    for phase in result["phases"]:
        spread["phases"][phase] = {
            key: _spread([v["phases"][phase][key] for v in verdicts])
            for key in ("p50_us", "p90_us", "p99_us", "p999_us", "send_lag_p99_us", "orders_per_s", "exact")
        }
    result["repeat"] = {
        "runs": len(verdicts),
        "statuses": [v["status"] for v in verdicts],
        "spread": spread,
    }
    return result


def _print_human(v: dict) -> None:
    print(f"status: {v['status']}\nreason: {v['reason']}\ntraces: {v['traces']} ({v['profile']} profile)")
    if v["scores"]:
        s, (lo, hi) = v["scores"], v["scores_range"]["final"]
        print(
            f"score:  {s['final']:.2f} ± {(hi - lo) / 2:.2f}  (latency {s['latency']:.2f},"
            f" throughput {s['throughput']:.2f}, correctness {s['correctness']:.2f};"
            f" best trial's latency and rate; {v['scoring']} scoring)"
        )
    for name, p in v["phases"].items():
        rate = f"{'≥ ' if p['client_limited'] else ''}{p['orders_per_s']} orders/s"
        cpu = f", engine CPU {p['cpu_us_per_order']} µs/order" if p["cpu_us_per_order"] is not None else ""
        held = f", {p['disturbed']} held up by the host or judge" if p.get("disturbed") else ""
        print(
            f"phase {name}: {p['exact']}/{p['orders']} exact, p50 {p['p50_us']} µs, p99 {p['p99_us']} µs"
            f" (service p99 {p['service_p99_us']} µs, send lag p99 {p['send_lag_p99_us']} µs{held}),"
            f" {rate}{cpu};"
            f" {len(p['trials'])} trial(s), {p['invalid_trials']['count']} discarded"
        )
    if v.get("book_match") is not None:
        print(
            f"final book: {'matches' if v['book_match'] else 'differs: ' + '; '.join(v['book_problems'][:3])}"
        )
    for d in v["divergences"][:3]:
        print(f"divergence: phase {d['phase']} order {d['order_id']}: {d['reason']}")
    if "repeat" in v:
        final = v["repeat"]["spread"]["scores"]["final"]
        print(f"repeat: {v['repeat']['runs']} runs, final score spread {final['spread']}")
