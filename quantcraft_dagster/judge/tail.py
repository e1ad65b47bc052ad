"""An engine's output tail: the last 64 KiB of its stdout and stderr, shown with its verdict.

Both sandboxes start an engine through ``qctail`` (``native/qctail.c``; at :data:`IN_SANDBOX`,
bound in by bubblewrap, built into the Docker sandbox's image): it drains the engine's output
through a pipe inside the sandbox, as the engine's uid, in its cgroup and on its CPUs, and hands
the judge the tail once, as the engine exits or is stopped. So a flooding engine pays for its own
output, alike in both sandboxes: read by the judge (a ``SCHED_IDLE`` thread beside the load
generator) a flood was throttled to the judge's pace, and streamed through the Docker daemon it
cost the daemon's CPU and went at the daemon's pace.

qctail also carries the stop: the judge sends SIGTERM to qctail alone, which passes it once to every
process of the engine (their uid, in a pid namespace where nothing else has it) and dumps the tail
half way through the grace period if the engine outlives it. The engine cannot end it: under
bubblewrap it is the pid namespace's init; under Docker, where the engine shares the probe's pid
namespace, it starts as root with only CAP_SETUID and CAP_SETGID, runs the engine as
:data:`~.sandbox.NOBODY` and keeps :data:`TAIL_UID` as its own real uid (``qctail.c`` says how).
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

from .errors import InfrastructureError

STDERR_TAIL_BYTES = 64 * 1024
PROGRAM = Path(__file__).resolve().parent / "native" / "qctail"
"""Built by ``scripts/setup.sh`` and the project image, like ``qcload``."""
IN_SANDBOX = "/opt/quantcraft/qctail"
"""Where an engine's sandbox has it: outside ``/app``, which holds the binary alone (the protocol)."""
TAIL_UID = 65532
"""qctail's real uid under Docker: neither the engine's (65534) nor the load generator's (65533)."""


def program() -> Path:
    """This host's qctail, to bind into a sandbox."""
    if not os.access(PROGRAM, os.X_OK):
        raise InfrastructureError(
            f"{PROGRAM.name} is not built: run `make -C {PROGRAM.parent}` (scripts/setup.sh does)"
        )
    return PROGRAM


def pids_limit(engine_pids: int) -> int:
    """A sandbox's pids limit: the engine's whole limit, and qctail."""
    return engine_pids + 1


def engine_argv(port: int, term_grace_s: float, engine_uid: int | None = None) -> list[str]:
    """The command a sandbox runs: the engine at ``/app/engine`` under qctail, which signals all
    of the engine's processes on SIGTERM and dumps the tail after half the grace period; with
    ``engine_uid``, qctail starts as root and drops the engine to it (and itself: the module's
    docstring)."""
    dump_after_ms = round(term_grace_s * 500)
    uids = "-" if engine_uid is None else f"{engine_uid}:{TAIL_UID}"
    qctail = [IN_SANDBOX, str(STDERR_TAIL_BYTES), str(dump_after_ms), "1", uids]
    return [*qctail, "/app/engine", "--port", str(port)]


class StderrTail:
    """Drains a pipe on a thread, keeping only the last 64 KiB: an engine's tail as qctail hands
    it over, or a load generator's stderr.

    The thread runs ``SCHED_IDLE`` beside the load generator: it reads when the load generator
    waits, never in its place."""

    def __init__(self, fd: int, limit: int = STDERR_TAIL_BYTES) -> None:
        self._fd = fd
        self._limit = limit
        self._buf = bytearray()
        self.thread = threading.Thread(target=self._drain, daemon=True)
        self.thread.start()

    def _drain(self) -> None:
        with contextlib.suppress(OSError):  # this thread only
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        while True:
            try:
                chunk = os.read(self._fd, 1 << 16)
            except OSError:
                break
            if not chunk:
                break
            self._buf += chunk
            if len(self._buf) > 2 * self._limit:
                del self._buf[: -self._limit]
        os.close(self._fd)

    def text(self, join_timeout: float = 1.0) -> str:
        self.thread.join(join_timeout)
        return bytes(self._buf[-self._limit :]).decode("utf-8", "replace")
