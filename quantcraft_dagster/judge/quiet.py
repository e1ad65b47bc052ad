"""A quiet judge host for timed trials: the platform's own services frozen while a trial runs.

Only where the services share the load generator's CPUs (the embedded default on a small host;
production judge hosts run no platform services). A guard process, started before the freeze,
thaws the platform when the judge finishes the trial, dies (SIGKILL included: its pipe closes),
or overruns ``max_s``. The guard ignores the stop signals a supervisor sends to the judge's whole
process group: killed with it, it left the platform frozen for good (a stopping ``quantcraft up``
then waited forever on services that could not act on their signals).
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
from collections.abc import Iterator

from .cgroups import PlatformGroup

_GUARD = """
import select, sys
path, thawed, max_s = sys.argv[1], sys.argv[2], float(sys.argv[3])
select.select([sys.stdin], [], [], max_s)  # the judge closes stdin (or dies), or time runs out
open(path, "w").write(thawed)
"""


def _ignore_stop_signals() -> None:
    """The guard outlives its judge to thaw behind it, whatever the judge's group is sent."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)


@contextlib.contextmanager
def quiet_platform(group: PlatformGroup | None, max_s: float) -> Iterator[None]:
    """Freeze ``group`` (when it holds any process) for the block; always thawed after."""
    if group is None or not group.active():
        yield
        return
    group.leave()
    path, frozen, thawed = group.state_file()
    guard = subprocess.Popen(
        [sys.executable, "-c", _GUARD, str(path), thawed, str(max_s)],
        stdin=subprocess.PIPE,
        preexec_fn=_ignore_stop_signals,  # ignored from before exec: no window to die in
    )
    try:
        path.write_text(frozen)
        yield
    finally:
        if guard.stdin is not None:
            guard.stdin.close()
        guard.wait()
