"""The platform's commands: ``quantcraft up`` (and its demo), ``status``, ``submit``, ``finals``."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import orjson

from . import settings
from .cli_judge import USAGE_ERROR, unbuilt


def bucket():
    from .storage.bucket import from_settings

    return from_settings(settings.current())


def submit(contestant: str, binary: Path, name: str | None = None) -> str:
    """Upload ``binary`` as ``submissions/<contestant>/<name>``; returns the key.

    The size and ELF-header rules the leaderboard applies refuse a wrong file before a byte is sent
    (``Rejected`` is a ValueError); the file then streams to the bucket in chunks, never read whole.
    """
    from .core import keys
    from .core.binary import HEADER_BYTES, check_header, check_size
    from .core.intake import parse_key

    key = keys.submission(contestant, name or binary.name)
    parse_key(key)
    with open(binary, "rb") as fh:
        check_size(os.fstat(fh.fileno()).st_size)
        check_header(fh.read(HEADER_BYTES))
        fh.seek(0)
        bucket().put_stream(key, fh)
    return key


def cmd_submit(args: argparse.Namespace) -> int:
    try:
        key = submit(args.contestant, Path(args.binary), args.name)
    except ValueError as exc:
        print(f"not uploaded: {exc}", file=sys.stderr)
        return 2
    print(f"uploaded {key} to {bucket().describe()}")
    return 0


def _status_rows():
    """Every submission's state and the standings, read from the state folder's instance, which
    is never written here; ({}, []) when there is no instance yet."""
    from dagster import DagsterInstance

    from . import lifecycle, services
    from .core.standings import rank

    home = services.dagster_home()
    if not (home / "dagster.yaml").exists():
        return {}, []
    with DagsterInstance.from_config(str(home)) as instance:
        states = lifecycle.states(instance)
    table = rank(s.score for s in states.values() if s.score)
    return states, table


def _print_status(states, table, ui: str | None = None) -> None:
    print(f"{'submission':48} {'stage':18} {'final':>7}  reason")
    for p, st in sorted(states.items()):
        final = f"{st.score['final']:7.2f}" if st.score else "       "
        print(f"{p:48} {st.stage:18} {final}  {st.reason[:70]}")
    print(f"\nscored on the {settings.current().scoring} preset (QUANTCRAFT_SCORING; docs/scoring.md)")
    print(
        f"{'rank':>4}  {'contestant':24} {'final':>7} {'latency':>8} {'thruput':>8} {'correct':>8}"
        f" {'p99 µs':>8} {'orders/s':>12} {'CPU µs/ord':>10}"
    )
    for s in table:
        b = s.best
        rate = f"{'≥' if b.get('client_limited') else ''}{b.get('orders_per_s') or 0:,.0f}"
        cpu = "–" if b.get("cpu_us_per_order") is None else f"{b['cpu_us_per_order']:.2f}"
        print(
            f"{s.rank:>4}  {s.contestant:24} {b['final']:7.2f} {b['latency']:8.2f} {b['throughput']:8.2f}"
            f" {b['correctness']:8.2f} {b.get('p99_us') or 0:8.1f} {rate:>12} {cpu:>10}"
        )
    if ui:
        print(f"\nDagster UI: {ui}  (assets: {ui}/assets, runs: {ui}/runs)")


def cmd_status(args: argparse.Namespace) -> int:
    from . import services

    states, table = _status_rows()
    if not (services.dagster_home() / "dagster.yaml").exists():
        print(f"no state folder at {settings.current().home}: nothing judged here yet", file=sys.stderr)
    if args.json:
        rows = [
            {
                "partition": p,
                "stage": st.stage,
                "score": st.score,
                "detail": st.detail,
                "failed_run": st.failed_run,
            }
            for p, st in sorted(states.items())
        ]
        sys.stdout.buffer.write(orjson.dumps({"submissions": rows}, option=orjson.OPT_INDENT_2) + b"\n")
    else:
        _print_status(states, table)
    return 0


def wait_settled(expected: int, timeout: float) -> dict:
    """Poll the instance until ``expected`` submissions are settled: judged, failed, or waiting
    for a quiet judge (or the timeout). One instance and one read model, which applies only the
    events written since its last poll: this process shares the judge's CPUs."""
    from dagster import DagsterInstance

    from . import lifecycle, services

    deadline = time.monotonic() + timeout
    with DagsterInstance.from_config(str(services.dagster_home())) as instance:
        model = lifecycle.ReadModel(instance)
        while True:
            model.poll()
            settled = [s for s in model.states.values() if lifecycle.settled(s)]
            if len(settled) >= expected or time.monotonic() > deadline:
                return model.states
            time.sleep(3)


DEMO_ENGINES = (("alice", "engine"), ("bob", "never_cancel"), ("carol", "lifo_priority"))


def cmd_up(args: argparse.Namespace) -> int:
    from . import services
    from .judge import cpus

    if missing := unbuilt():
        sys.stderr.write(f"quantcraft up: {missing}\n")
        return USAGE_ERROR
    svc = services.Services(port=args.port, leaderboard_port=args.leaderboard_port)
    try:
        with svc.supervised():  # SIGINT, SIGTERM, SIGHUP or a return: every service stops
            svc.wait_ready()
            print(f"Dagster webserver {svc.url} and daemon running; state in {settings.current().home}")
            print(f"Leaderboard {svc.leaderboard_url}")
            if args.demo:
                build = services.PROJECT / "examples" / "engines" / "build"
                before = len(_status_rows()[0])
                for contestant, variant in DEMO_ENGINES:
                    print(submit(contestant, build / variant, f"{variant}-engine"))
                print(f"judging the example engines ({settings.current().profile} profile)...")
                # The wait polls the instance while engines are judged: off the engines' CPUs and
                # SCHED_IDLE for it, then back to normal, so a signal is acted on at once however
                # busy the host (the services are SCHED_IDLE from their start: services.py).
                with cpus.in_background():
                    states = wait_settled(before + len(DEMO_ENGINES), timeout=args.timeout)
                _print_status(states, _status_rows()[1], svc.url)
                if args.exit:
                    return 0
            print("Ctrl-C (or SIGTERM, SIGHUP) stops every service.")
            while all(p.poll() is None for p in svc.procs.values()):
                time.sleep(1)
            return 1
    except KeyboardInterrupt:
        return 0


def _stack_running(url: str) -> bool:
    """Whether a Dagster webserver answers at ``url`` (``quantcraft up`` or the compose stack)."""
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url}/server_info", timeout=2):
            return True
    except OSError:
        return False


def _finals_on_stack(url: str, run_config: dict) -> bool:
    """Queue the ``finals`` job on the running stack: its daemon launches it when the judging pool
    is free, so the finals never share the judge's CPUs with a judging, and the run shows in the
    Dagster UI like every other."""
    from urllib.parse import urlsplit

    from dagster import DagsterRunStatus
    from dagster_graphql import DagsterGraphQLClient

    from assets.finals import finals_job

    where = urlsplit(url)
    client = DagsterGraphQLClient(
        where.hostname or "localhost", port_number=where.port, use_https=where.scheme == "https"
    )
    run_id = client.submit_job_execution(finals_job.name, run_config=run_config)
    print(f"finals queued as run {run_id}: {url}/runs/{run_id}", file=sys.stderr)
    done = (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED)
    while (status := client.get_run_status(run_id)) not in done:
        time.sleep(5)
    return status == DagsterRunStatus.SUCCESS


def _finals_in_process(run_config: dict) -> bool:
    """No stack running: the job in this process, against the embedded instance in the state
    folder (prepared as ``quantcraft up`` prepares it: a fresh calibration)."""
    from dagster import DagsterInstance

    from . import services

    os.environ.update(services.prepare_to_judge())  # the code location reads the services' environment
    from assets.finals import finals_job

    from .definitions import defs

    with DagsterInstance.from_config(str(services.dagster_home())) as instance:
        job = defs().resolve_job_def(finals_job.name)
        return job.execute_in_process(run_config=run_config, instance=instance, raise_on_error=False).success


def cmd_finals(args: argparse.Namespace) -> int:
    from .core import keys

    run_config = {"ops": {"finals_judgings": {"config": {"top": args.top, "repeat": args.repeat}}}}
    url = args.dagster_url or settings.current().dagster_url
    ok = _finals_on_stack(url, run_config) if _stack_running(url) else _finals_in_process(run_config)
    if not ok:
        print("the finals run failed; see its logs in the Dagster UI", file=sys.stderr)
        return 1
    value = orjson.loads(bucket().get_bytes(keys.FINAL_STANDINGS))
    if args.json:
        sys.stdout.buffer.write(orjson.dumps(value, option=orjson.OPT_INDENT_2) + b"\n")
    else:
        print_finals(value)
    return 0


def print_finals(value: dict) -> None:
    print(
        f"finals: top {value['top']} and ties, {value['repeat']} judgings each, round-robin"
        f" ({value['profile']} profile, official traces, {value['scoring']} scoring,"
        f" {value['policy']} ranking)"
    )
    print(f"{'rank':>5}  {'contestant':24} {'median':>7}  {'95 % interval':>15}  qualifying  finals")
    for r in value["standings"]:
        place = f"{'=' if r['tied'] else ''}{r['rank']}"
        interval = f"{r['ci'][0]:.2f}–{r['ci'][1]:.2f}"
        wrong = "" if r["fully_correct"] else "  (wrong reports)"
        finals = ", ".join(f"{x:.2f}" for x in r["finals"])
        print(
            f"{place:>5}  {r['contestant']:24} {r['median']:7.2f}  {interval:>15}  {r['qualifying_rank']:>10}"
            f"  {finals}{wrong}"
        )
