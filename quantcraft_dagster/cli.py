"""``quantcraft``: the command line for contestants and organisers."""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path

import orjson

from .core import trace
from .core.book import replay
from .core.protocol import decode_order, encode_order, encode_report


def _cmd_trace(args: argparse.Namespace) -> int:
    spec = trace.get_spec(args.profile, args.phase)
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
    from .judge.judging import JudgeConfig, judge_binary

    config = JudgeConfig(profile=args.profile, port=args.port)
    show = None if args.quiet else _progress_printer(sys.stderr)
    verdicts = []
    for i in range(args.repeat):
        if args.repeat > 1 and show:
            sys.stderr.write(f"judging {i + 1} of {args.repeat}\n")
        verdicts.append(judge_binary(Path(args.binary), config, progress=show).verdict.to_obj())
    result = verdicts[0] if args.repeat == 1 else _with_spread(verdicts)
    if args.json:
        sys.stdout.buffer.write(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
    else:
        _print_human(result)
    return 0


def _with_spread(verdicts: list[dict]) -> dict:
    """The last verdict plus, per figure, min/max/spread over the repeats."""
    result = dict(verdicts[-1])
    spread: dict = {"scores": {}, "phases": {}}
    for key in ("latency", "throughput", "correctness", "final"):
        spread["scores"][key] = _spread([(v["scores"] or {}).get(key) for v in verdicts])
    for phase in result["phases"]:
        spread["phases"][phase] = {
            key: _spread([v["phases"][phase][key] for v in verdicts])
            for key in ("p50_us", "p90_us", "p99_us", "p999_us", "orders_per_s", "exact")
        }
    result["repeat"] = {
        "runs": len(verdicts),
        "statuses": [v["status"] for v in verdicts],
        "spread": spread,
    }
    return result


def _print_human(v: dict) -> None:
    print(f"status: {v['status']}\nreason: {v['reason']}")
    if v["scores"]:
        s = v["scores"]
        print(
            f"score:  {s['final']:.2f}  (latency {s['latency']:.2f}, throughput {s['throughput']:.2f},"
            f" correctness {s['correctness']:.2f})"
        )
    for name, p in v["phases"].items():
        print(
            f"phase {name}: {p['exact']}/{p['orders']} exact, p50 {p['p50_us']} µs, p99 {p['p99_us']} µs,"
            f" p99.9 {p['p999_us']} µs, {p['orders_per_s']} orders/s"
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="quantcraft", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("trace", help="print a phase's orders as JSON Lines (the exact wire frames)")
    p.add_argument("--profile", default="quick", choices=sorted(trace.PROFILES))
    p.add_argument("--phase", required=True, choices=trace.PHASES)
    p.add_argument("--out", help="write to FILE instead of stdout")
    p.set_defaults(func=_cmd_trace)

    p = sub.add_parser("expected", help="reference reports for a trace file, JSON Lines")
    p.add_argument("file")
    p.set_defaults(func=_cmd_expected)

    p = sub.add_parser("judge", help="judge one engine binary locally, exactly as the platform does")
    p.add_argument("binary")
    p.add_argument("--profile", default="quick", choices=sorted(trace.PROFILES))
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--json", action="store_true", help="print one JSON verdict on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(func=_cmd_judge)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
