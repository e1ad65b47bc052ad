"""The raw telemetry: one row per order of every counted run, its schema spelled here once.

The judge fills it as trials count (:class:`Telemetry`); the ``telemetry`` asset stores it as
Parquet with :data:`TELEMETRY_SCHEMA`; the metrics asset reads it back with DuckDB.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pyarrow as pa

from .bundle import PhaseBundle
from .verdict import PhaseOutcome

TELEMETRY_SCHEMA = pa.schema(
    [
        ("phase", pa.string()),
        ("trial", pa.int8()),
        ("connection", pa.int16()),
        ("seq", pa.int32()),
        ("order_id", pa.string()),
        ("intended_ns", pa.int64()),
        ("sent_ns", pa.int64()),
        ("recv_ns", pa.int64()),
        ("status", pa.string()),
        ("exact", pa.bool_()),
        ("disturbed", pa.bool_()),
    ]
)
TELEMETRY_COLUMNS = tuple(TELEMETRY_SCHEMA.names)


@dataclass(slots=True)
class Telemetry:
    """Per-order rows of one judging, column-wise."""

    columns: dict[str, list] = field(default_factory=lambda: {k: [] for k in TELEMETRY_COLUMNS})

    def add(
        self,
        phase: str,
        trial: int,
        bundle: PhaseBundle,
        stamps: tuple[Sequence[int], Sequence[int], Sequence[int]],
        outcome: PhaseOutcome,
    ) -> None:
        """One counted run: ``stamps`` are its intended, sent and received times per order (empty:
        the run never replayed, every time 0)."""
        n = len(bundle.orders)
        checked, disturbed = outcome.check, outcome.disturbed
        zeros = [0] * n
        cols = self.columns
        cols["phase"] += [phase] * n
        cols["trial"] += [trial] * n
        cols["connection"] += [bundle.spec.connection_of(o.symbol) for o in bundle.orders]
        cols["seq"] += list(range(n))
        cols["order_id"] += [o.order_id for o in bundle.orders]
        for name, values in zip(("intended_ns", "sent_ns", "recv_ns"), stamps, strict=True):
            cols[name] += list(values) or zeros
        cols["status"] += checked.status
        cols["exact"] += checked.exact.tolist()
        cols["disturbed"] += disturbed.tolist() if disturbed is not None else [False] * n

    def __len__(self) -> int:
        return len(self.columns["seq"])

    def to_table(self) -> pa.Table:
        return pa.table(self.columns, schema=TELEMETRY_SCHEMA)
