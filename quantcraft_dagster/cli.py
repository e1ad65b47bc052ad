"""``quantcraft``: the command line for contestants and organisers.

The judge's command and its output are in ``cli_judge``; the platform's (up, status, submit,
finals) in ``cli_stack``; here, the parser and the small commands.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import deploy, settings
from .cli_judge import add_official_scope, cmd_judge, official_scope
from .cli_stack import bucket, cmd_finals, cmd_status, cmd_submit, cmd_up
from .core import protocol, trace
from .core.book import replay
from .core.protocol import decode_order, encode_order, encode_report
from .core.scoring import PRESETS
from .judge.replay import CLIENTS


def _cmd_trace(args: argparse.Namespace) -> int:
    spec = trace.get_spec(args.profile, args.phase)
    official, submission = official_scope(args)
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


def _cmd_deploy_init(args: argparse.Namespace) -> int:
    written = deploy.init_env(args.env_file)
    kept = len(deploy.SECRETS) - len(written)
    print(
        f"{args.env_file} (mode 0600): {len(written)} secret(s) generated"
        + (f", {kept} kept" if kept else "")
    )
    return 0


def _cmd_contestants(args: argparse.Namespace) -> int:
    from leaderboard_app import contestants

    try:
        token = contestants.add(bucket(), args.name)
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
       QUANTCRAFT_SCORING
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
    add_official_scope(p)
    p.set_defaults(func=_cmd_trace)

    p = sub.add_parser("expected", help="reference reports for a trace file, JSON Lines")
    p.add_argument("file")
    p.set_defaults(func=_cmd_expected)

    p = sub.add_parser("judge", help="judge one engine binary locally, exactly as the platform does")
    p.add_argument("binary")
    p.add_argument("--profile", default="quick", choices=sorted(trace.PROFILES))
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--port", type=int, default=protocol.PORT)
    p.add_argument(
        "--sandbox", default="bubblewrap", choices=["bubblewrap", "docker"],
        help="docker: the production sandbox (needs a Docker daemon and deploy/build-images.sh)",
    )  # fmt: skip
    p.add_argument(
        "--loadgen", default="native", choices=CLIENTS,
        help="the load generator's client (picows: the reference the native one is measured against)",
    )  # fmt: skip
    p.add_argument(
        "--scoring", default=settings.current().scoring, choices=list(PRESETS),
        help="the scoring preset (docs/scoring.md); default: QUANTCRAFT_SCORING, else the contest's",
    )  # fmt: skip
    p.add_argument("--json", action="store_true", help="print one JSON verdict on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    add_official_scope(p)
    p.set_defaults(func=cmd_judge)

    p = sub.add_parser("up", help="start Dagster (webserver :3000, daemon) and the leaderboard (:8000)")
    p.add_argument("--port", type=int, default=3000, help="Dagster webserver port")
    p.add_argument("--leaderboard-port", type=int, default=8000)
    p.add_argument(
        "--demo", action="store_true", help="upload the example engines and wait for their verdicts"
    )
    p.add_argument("--exit", action="store_true", help="with --demo: stop the services once judged")
    p.add_argument("--timeout", type=float, default=600.0)
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("submit", help="upload a binary as submissions/<contestant>/<file>")
    p.add_argument("--contestant", required=True)
    p.add_argument("--name", help="file name in the bucket (default: the binary's)")
    p.add_argument("binary")
    p.set_defaults(func=cmd_submit)

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
    p.set_defaults(func=cmd_finals)

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
    p.set_defaults(func=cmd_status)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
