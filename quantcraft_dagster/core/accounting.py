"""Which order each frame an engine sent answers: the load generator's bookkeeping, after the fact.

The load generator's hot path (native ``qcload`` or the picows reference client) only stamps:
every order's send time and every frame it received, with its connection and receive time. This
module decides, from that log alone, what each frame was — the report of an order, an extra or
unknown report, a malformed frame — exactly as the contract says (``docs/protocol.md`` section 6),
so the rules can be tested without an engine and both clients share them.

A connection's orders are sent in order; at a frame's receive time, the orders of its connection
sent by then are known from their send stamps. A frame that names no order it may answer taints
the oldest order the connection still waits for: that order counts as wrong, and the reason says
why. Sans-I/O in the manner of ``websockets.protocol``: frames in, decisions out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import orjson

from .protocol import MAX_FRAME_BYTES

MAX_KEPT_ERRORS = 50
TEXT = 1  # RFC 6455 opcode of a text frame


@dataclass(frozen=True, slots=True)
class Frame:
    """One data frame as the load generator received it. ``declared`` is the length its header
    gave; ``payload`` holds at most ``MAX_FRAME_BYTES + 1`` bytes of it."""

    recv_ns: int
    conn: int
    payload: bytes
    opcode: int = TEXT
    fin: bool = True
    declared: int | None = None


@dataclass(slots=True)
class Accounted:
    """Per order (indexed by seq): when its report arrived (0: never), the report, and why an
    order without one has none; the protocol errors seen, the first ``MAX_KEPT_ERRORS`` kept."""

    recv_ns: list[int]
    received: list[bytes | None]
    missing_reasons: dict[int, str] = field(default_factory=dict)
    tainted: dict[int, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    error_count: int = 0

    def error(self, text: str) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_KEPT_ERRORS:
            self.errors.append(text)


class _Conn:
    """A connection's orders (seqs, in send order) and how far the replay got with them."""

    __slots__ = ("index", "n_sent", "oldest", "sent", "seqs")

    def __init__(self, index: int, seqs: list[int], sent: Sequence[int]) -> None:
        self.index, self.seqs = index, seqs
        self.sent = [sent[s] for s in seqs]
        self.n_sent = 0  # orders sent by the frame being looked at
        self.oldest = 0  # index into seqs of the oldest order not yet answered

    def advance_to(self, t: int) -> None:
        sent = self.sent
        while self.n_sent < len(sent) and 0 < sent[self.n_sent] <= t:
            self.n_sent += 1


def account(
    conn_of: Sequence[int],
    order_ids: Sequence[str],
    sent_ns: Sequence[int],
    frames: Iterable[Frame],
    failures: Sequence[str | None],
) -> Accounted:
    """Assign ``frames`` (in the order received) to orders. ``failures``: per connection, why the
    load generator gave up on it (None: it did not), the reason an unanswered order carries."""
    n = len(conn_of)
    owned: list[list[int]] = [[] for _ in failures]
    for seq, c in enumerate(conn_of):
        owned[c].append(seq)
    conns = [_Conn(i, seqs, sent_ns) for i, seqs in enumerate(owned)]
    seq_of = {oid: i for i, oid in enumerate(order_ids)}
    out = Accounted([0] * n, [None] * n)
    recv = out.recv_ns
    for frame in frames:
        conn = conns[frame.conn]
        conn.advance_to(frame.recv_ns)
        answered, report = _answered_seq(out, conn, frame, seq_of, conn_of, sent_ns)
        if answered is None:
            continue
        seq = answered
        recv[seq] = frame.recv_ns
        out.received[seq] = report
        seqs = conn.seqs
        while conn.oldest < conn.n_sent and recv[seqs[conn.oldest]]:
            conn.oldest += 1
    for seq in range(n):
        if not recv[seq]:
            reason = failures[conn_of[seq]] or "no report received"
            out.missing_reasons[seq] = reason if sent_ns[seq] else f"never sent: {reason}"
    return out


def _answered_seq(
    out: Accounted,
    conn: _Conn,
    frame: Frame,
    seq_of: dict[str, int],
    conn_of: Sequence[int],
    sent_ns: Sequence[int],
) -> tuple[int | None, bytes]:
    """The order ``frame`` answers (None: none, and an error is recorded) and its report as
    checked: a frame that is not one text frame stands as an empty, so wrong, report."""
    declared = len(frame.payload) if frame.declared is None else frame.declared
    problem = None
    order_id = None
    if frame.opcode != TEXT or not frame.fin:
        problem = "binary or fragmented frame (text frames only)"
    elif declared > MAX_FRAME_BYTES:
        problem = f"frame of {declared} bytes over the 64 KiB limit"
    else:
        order_id = _order_id(frame.payload)
    if order_id is not None:
        seq = seq_of.get(order_id)
        if seq is None or conn_of[seq] != conn.index:
            _taint(out, conn, f"report for unknown order {order_id[:40]!r}")
            return None, b""
        if out.recv_ns[seq]:
            _taint(out, conn, f"extra report for order {order_id!r}")
            return None, b""
        if not 0 < sent_ns[seq] <= frame.recv_ns:
            _taint(out, conn, f"report for {order_id!r} before it was sent")
            return None, b""
        return seq, frame.payload
    if conn.oldest >= conn.n_sent:
        out.error(f"conn {conn.index}: unsolicited frame {frame.payload[:60]!r}")
        return None, b""
    seq = conn.seqs[conn.oldest]
    out.error(f"conn {conn.index}: {problem or 'frame without an order_id'} (order seq {seq})")
    return seq, frame.payload if frame.opcode == TEXT and frame.fin else b""


def _taint(out: Accounted, conn: _Conn, text: str) -> None:
    """A stray frame makes the order the connection is waiting for count as wrong."""
    out.error(f"conn {conn.index}: {text}")
    if conn.oldest < conn.n_sent:
        out.tainted.setdefault(conn.seqs[conn.oldest], text)


def _order_id(payload: bytes) -> str | None:
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    order_id = obj.get("order_id") if isinstance(obj, dict) else None
    return order_id if isinstance(order_id, str) else None
