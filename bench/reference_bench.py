"""Reference engine benchmark: orders/s on the standard phase A trace, and a long streamed trace
in bounded memory.

    .venv/bin/python bench/reference_bench.py [--orders 10000000]

The long trace is generated and replayed as a stream (``generate`` → ``replay``), as
``quantcraft trace | quantcraft expected`` does; peak RSS is printed at checkpoints so a
plateau (bounded memory) is visible.
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from quantcraft_dagster.core.book import expected_reports, replay
from quantcraft_dagster.core.trace import generate, get_spec


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=10_000_000)
    args = parser.parse_args()

    phase_a_rate()

    spec = dataclasses.replace(get_spec("standard", "A"), orders=args.orders)
    start = time.perf_counter()
    checkpoint = max(1, args.orders // 10)
    for i, _ in enumerate(replay(generate(spec)), 1):
        if i % checkpoint == 0:
            elapsed = time.perf_counter() - start
            print(f"  {i:>11,} orders  {elapsed:7.1f} s  peak RSS {rss_mb():7.1f} MB")
    total = time.perf_counter() - start
    print(
        f"streamed {args.orders:,} orders (generate + reference) in {total:.1f} s, peak RSS {rss_mb():.1f} MB"
    )


def phase_a_rate() -> None:
    orders = list(generate(get_spec("standard", "A")))
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        expected_reports(orders)
        best = min(best, time.perf_counter() - start)
    rate = len(orders) / best
    print(f"reference engine, standard phase A: {rate:,.0f} orders/s ({best:.3f} s, goal ≤ 0.3 s)")


if __name__ == "__main__":
    main()
