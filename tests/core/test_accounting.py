"""The load generator's bookkeeping, without an engine: which order each frame answers."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from quantcraft_dagster.core.accounting import MAX_KEPT_ERRORS, Frame, account
from quantcraft_dagster.core.protocol import MAX_FRAME_BYTES

IDS = [f"O-{i}" for i in range(6)]
CONN_OF = [0, 1, 0, 1, 0, 1]  # two connections, three orders each
SENT = [100, 100, 200, 200, 300, 300]


def report(order_id: str) -> bytes:
    return orjson.dumps({"order_id": order_id, "status": "RESTING", "fills": []})


def frame(t: int, conn: int, payload: bytes, **kw) -> Frame:
    return Frame(t, conn, payload, **kw)


def run(frames: list[Frame], failures=(None, None), sent=SENT):
    return account(CONN_OF, IDS, sent, frames, list(failures))


def test_reports_in_order_answer_their_orders():
    frames = [frame(1000 + s, CONN_OF[s], report(IDS[s])) for s in range(6)]
    out = run(frames)
    assert out.recv_ns == [1000 + s for s in range(6)]
    assert out.received == [report(i) for i in IDS]
    assert not out.errors and not out.tainted and not out.missing_reasons


def test_unknown_order_taints_the_oldest_awaited():
    out = run([frame(150, 0, report("NOPE-1"))])
    assert out.tainted == {0: "report for unknown order 'NOPE-1'"}
    assert out.error_count == 1 and "unknown order 'NOPE-1'" in out.errors[0]


def test_report_on_another_connection_is_unknown_there():
    out = run([frame(150, 1, report("O-0"))])
    assert out.tainted == {1: "report for unknown order 'O-0'"}
    assert out.recv_ns[0] == 0


def test_extra_report_taints_the_next_awaited():
    out = run([frame(150, 0, report("O-0")), frame(250, 0, report("O-0"))])
    assert out.recv_ns[0] == 150
    assert out.tainted == {2: "extra report for order 'O-0'"}


def test_report_before_its_order_was_sent():
    out = run([frame(150, 0, report("O-0")), frame(160, 0, report("O-2"))])
    assert out.recv_ns[2] == 0
    assert "before it was sent" in out.errors[0]


def test_frame_without_an_order_id_answers_the_oldest_awaited():
    out = run([frame(150, 0, b"not json")])
    assert out.recv_ns[0] == 150 and out.received[0] == b"not json"
    assert "frame without an order_id (order seq 0)" in out.errors[0]


def test_binary_frame_counts_as_an_empty_report():
    out = run([frame(150, 0, report("O-0"), opcode=2)])
    assert out.received[0] == b""
    assert "binary or fragmented frame" in out.errors[0]


def test_fragmented_text_frame_counts_as_an_empty_report():
    out = run([frame(150, 0, report("O-0"), fin=False)])
    assert out.received[0] == b""


def test_frame_over_64_kib():
    big = b"x" * (MAX_FRAME_BYTES + 1)
    out = run([frame(150, 0, big, declared=200_000)])
    assert out.received[0] == big
    assert "frame of 200000 bytes over the 64 KiB limit" in out.errors[0]


def test_unsolicited_frame_when_nothing_is_awaited():
    out = run([frame(50, 0, b"hello")])
    assert out.recv_ns == [0] * 6 and not out.tainted
    assert "unsolicited frame" in out.errors[0]


def test_missing_reports_carry_the_connections_failure():
    out = run([frame(150, 0, report("O-0"))], failures=("engine closed the connection", None),
              sent=[100, 100, 200, 200, 0, 300])  # fmt: skip
    assert out.missing_reasons == {
        1: "no report received",
        2: "engine closed the connection",
        3: "no report received",
        4: "never sent: engine closed the connection",
        5: "no report received",
    }


def test_kept_errors_are_bounded_and_all_counted():
    out = run([frame(50, 0, b"x")] * (MAX_KEPT_ERRORS + 10))
    assert out.error_count == MAX_KEPT_ERRORS + 10 and len(out.errors) == MAX_KEPT_ERRORS


@given(st.permutations(range(6)), st.integers(0, 5))
def test_any_arrival_order_answers_each_order_once(order, extra_at):
    """Reports may come in any order across and within connections (an engine that reorders is
    judged wrong by the checker, not lost here); an extra report never takes another's place."""
    frames = [frame(1000 + k, CONN_OF[s], report(IDS[s])) for k, s in enumerate(order)]
    again = order[extra_at]
    frames.insert(extra_at + 1, frame(1000 + extra_at, CONN_OF[again], report(IDS[again])))
    out = run(frames)
    assert all(out.recv_ns) and out.received == [report(i) for i in IDS]
    assert out.error_count == 1 and "extra report" in out.errors[0]
