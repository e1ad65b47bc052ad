"""Leaderboard benchmark (issue 4's goals), against a real instance and a uvicorn process.

    .venv/bin/python bench/leaderboard_bench.py [--submissions 10000] [--contestants 2000] [--clients 1000]

1. fills a fresh Dagster instance with score materializations (as the score asset writes them);
2. starts the app (``uvicorn --factory leaderboard_app.app:app_factory``) and times the rebuild,
   ``GET /api/leaderboard`` and ``GET /``;
3. connects N WebSocket clients, materializes one new score and prints how long each client took
   to receive it (p50/p99/max).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def score_event(partition: str, contestant: str, final: float):
    import dagster as dg

    from quantcraft_dagster import lifecycle

    meta = {"partition": partition, "contestant": contestant, "status": "finished", "reason": "ok",
            "final": final, "latency": final, "throughput": final, "correctness": 100.0,
            "uploaded_at": time.time(), "p99_us": 900.0, "orders_per_s": 150000.0}  # fmt: skip
    return dg.AssetMaterialization(asset_key=lifecycle.SCORE_ASSET, partition=partition, metadata=meta)


def get(url: str) -> float:
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=30) as resp:
        resp.read()
    return time.perf_counter() - start


async def clients(url: str, n: int, trigger) -> list[float]:
    import websockets

    conns = []
    for _ in range(n):
        ws = await websockets.connect(url, max_size=None, open_timeout=30)
        await ws.recv()  # init
        conns.append(ws)
    times: list[float] = []

    async def wait(ws):
        while True:
            msg = json.loads(await ws.recv())
            if msg["type"] == "final_score":
                times.append(time.perf_counter())
                return

    waiters = [asyncio.create_task(wait(ws)) for ws in conns]
    await asyncio.sleep(0.5)
    t0 = await asyncio.to_thread(trigger)
    await asyncio.wait_for(asyncio.gather(*waiters), 60)
    for ws in conns:
        await ws.close()
    return sorted(t - t0 for t in times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--submissions", type=int, default=10_000)
    parser.add_argument("--contestants", type=int, default=2_000)
    parser.add_argument("--clients", type=int, default=1_000)
    args = parser.parse_args()
    resource.setrlimit(resource.RLIMIT_NOFILE, (8192, 8192))
    import dagster as dg

    home = Path(tempfile.mkdtemp(prefix="qc-lb-bench-"))
    (home / "dagster").mkdir()
    (home / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    instance = dg.DagsterInstance.from_config(str(home / "dagster"))
    rng = random.Random(1)
    start = time.perf_counter()
    for i in range(args.submissions):
        who = f"c{i % args.contestants}"
        instance.report_runless_asset_event(score_event(f"{who}-{i}", who, rng.uniform(20, 99)))
    print(f"wrote {args.submissions:,} score materializations in {time.perf_counter() - start:.1f} s")

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = dict(os.environ, DAGSTER_HOME=str(home / "dagster"), QUANTCRAFT_HOME=str(home))
    start = time.perf_counter()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "uvicorn"), "--factory", "leaderboard_app.app:app_factory",
         "--port", str(port), "--log-level", "warning", "--timeout-graceful-shutdown", "5"],
        cwd=ROOT, env=env, preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (8192, 8192)),
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                get(f"{base}/api/leaderboard")
                break
            except OSError:
                time.sleep(0.2)
        print(f"app up with state rebuilt from the instance in {time.perf_counter() - start:.1f} s")
        api = sorted(get(f"{base}/api/leaderboard") for _ in range(20))
        page = sorted(get(f"{base}/") for _ in range(20))
        print(f"GET /api/leaderboard: median {api[10] * 1000:.0f} ms, max {api[-1] * 1000:.0f} ms")
        print(f"GET / (page): median {page[10] * 1000:.1f} ms")

        def trigger() -> float:
            instance.report_runless_asset_event(score_event("late-1", "late", 99.9))
            return time.perf_counter()

        delays = asyncio.run(clients(f"ws://127.0.0.1:{port}/ws", args.clients, trigger))
        p50, p99 = delays[len(delays) // 2], delays[int(len(delays) * 0.99) - 1]
        print(f"{len(delays):,} stream clients got the new score: p50 {p50 * 1000:.0f} ms, "
              f"p99 {p99 * 1000:.0f} ms, max {delays[-1] * 1000:.0f} ms (goal p99 ≤ 1000 ms)")  # fmt: skip
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
