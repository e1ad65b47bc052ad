"""What the judge and its load generator hand each other: the plan of a phase, the raw replay a
client recorded, and the result the judge checks.

The judge pickles a :class:`LoadPlan` to the load generator process (``judge.loadgen``), which
replays it with one of two clients — the native ``qcload`` (default) or the picows reference —
each recording a :class:`Replay`: send stamps and received frames, nothing decided. The load
generator then assigns frames to orders (``core.accounting``) and pickles a :class:`LoadResult`
back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..core import protocol
from ..core.accounting import Frame
from ..core.trial import Sample

CLIENTS = ("native", "picows")
"""The load generator's clients: ``native`` times the phases; ``picows`` is the reference it is
measured against (``bench/loadgen_bench.py``)."""


@dataclass(slots=True)
class LoadPlan:
    """Everything the load generator needs for one phase; pickled to it by the judge."""

    phase: str
    port: int
    payloads: list[bytes]
    order_ids: list[str]
    conn_of: list[int]
    connections: int
    window: int = 1
    rate: float | None = None
    book_symbols: list[str] = field(default_factory=list)
    cpus: list[int] = field(default_factory=list)
    health_timeout_s: float = protocol.HEALTH_TIMEOUT_S
    health_interval_s: float = protocol.HEALTH_INTERVAL_S
    report_timeout_s: float = protocol.REPORT_TIMEOUT_S
    time_limit_s: float = protocol.PHASE_TIME_LIMIT_S
    client: str = "native"
    # A timed phase: the engine's CPUs, sampled at the replay's edges and, in an open loop,
    # between sends (``judge.interference``); the files listing its processes when the replay
    # starts (bubblewrap: its cgroup's), or else its uid, whose processes are its alone in the pid
    # namespace the load generator shares with it (the Docker sandbox's probe:
    # ``interference.EngineOfUid``); and the file of every task's CPU time per CPU, where the
    # load generator can read it (``interference.USAGE_FILE``).
    engine_cpus: list[int] = field(default_factory=list)
    engine_procs: list[str] = field(default_factory=list)
    engine_uid: int | None = None
    usage_file: str | None = None


@dataclass(slots=True)
class Replay:
    """What a client recorded over one replay: stamps and frames, in the order received.

    ``intended_ns`` is each order's due time in an open loop (empty in a closed one: an order is
    due when sent); ``failures`` says per connection why the client gave up on it, if it did.
    ``cpu_s`` and ``run_delay_s`` are the client's own CPU time and its time runnable but
    waiting for a CPU, over ``wall_s``: together near ``wall_s``, the client set the pace."""

    intended_ns: list[int]
    sent_ns: list[int]
    frames: list[Frame]
    failures: list[str | None]
    cpu_s: float
    run_delay_s: float
    wall_s: float
    peak_rss_bytes: int = 0
    stall_samples: list[Sample] = field(default_factory=list)


@dataclass(slots=True)
class LoadResult:
    healthy: bool
    health_wait_s: float
    health_error: str | None = None
    intended_ns: list[int] = field(default_factory=list)
    sent_ns: list[int] = field(default_factory=list)
    recv_ns: list[int] = field(default_factory=list)
    received: list[bytes | None] = field(default_factory=list)
    missing_reasons: dict[int, str] = field(default_factory=dict)
    tainted: dict[int, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    error_count: int = 0
    books: dict[str, Any] = field(default_factory=dict)
    peak_rss_bytes: int = 0
    # The load generator's own CPU time, and the time it waited, runnable, for its CPU (other
    # work there), over the wall time of the replay: together near 1.0 means the client, not the
    # engine, set the pace (phase B's "client-limited"), however busy its CPU was.
    cpu_s: float = 0.0
    run_delay_s: float = 0.0
    wall_s: float = 0.0
    # The share of the replay in which other work kept the engine off its CPUs
    # (``core.trial.replay_interference``); None: not measured (an untimed phase).
    interference: float | None = None
    # Open loop: the engine's CPUs sampled between sends (``interference.StallWatch.samples``);
    # none when the engine started threads the watch did not see.
    stall_samples: list[Sample] = field(default_factory=list)
    watched_cpus: int = 0
    client: str = "native"
