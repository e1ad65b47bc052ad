"""Traces and expected reports, one static partition per profile and phase."""

import hashlib
from collections import Counter

import dagster as dg
import orjson

from quantcraft_dagster.core import trace
from quantcraft_dagster.core.book import ReferenceEngine
from quantcraft_dagster.core.protocol import decode_order, encode_report
from quantcraft_dagster.judge.judging import phase_bundle
from resources import BucketResource

TRACE_PARTITIONS = dg.StaticPartitionsDefinition(
    [f"{profile}-{phase}" for profile in trace.PROFILES for phase in trace.PHASES]
)


def split_partition(key: str) -> tuple[str, str]:
    profile, phase = key.rsplit("-", 1)
    return profile, phase


def trace_key(profile: str, phase: str) -> str:
    return f"traces/{profile}/{phase}.jsonl"


@dg.asset(partitions_def=TRACE_PARTITIONS, group_name="traces", kinds={"jsonl"})
def order_trace(context: dg.AssetExecutionContext, bucket: BucketResource) -> dg.MaterializeResult:
    """The phase's orders exactly as sent on the wire, one JSON object per line."""
    profile, phase = split_partition(context.partition_key)
    bundle = phase_bundle(profile, phase)
    data = b"".join(p + b"\n" for p in bundle.payloads)
    key = trace_key(profile, phase)
    bucket.client().put_bytes(key, data)
    spec = bundle.spec
    return dg.MaterializeResult(
        metadata={
            "key": key,
            "orders": len(bundle.payloads),
            "sha256": hashlib.sha256(data).hexdigest(),
            "symbols": len(spec.symbols),
            "connections": spec.connections,
            "seed": spec.seed,
            "types": dict(Counter(o.type for o in bundle.orders)),
        }
    )


@dg.asset(partitions_def=TRACE_PARTITIONS, deps=[order_trace], group_name="traces", kinds={"jsonl"})
def expected_reports(context: dg.AssetExecutionContext, bucket: BucketResource) -> dg.MaterializeResult:
    """The reference engine's report for every order of the stored trace, and the final books."""
    profile, phase = split_partition(context.partition_key)
    client = bucket.client()
    engine = ReferenceEngine()
    lines = []
    statuses: Counter[str] = Counter()
    for line in client.get_bytes(trace_key(profile, phase)).splitlines():
        report = engine.process(decode_order(line))
        statuses[report.status] += 1
        lines.append(encode_report(report) + b"\n")
    key = f"expected/{profile}/{phase}.jsonl"
    client.put_bytes(key, b"".join(lines))
    books = {s: {"bids": b, "asks": a} for s, (b, a) in engine.l2().items()}
    client.put_bytes(f"expected/{profile}/{phase}.books.json", orjson.dumps(books))
    return dg.MaterializeResult(metadata={"key": key, "reports": len(lines), "statuses": dict(statuses)})
