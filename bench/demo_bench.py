"""``quantcraft up --demo`` on a fresh state folder, several times: who ranks where (issue 7).

    flock /tmp/qc-cpu.lock .venv/bin/python bench/demo_bench.py [--times 3]

Each round starts the embedded platform (Dagster webserver and daemon on SQLite, bubblewrap, the
leaderboard) in a new state folder, exactly as a new user's first command does, lets it judge the
three example engines on the standard profile (alice: correct; bob: never cancels; carol: LIFO
priority, same speed as alice, some wrong reports) and prints the standings under both ranking
policies with each final's range over trials: ``correct_first`` (the default, what the board
shows) and ``composite`` (the seed's formula alone), "=" marking entries tied within noise. The
last line counts the rounds in which alice ranked first under ``correct_first``.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from quantcraft_dagster.core.scoring import RANKING_POLICIES, RankingConfig  # noqa: E402
from quantcraft_dagster.core.standings import rank  # noqa: E402

QUANTCRAFT = Path(sys.executable).parent / "quantcraft"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def one_round(home: Path, timeout_s: float) -> list[dict]:
    """The score records of a fresh ``up --demo`` (the services stop once it has judged)."""
    env = {**os.environ, "QUANTCRAFT_HOME": str(home)}
    up = [str(QUANTCRAFT), "up", "--demo", "--exit", "--port", str(free_port()),
          "--leaderboard-port", str(free_port())]  # fmt: skip
    subprocess.run(up, env=env, check=True, timeout=timeout_s, stdout=subprocess.DEVNULL)
    status = subprocess.run(
        [str(QUANTCRAFT), "status", "--json"], env=env, check=True, capture_output=True, timeout=120
    )
    return [row["score"] for row in orjson.loads(status.stdout)["submissions"] if row["score"]]


def show(scores: list[dict], policy: str) -> str:
    rows = []
    for s in rank(scores, RankingConfig(policy=policy)):
        b = s.best
        lo, hi = b.get("final_range") or (b["final"], b["final"])
        place = f"={s.rank}" if s.tied else f"{s.rank}"
        rows.append(
            f"     {place:>3} {s.contestant:6} final {b['final']:6.2f} ± {(hi - lo) / 2:4.2f}  correctness"
            f" {b['correctness']:6.2f}  latency {b['latency']:6.2f}  throughput {b['throughput']:6.2f}"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--times", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=1200.0, help="per round, seconds")
    args = parser.parse_args()
    alice_first = 0
    for i in range(args.times):
        with tempfile.TemporaryDirectory(prefix="qc-demo-") as home:
            start = time.perf_counter()
            scores = one_round(Path(home), args.timeout)
            print(f"round {i + 1}: {len(scores)} verdicts in {time.perf_counter() - start:.0f} s")
        for policy in RANKING_POLICIES:
            print(f"   {policy}:\n{show(scores, policy)}")
        board = rank(scores, RankingConfig())
        alice_first += bool(board) and board[0].contestant == "alice" and not board[0].tied
    print(f"alice (correct) ranked first, alone, under correct_first in {alice_first} of {args.times} rounds")


if __name__ == "__main__":
    main()
