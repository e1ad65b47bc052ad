"""The native client: a plan out to ``qcload`` (``judge/native/qcload.c``), a :class:`Replay` back.

Both directions are flat binary layouts in anonymous memory files (``memfd``), handed to the
child as inherited descriptors: nothing touches a file system (the Docker sandbox's probe has a
read-only root), and the child, which drops to an unprivileged uid before it connects to the
engine, needs no access to anything but them. The layouts are defined here and in ``qcload.c``
alone; ``native/README.md`` draws them.
"""

from __future__ import annotations

import mmap
import os
import struct
import subprocess
from pathlib import Path

import numpy as np

from ..core.accounting import Frame
from .interference import STALL_SAMPLE_NS, WatchFiles
from .replay import LoadPlan, Replay

BINARY = Path(__file__).resolve().parent / "native" / "qcload"
LOADGEN_UID = 65533
"""The uid qcload replays as: not root, and not the engines' (65534), so an engine can neither
signal nor trace it."""
HANDSHAKE_TIMEOUT_S = 5.0

_HEADER = struct.Struct("<4s5Id4q4I2Q8s")
_RESULT_HEAD = struct.Struct("<6I4q")
_FAILURE_BYTES = 240
FRAME_DTYPE = np.dtype(
    [("recv_ns", "<i8"), ("offset", "<u8"), ("declared", "<u8"), ("stored", "<u4"),
     ("conn", "<u2"), ("opcode", "u1"), ("flags", "u1")]
)  # fmt: skip
SAMPLE_DTYPE = np.dtype(
    [("now", "<i8"), ("idle", "<i8"), ("ran", "<i8"), ("waited", "<i8"), ("tasks", "<i8")]
)


class NativeClientError(RuntimeError):
    """qcload is missing or failed: the judge's own failure, never the engine's."""


def encode_plan(plan: LoadPlan, watch: WatchFiles | None, progress: bool) -> bytes:
    """The plan in qcload's layout: header, each order's connection, payload end offsets, the
    payloads back to back, then the stall watch's file paths (NUL-terminated), the usage file's
    last when the header's mask names the engine's CPUs in it."""
    n = len(plan.payloads)
    ends = np.cumsum([len(p) for p in plan.payloads], dtype=np.uint64) if n else np.zeros(0, np.uint64)
    idle, tasks = (watch.idle, watch.tasks) if watch is not None else ((), ())
    usage = (watch.usage,) if watch is not None and watch.usage else ()
    mask = sum(1 << c for c in watch.cpus) if usage and watch is not None else 0
    header = _HEADER.pack(
        b"QCL2",
        n,
        plan.connections,
        0 if plan.rate else plan.window,
        plan.port,
        int(progress),
        float(plan.rate or 0.0),
        int(plan.report_timeout_s * 1e9),
        int(plan.time_limit_s * 1e9),
        STALL_SAMPLE_NS,
        int(HANDSHAKE_TIMEOUT_S * 1e9),
        len(idle),
        len(tasks),
        LOADGEN_UID,
        LOADGEN_UID,
        n,  # the masking keys' seed: any value; the phase's size, as the picows client uses
        mask,
        plan.phase.encode()[:8],
    )
    paths = b"".join(p.encode() + b"\0" for p in (*idle, *tasks, *usage))
    return b"".join(
        (header, np.asarray(plan.conn_of, dtype="<u4").tobytes(), ends.astype("<u8").tobytes(),
         *plan.payloads, paths)
    )  # fmt: skip


def decode_result(data: bytes | mmap.mmap, n_orders: int, n_conns: int) -> Replay:
    """The replay qcload wrote (``write_result`` in qcload.c)."""
    head = _RESULT_HEAD.unpack_from(data, 0)
    magic, n, conns, n_frames, n_samples, _tasks, cpu_ns, delay_ns, wall_ns, rss = head
    if magic != 0x32524351 or n != n_orders or conns != n_conns:
        raise NativeClientError(f"qcload wrote an unexpected result header {head[:3]}")
    pos = _RESULT_HEAD.size
    intended = np.frombuffer(data, "<i8", n, pos)
    sent = np.frombuffer(data, "<i8", n, pos + 8 * n)
    pos += 16 * n
    frames = np.frombuffer(data, FRAME_DTYPE, n_frames, pos)
    pos += FRAME_DTYPE.itemsize * n_frames
    samples = np.frombuffer(data, SAMPLE_DTYPE, n_samples, pos)
    pos += SAMPLE_DTYPE.itemsize * n_samples
    failures: list[str | None] = []
    for _ in range(n_conns):
        text = bytes(data[pos : pos + _FAILURE_BYTES]).split(b"\0", 1)[0].decode("utf-8", "replace")
        failures.append(text or None)
        pos += _FAILURE_BYTES
    (kept_len,) = struct.unpack_from("<Q", data, pos)
    kept = bytes(data[pos + 8 : pos + 8 + kept_len])
    return Replay(
        intended_ns=intended.tolist(),
        sent_ns=sent.tolist(),
        frames=[
            Frame(t, c, kept[o : o + s], op, bool(fl & 1), d)
            for t, c, o, s, op, fl, d in zip(
                frames["recv_ns"].tolist(),
                frames["conn"].tolist(),
                frames["offset"].tolist(),
                frames["stored"].tolist(),
                frames["opcode"].tolist(),
                frames["flags"].tolist(),
                frames["declared"].tolist(),
                strict=True,
            )
        ],
        failures=failures,
        cpu_s=cpu_ns / 1e9,
        run_delay_s=delay_ns / 1e9,
        wall_s=wall_ns / 1e9,
        peak_rss_bytes=rss,
        stall_samples=[
            (t, None if idle < 0 else idle, ran, waited, None if tasks < 0 else tasks)
            for t, idle, ran, waited, tasks in samples.tolist()
        ],
    )


def replay(plan: LoadPlan, watch: WatchFiles | None, progress: bool) -> Replay:
    """Run qcload over ``plan`` in this process's network namespace, on its CPUs and priority
    (inherited); its progress lines go to this process's stdout."""
    if not BINARY.exists():
        raise NativeClientError(f"{BINARY} is missing: build it with `make -C {BINARY.parent}`")
    plan_fd = os.memfd_create("qc-plan")
    result_fd = os.memfd_create("qc-result")
    try:
        with os.fdopen(os.dup(plan_fd), "wb") as fh:
            fh.write(encode_plan(plan, watch, progress))
        os.lseek(plan_fd, 0, os.SEEK_SET)
        proc = subprocess.run(
            [str(BINARY), str(plan_fd), str(result_fd)],
            pass_fds=(plan_fd, result_fd),
            stderr=subprocess.PIPE,
            check=False,
        )
        if proc.returncode != 0:
            why = proc.stderr.decode(errors="replace").strip()[-500:]
            raise NativeClientError(f"qcload exited with {proc.returncode}: {why}")
        size = os.fstat(result_fd).st_size
        with mmap.mmap(result_fd, size, prot=mmap.PROT_READ) as data:
            result = decode_result(data, len(plan.payloads), plan.connections)
        if not plan.rate:
            result.intended_ns = []  # a closed loop sends each order when it is due
        return result
    finally:
        os.close(plan_fd)
        os.close(result_fd)
