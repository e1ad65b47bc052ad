"""Judging capacity of one slot through the whole scale-out pipeline, and what it means for a contest.

    .venv/bin/python bench/capacity_bench.py [--count 5] [--profiles quick standard]
        [--contestants 10000] [--submissions 3] [--max-send-lag-us 100]

Per profile: Debian's PostgreSQL, Redis and moto's S3 server, the control host (the Dagster
daemon with deploy/dagster-celery.yaml) and one ``quantcraft worker`` (this machine: one slot,
calibrated when the worker starts); COUNT copies of the correct example engine uploaded at once as
different contestants. The rate is taken between the first and the last score (the pipeline at
work, warm worker); upload → first score is shown apart. Baseline in the same run: the same
engine judged COUNT times by the judge alone (``judge_binary``, no Dagster, public traces of the
same profile), so the ratio is what Dagster, the queue and the bucket cost per judging.

Then the model: hosts × slots per host × the standard rate → hours for contestants × submissions
judgings. It assumes slots scale linearly, which this 2-core machine (one slot) cannot show.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from quantcraft_dagster.core import keys  # noqa: E402
from quantcraft_dagster.core.trial import ValidityConfig  # noqa: E402

HOSTS = (1, 10, 25, 50, 100)
SLOTS_PER_HOST = (1, 4, 8)  # 4, 16 and 32 cores at 4 CPUs per slot


def bare_rate(profile: str, count: int, validity: ValidityConfig) -> float:
    """Judgings per hour of the judge alone on this slot."""
    from quantcraft_dagster.judge.config import JudgeConfig
    from quantcraft_dagster.judge.judging import judge_binary

    config = JudgeConfig(profile=profile, validity=validity)
    engine = ROOT / "examples" / "engines" / "build" / "engine"
    start = time.monotonic()
    for _ in range(count):
        verdict = judge_binary(engine, config).verdict
        assert verdict.status == "finished", verdict.reason
    return 3600 * count / (time.monotonic() - start)


def pipeline_rate(
    profile: str, count: int, validity: ValidityConfig, pg_redis: dict[str, str], s3: str
) -> dict:
    """Upload ``count`` engines to a fresh cluster (database, bucket, Dagster homes) and time them."""
    import dagster as dg

    from quantcraft_dagster import lifecycle
    from tests import servers
    from tests.scale.cluster import Cluster, cluster_env

    database = f"bench_{profile}_{os.getpid()}"
    servers.create_database(pg_redis, database)
    root = Path(tempfile.mkdtemp(prefix=f"qc-capacity-{profile}-"))
    env = cluster_env({**pg_redis, "DAGSTER_PG_DB": database}, s3, root, profile)
    env["QUANTCRAFT_MAX_SEND_LAG_P99_US"] = str(validity.max_send_lag_p99_us)
    env["QUANTCRAFT_MAX_INTERFERENCE"] = str(validity.max_interference)
    cluster = Cluster(root, env)
    for name, value in env.items():
        if name.startswith("DAGSTER_PG_"):
            os.environ[name] = value
    try:
        cluster.start_control()
        cluster.start_worker("judge")
        engine = (ROOT / "examples" / "engines" / "build" / "engine").read_bytes()
        bucket = cluster.bucket()
        uploaded = time.time()
        for i in range(count):
            bucket.put_bytes(keys.submission(f"bench{i:02d}", "engine"), engine)
        with dg.DagsterInstance.from_config(str(cluster.control_home)) as instance:

            def scored() -> list[float] | None:
                records = instance.fetch_materializations(lifecycle.SCORE_ASSET, limit=1000).records
                return sorted(r.timestamp for r in records) if len(records) >= count else None

            times = servers.wait_for(scored, 120 + 120 * count, f"{count} {profile} scores", 2)
    finally:
        cluster.stop()
    return {
        "first": times[0] - uploaded,
        "rate": 3600 * (count - 1) / (times[-1] - times[0]),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=5)
    parser.add_argument("--profiles", nargs="+", default=["quick", "standard"])
    parser.add_argument("--contestants", type=int, default=10_000)
    parser.add_argument("--submissions", type=int, default=3)
    parser.add_argument(
        "--max-send-lag-us", type=float, default=100.0, help="trial validity bound (production: 100)"
    )
    parser.add_argument(
        "--max-interference", type=float, default=0.005, help="trial validity bound (production: 0.005)"
    )
    args = parser.parse_args()
    validity = ValidityConfig(
        max_send_lag_p99_us=args.max_send_lag_us, max_interference=args.max_interference
    )
    from tests import servers

    results = {}
    with servers.postgres() as pg, servers.redis() as redis, servers.moto_s3() as s3:
        for profile in args.profiles:
            bare = bare_rate(profile, args.count, validity)
            piped = pipeline_rate(profile, args.count, validity, {**pg, **redis}, s3)
            results[profile] = (bare, piped)
    print(f"\n{'profile':9} {'judge alone':>12} {'pipeline':>10} {'ratio':>6} {'upload→1st score':>17}")
    for profile, (bare, piped) in results.items():
        print(
            f"{profile:9} {bare:9.0f}/h {piped['rate']:7.0f}/h {piped['rate'] / bare:6.2f}"
            f" {piped['first']:15.1f} s"
        )
    profile = "standard" if "standard" in results else next(iter(results))
    rate = results[profile][1]["rate"]
    total = args.contestants * args.submissions
    print(f"\nmodel: {total:,} {profile} judgings at {rate:.0f}/h per slot → hours")
    print(f"{'hosts':>6} " + " ".join(f"{s:>3} slot{'s' if s > 1 else ' '}/host" for s in SLOTS_PER_HOST))
    for hosts in HOSTS:
        print(f"{hosts:6d} " + " ".join(f"{total / (rate * hosts * s):14.1f}" for s in SLOTS_PER_HOST))


if __name__ == "__main__":
    main()
