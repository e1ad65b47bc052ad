"""``quantcraft``: the command line for contestants and organisers."""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path

import orjson

from . import deploy, settings
from .core import trace
from .core.book import replay
from .core.protocol import decode_order, encode_order, encode_report
from .judge.replay import CLIENTS


def _official_scope(args: argparse.Namespace) -> tuple[bool, str | None]:
    """Whether the organiser asked for an official trace set (``--submission ID`` or ``--finals``),
    and whose: reproduced from the organisers' secret (settings), as the pipeline made it."""
    return bool(args.submission or args.finals), args.submission or None


def _add_official_scope(p: argparse.ArgumentParser) -> None:
    scope = p.add_mutually_exclusive_group()
    scope.add_argument(
        "--submission", metavar="ID", help="organisers: that judging's official trace (its partition key)"
    )
    scope.add_argument("--finals", action="store_true", help="organisers: the finals' official trace set")


def _cmd_trace(args: argparse.Namespace) -> int:
    spec = trace.get_spec(args.profile, args.phase)
    official, submission = _official_scope(args)
    if official:
        spec = trace.official(spec, settings.current().organisers_secret(), submission)
    out = open(args.out, "wb") if args.out else sys.stdout.buffer  # noqa: SIM115
    try:
        for order in trace.generate(spec):
            out.write(encode_order(order) + b"\n")
    finally:
        if args.out:
            out.close()
    return 0


def _cmd_expected(args: argparse.Namespace) -> int:
    out = sys.stdout.buffer
    with open(args.file, "rb") as fh:
        orders = (decode_order(line) for line in fh if line.strip())
        for report in replay(orders):
            out.write(encode_report(report) + b"\n")
    return 0


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


def _cmd_judge(args: argparse.Namespace) -> int:
    from .core.bundle import official_bundles
    from .judge.judging import InfrastructureError, JudgeConfig, judge_binary
    from .judge.slots import host_slots, take_slot

    configured = settings.current()
    binary = Path(args.binary)
    if not binary.is_file():
        what = "a directory" if binary.is_dir() else "not there"
        sys.stderr.write(f"quantcraft judge: {binary} is {what}; give the path of your engine's binary\n")
        return USAGE_ERROR
    if unbuilt := _unbuilt():
        sys.stderr.write(f"quantcraft judge: {unbuilt}\n")
        return USAGE_ERROR
    show = None if args.quiet else _progress_printer(sys.stderr)
    official, submission = _official_scope(args)
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
                verdicts.append(
                    judge_binary(binary, config, show, sandbox, bundles).verdict.to_obj()
                )
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


def _unbuilt() -> str | None:
    """What the judge needs that is not built, as a sentence naming the command that builds it."""
    from .judge import native_client

    needed = (settings.current().calibration_engines / "engine", native_client.BINARY)
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
            f" throughput {s['throughput']:.2f}, correctness {s['correctness']:.2f}; medians over trials)"
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


def _bucket():
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
        _bucket().put_stream(key, fh)
    return key


def _cmd_submit(args: argparse.Namespace) -> int:
    try:
        key = submit(args.contestant, Path(args.binary), args.name)
    except ValueError as exc:
        print(f"not uploaded: {exc}", file=sys.stderr)
        return 2
    print(f"uploaded {key} to {_bucket().describe()}")
    return 0


def _status_rows():
    from dagster import DagsterInstance

    from . import lifecycle, services
    from .core.standings import rank

    services.prepare()
    with DagsterInstance.from_config(str(services.dagster_home())) as instance:
        states = lifecycle.states(instance)
    table = rank(s.score for s in states.values() if s.score)
    return states, table


def _print_status(states, table, ui: str | None = None) -> None:
    print(f"{'submission':48} {'stage':18} {'final':>7}  reason")
    for p, st in sorted(states.items()):
        final = f"{st.score['final']:7.2f}" if st.score else "       "
        print(f"{p:48} {st.stage:18} {final}  {st.reason[:70]}")
    print(f"\n{'rank':>4}  {'contestant':24} {'final':>7} {'latency':>8} {'thruput':>8} {'correct':>8}")
    for s in table:
        b = s.best
        print(
            f"{s.rank:>4}  {s.contestant:24} {b['final']:7.2f} {b['latency']:8.2f} {b['throughput']:8.2f}"
            f" {b['correctness']:8.2f}"
        )
    if ui:
        print(f"\nDagster UI: {ui}  (assets: {ui}/assets, runs: {ui}/runs)")


def _cmd_deploy_init(args: argparse.Namespace) -> int:
    written = deploy.init_env(args.env_file)
    kept = len(deploy.SECRETS) - len(written)
    print(
        f"{args.env_file} (mode 0600): {len(written)} secret(s) generated"
        + (f", {kept} kept" if kept else "")
    )
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    states, table = _status_rows()
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


def _cmd_up(args: argparse.Namespace) -> int:
    from . import services
    from .judge import cpu_weight, cpus

    if unbuilt := _unbuilt():
        sys.stderr.write(f"quantcraft up: {unbuilt}\n")
        return USAGE_ERROR
    cpus.background()  # it polls the instance while engines are judged
    cpu_weight.place(cpu_weight.IDLE)  # and yields to judgings across sessions (never frozen)
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
    client = DagsterGraphQLClient(where.hostname, port_number=where.port, use_https=where.scheme == "https")
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
        job = defs.resolve_job_def(finals_job.name)
        return job.execute_in_process(run_config=run_config, instance=instance, raise_on_error=False).success


def _cmd_finals(args: argparse.Namespace) -> int:
    from .core.finals import FINAL_STANDINGS_KEY

    run_config = {"ops": {"final_standings": {"config": {"top": args.top, "repeat": args.repeat}}}}
    url = args.dagster_url or settings.current().dagster_url
    ok = _finals_on_stack(url, run_config) if _stack_running(url) else _finals_in_process(run_config)
    if not ok:
        print("the finals run failed; see its logs in the Dagster UI", file=sys.stderr)
        return 1
    value = orjson.loads(_bucket().get_bytes(FINAL_STANDINGS_KEY))
    if args.json:
        sys.stdout.buffer.write(orjson.dumps(value, option=orjson.OPT_INDENT_2) + b"\n")
    else:
        _print_finals(value)
    return 0


def _print_finals(value: dict) -> None:
    print(
        f"finals: top {value['top']} and ties, {value['repeat']} judgings each, round-robin"
        f" ({value['profile']} profile, official traces, {value['policy']} ranking)"
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


def _cmd_contestants(args: argparse.Namespace) -> int:
    from leaderboard_app import contestants

    try:
        token = contestants.add(_bucket(), args.name)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(f"contestant {args.name} added; upload token (shown once, stored hashed):\n{token}")
    return 0


def _cmd_worker(args: argparse.Namespace) -> int:
    from . import worker

    worker.run(args.name, args.loglevel, args.celery_args)
    return 0


WORKER_HELP = """\
Start this judge host's Celery worker: it takes judging runs from the queue that the control
host's Dagster daemon fills (CeleryRunLauncher, deploy/dagster-celery.yaml) and runs one
judging per slot, a slot being disjoint engine and load-generator CPUs of this host.

To add a judge host (Debian 12, as root):
  1. bash scripts/setup.sh                  # in a checkout of the same commit as the control host
  2. mkdir -p /opt/dagster/home && cp deploy/dagster-celery.yaml /opt/dagster/home/dagster.yaml
  3. export DAGSTER_HOME=/opt/dagster/home and the control host's settings (its .env):
       DAGSTER_PG_HOST DAGSTER_PG_PORT DAGSTER_PG_USER DAGSTER_PG_PASSWORD DAGSTER_PG_DB
       QUANTCRAFT_CELERY_BROKER QUANTCRAFT_CELERY_BACKEND   (redis://CONTROL-HOST:6379/0 and /1)
       QUANTCRAFT_BUCKET_BACKEND=s3 QUANTCRAFT_S3_ENDPOINT QUANTCRAFT_S3_BUCKET
       AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY QUANTCRAFT_OFFICIAL_SECRET QUANTCRAFT_PROFILE
  4. QUANTCRAFT_JUDGE_HOST=judge-07 .venv/bin/quantcraft worker --name judge-07
     (the host's name, unique: its slots' calibrations and its own queue go by it; default the
     machine's host name). The worker first calibrates each of its slots (about 10 s a slot),
     then takes runs from the judging queue and from its own queue (judging@judge-07: the hourly
     calibrations of its slots).
  5. on the control host, raise max_concurrent_runs and the judging pool's default_limit in its
     dagster.yaml to the new total of slots (every worker prints its slots at start), then
     restart the daemon.

This host's slots: QUANTCRAFT_JUDGE_CPUS (default: every online CPU) cut into slots of
QUANTCRAFT_CPUS_PER_SLOT CPUs (default 4: 2 engine + 2 load generator; a 2-core host has one slot
of 1 + 1). QUANTCRAFT_SLOTS_DIR (default /run/quantcraft/slots) holds one lock per CPU, taken by
every judging on this host, so even two workers on one host never share a CPU.

Arguments after "--" go to Celery's own worker command (celery worker --help), e.g.
  quantcraft worker --name judge-07 -- --without-heartbeat
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="quantcraft", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("trace", help="print a phase's orders as JSON Lines (the exact wire frames)")
    p.add_argument("--profile", default="quick", choices=sorted(trace.PROFILES))
    p.add_argument("--phase", required=True, choices=trace.PHASES)
    p.add_argument("--out", help="write to FILE instead of stdout")
    _add_official_scope(p)
    p.set_defaults(func=_cmd_trace)

    p = sub.add_parser("expected", help="reference reports for a trace file, JSON Lines")
    p.add_argument("file")
    p.set_defaults(func=_cmd_expected)

    p = sub.add_parser("judge", help="judge one engine binary locally, exactly as the platform does")
    p.add_argument("binary")
    p.add_argument("--profile", default="quick", choices=sorted(trace.PROFILES))
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--port", type=int, default=8080)
    p.add_argument(
        "--sandbox", default="bubblewrap", choices=["bubblewrap", "docker"],
        help="docker: the production sandbox (needs a Docker daemon and deploy/build-images.sh)",
    )  # fmt: skip
    p.add_argument(
        "--loadgen", default="native", choices=CLIENTS,
        help="the load generator's client (picows: the reference the native one is measured against)",
    )  # fmt: skip
    p.add_argument("--json", action="store_true", help="print one JSON verdict on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    _add_official_scope(p)
    p.set_defaults(func=_cmd_judge)

    p = sub.add_parser("up", help="start Dagster (webserver :3000, daemon) and the leaderboard (:8000)")
    p.add_argument("--port", type=int, default=3000, help="Dagster webserver port")
    p.add_argument("--leaderboard-port", type=int, default=8000)
    p.add_argument(
        "--demo", action="store_true", help="upload the example engines and wait for their verdicts"
    )
    p.add_argument("--exit", action="store_true", help="with --demo: stop the services once judged")
    p.add_argument("--timeout", type=float, default=600.0)
    p.set_defaults(func=_cmd_up)

    p = sub.add_parser("submit", help="upload a binary as submissions/<contestant>/<file>")
    p.add_argument("--contestant", required=True)
    p.add_argument("--name", help="file name in the bucket (default: the binary's)")
    p.add_argument("binary")
    p.set_defaults(func=_cmd_submit)

    p = sub.add_parser("contestants", help="manage contestants")
    csub = p.add_subparsers(dest="action", required=True)
    add = csub.add_parser("add", help="create a contestant and print its upload token")
    add.add_argument("name")
    add.set_defaults(func=_cmd_contestants)

    p = sub.add_parser(
        "worker",
        help="start a judge host's Celery worker (scale-out; see quantcraft worker --help)",
        description=WORKER_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--name", default="judge", help="worker name, unique per host; Celery adds @HOSTNAME (default: judge)"
    )
    p.add_argument("--loglevel", default="INFO", help="Celery's log level (default: INFO)")
    p.add_argument("celery_args", nargs=argparse.REMAINDER, help='after "--": arguments for celery worker')
    p.set_defaults(func=_cmd_worker)

    p = sub.add_parser(
        "finals",
        help="re-judge the top of the standings several times each and publish the final table",
        description="Re-judge the top N of the standings, plus everyone tied with them, R times each,"
        " round-robin, on the official traces; rank by the median final score with a 95 % bootstrap"
        " interval (= where the difference of two medians cannot be told from 0). Runs on the running"
        " stack (queued like a judging) when its webserver answers, otherwise in this process against"
        " the state folder's instance. The leaderboard shows the result as its final table.",
    )
    p.add_argument(
        "--top", type=int, default=10, help="finalists: the first N of the standings and their ties"
    )
    p.add_argument("--repeat", type=int, default=5, help="judgings per finalist (R)")
    p.add_argument("--dagster-url", help="the running stack's webserver (default: the settings')")
    p.add_argument("--json", action="store_true", help="print the final_standings value as JSON")
    p.set_defaults(func=_cmd_finals)

    p = sub.add_parser("deploy", help="production deployment (docker-compose.yml)")
    dsub = p.add_subparsers(dest="action", required=True)
    init = dsub.add_parser(
        "init",
        help="write the deployment's secrets to .env (mode 0600), fresh and random; keeps existing ones",
    )
    init.add_argument(
        "--env-file", type=Path, default=Path(".env"), help="default: .env here, beside docker-compose.yml"
    )
    init.set_defaults(func=_cmd_deploy_init)

    p = sub.add_parser("status", help="every submission's stage and score, and the standings")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_status)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
