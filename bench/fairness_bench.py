"""Fairness figures of the judge (issue 7's goals), all in one run on this host.

    .venv/bin/python bench/fairness_bench.py [--repeat 5]

Prints:
1. the same binary (correct example engine) judged ``--repeat`` times on the quick profile: every
   final score and the spread (goal ≤ 1.0 point), with the discarded trials;
2. ``--standard`` (3) standard judgings: each one's final and the spread (goal ≤ 1.0 point); send
   lag p50/p99 in phase C at the standard rate (goal p99 ≤ 50 µs), the share of
   orders left out of the latency figures, and the corrected p99 against phase A's p99 in the same
   judging (goal within 3×);
3. the load generator's phase B ceiling (``trivial`` engine) against the correct engine's rate;
4. the standard judging's wall time with its trials (goal ≤ 25 s);
5. with ``--clearing N``: N rounds of an interleaved A/B, the slot's CPUs cleared of every other
   thread for timed trials (``judge.cpus.cleared``, the default) against not, every trial counted
   (no validity bounds) to see the raw figures: interference, how many trials the default bound
   would accept, and phase C's corrected p99. On a host with no CPU outside the slot (2 cores)
   nothing moves, and both sides measure the same thing;
6. with ``--budget N``: N judgings per profile with room for 40 re-runs: how many trials each discarded,
   and for re-run budgets of 4 to 16 how many of them would have finished (a judging stops at its
   budget's first excess) and the wall time they took.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from quantcraft_dagster.core.trace import get_spec  # noqa: E402
from quantcraft_dagster.core.trial import ValidityConfig  # noqa: E402
from quantcraft_dagster.judge.config import JudgeConfig  # noqa: E402
from quantcraft_dagster.judge.errors import InfrastructureError  # noqa: E402
from quantcraft_dagster.judge.judging import judge_binary  # noqa: E402

ENGINES = ROOT / "examples" / "engines" / "build"


def judged(config: JudgeConfig, name: str = "engine"):
    """The verdict, or None with the reason when the host could not give valid trials."""
    try:
        return judge_binary(ENGINES / name, config).verdict
    except InfrastructureError as exc:
        print(f"   judge failure (host too noisy to vouch for a trial): {str(exc)[:160]}")
        return None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--standard", type=int, default=3, metavar="N", help="standard judgings (2 + 4.)")
    parser.add_argument("--clearing", type=int, default=0, metavar="N", help="rounds of the A/B (5.)")
    parser.add_argument("--budget", type=int, default=0, metavar="N", help="judgings, re-run budget (6.)")
    args = parser.parse_args()
    quick, standard = JudgeConfig(profile="quick"), JudgeConfig(profile="standard")
    print(f"CPU split: engine {quick.engine_cpus}, load generator {quick.loadgen_cpus}")

    print(f"\n1. same binary, quick profile, {args.repeat} judgings")
    finals = []
    for i in range(args.repeat):
        v = judged(quick)
        if v is not None:
            finals.append(v.scores.final)
            lo, hi = v.scores_range["final"]
            invalid = sum(len(r) for r in v.invalid_trials.values())
            print(f"   {i + 1}: final {v.scores.final:7.3f} (trials {lo:.2f}–{hi:.2f}), {invalid} discarded")
    if finals:
        print(f"   spread {max(finals) - min(finals):.3f} points over {len(finals)} (goal ≤ 1.0)")

    rate = get_spec("standard", "C").rate
    print(f"\n2 + 4. {args.standard} standard judgings ({rate:,.0f} orders/s in phase C, 3 trials each)")
    finals = []
    for k in range(args.standard):
        start = time.perf_counter()
        v = judged(standard)
        wall = time.perf_counter() - start
        if v is None:
            continue
        finals.append(v.scores.final)
        c, a = v.phases["C"], v.phases["A"]
        print(f"   {k + 1}: final {v.scores.final:.3f}, wall {wall:.1f} s (goal ≤ 25 s)")
        print(
            f"     send lag p50 {c.send_lag_p50_us:.1f} µs, p99 {c.send_lag_p99_us:.1f} µs (goal p99 ≤ 50 µs)"
        )
        for i, t in enumerate(v.trials["C"]):
            print(
                f"     trial {i + 1}: send lag p99 {t.send_lag_p99_us:8.1f} µs, corrected {t.p99_us:8.1f} µs,"
                f" interference {t.interference:.2%}, left out {t.disturbed / t.orders:.2%}"
            )
        print(f"     discarded trials: {v.invalid_trials or 'none'}")
        print(
            f"     corrected p99 {c.p99_us:.1f} µs vs phase A p99 {a.p99_us:.1f} µs:"
            f" {c.p99_us / a.p99_us:.2f}× (goal ≤ 3×)"
        )
    if finals:
        print(f"   spread {max(finals) - min(finals):.3f} points over {len(finals)} (goal ≤ 1.0)")

    print("\n3. phase B: client ceiling (trivial engine) vs the correct engine")
    one = replace(standard, trials=1)
    for name in ("trivial", "engine"):
        tv = judged(one, name)
        if tv is not None:
            b = tv.phases["B"]
            flag = "client-limited" if b.client_limited else "engine-limited"
            print(
                f"   {name:8s} {b.orders_per_s:12,.0f} orders/s, client busy {b.client_busy:.2f} ({flag}),"
                f" engine CPU {b.cpu_us_per_order:.2f} µs/order"
            )

    if args.clearing:
        what = "5. slot CPUs cleared for timed trials (on) vs not"
        placement_ab(quick, "clear_slot_cpus", args.clearing, what)
    for config in (quick, standard) if args.budget else ():
        rerun_budget(config, args.budget)


def rerun_budget(config: JudgeConfig, judgings: int) -> None:
    print(f"\n6. re-run budget: {judgings} {config.profile} judgings, room for 40 re-runs")
    roomy = replace(config, validity=replace(config.validity, max_reruns=40))
    needed: list[tuple[int, float]] = []
    for i in range(judgings):
        start = time.perf_counter()
        v = judged(roomy)
        wall = time.perf_counter() - start
        if v is not None:
            reasons = [r.split(",")[0] for rs in v.invalid_trials.values() for r in rs]
            needed.append((len(reasons), wall))
            print(f"   {i + 1}: {len(reasons)} discarded in {wall:.0f} s {reasons[:3]}")
    for budget in (4, 8, 12, 16):
        done = [wall for n, wall in needed if n <= budget]
        walls = f", wall median {statistics.median(done):.0f} s, worst {max(done):.0f} s" if done else ""
        print(f"   budget {budget:2d}: {len(done)}/{judgings} finished{walls}")


def placement_ab(config: JudgeConfig, flag: str, rounds: int, what: str) -> None:
    """``rounds`` interleaved judgings with ``flag`` on and off, every trial counted (no validity
    bounds) to see the raw figures of phases B and C."""
    bound = ValidityConfig().max_interference
    print(f"\n{what}, {config.profile} profile, {rounds} interleaved rounds, every trial counted")
    raw = replace(
        config, validity=ValidityConfig(max_send_lag_p99_us=1e9, max_interference=1.0, max_rate_error=1.0)
    )
    trials: dict[bool, list] = {True: [], False: []}
    for _ in range(rounds):
        for on in (True, False):
            v = judged(replace(raw, **{flag: on}))
            if v is not None:
                trials[on] += [(p, t) for p in ("B", "C") for t in v.trials[p]]
    for on, ts in trials.items():
        if not ts:
            continue
        shares = [t.interference for _, t in ts if t.interference is not None]
        c_p99 = [t.p99_us for p, t in ts if p == "C" and t.p99_us is not None]
        lag = [t.send_lag_p99_us for p, t in ts if p == "C" and t.send_lag_p99_us is not None]
        print(
            f"   {'on ' if on else 'off'}: interference median {statistics.median(shares):.2%},"
            f" {sum(s <= bound for s in shares)}/{len(shares)} trials within the {bound:.1%} bound;"
            f" phase C p99 median {statistics.median(c_p99):,.0f} µs,"
            f" {sum(x < 100 for x in c_p99)}/{len(c_p99)} under 100 µs,"
            f" send-lag p99 median {statistics.median(lag):.1f} µs"
        )


if __name__ == "__main__":
    main()
