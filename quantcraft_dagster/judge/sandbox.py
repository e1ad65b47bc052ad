"""Sandboxes that run an untrusted engine with no network and hard limits.

One interface, :class:`Sandbox`; the bubblewrap backend is the embedded default. The engine sees a
read-only root, ``/app`` holding only its binary, a 100 MiB tmpfs ``/tmp`` (the only writable
place), its own loopback and nothing else. It runs as uid 65534 in new user, pid, net, ipc, uts and
cgroup namespaces, inside a cgroup that bounds memory, pids and CPUs. Stopping it always ends every
process it started.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ..core import protocol
from . import cgroups, interference, tail
from .cpus import foreground
from .tail import StderrTail

NOBODY = 65534


@dataclass(frozen=True, slots=True)
class SandboxLimits:
    """docs/protocol.md section 1 limits; ``cpus`` are the engine's dedicated CPUs."""

    memory_bytes: int = protocol.MEMORY_BYTES
    pids: int = protocol.PIDS
    tmp_bytes: int = protocol.TMP_BYTES
    nofile: int = 4096
    file_bytes: int = 128 * 2**20
    cpus: tuple[int, ...] = ()
    term_grace_s: float = 2.0
    uid: int = NOBODY


LOADGEN_MODULE = "quantcraft_dagster.judge.loadgen"


class LoadgenRun(Protocol):
    """A running load generator (``python -m quantcraft_dagster.judge.loadgen PLAN RESULT``) in
    an engine's network namespace: its progress lines on ``stdout``, the result at RESULT once
    :meth:`wait` returned 0."""

    @property
    def stdout(self) -> Iterable[str]: ...

    def poll(self) -> int | None: ...

    def kill(self) -> None: ...

    def wait(self) -> int:
        """Its exit code (-9: killed); the result is in place when 0."""
        ...

    def errors(self) -> str:
        """The tail of what it wrote to stderr: the reason it failed."""
        ...


class LocalLoadgen:
    """The load generator as a child process of this judge."""

    def __init__(self, argv: list[str]) -> None:
        err_r, err_w = os.pipe()
        try:
            self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err_w, text=True)
        finally:
            os.close(err_w)
        self._errors = StderrTail(err_r)
        assert self.proc.stdout is not None
        self.stdout = self.proc.stdout

    def poll(self) -> int | None:
        return self.proc.poll()

    def kill(self) -> None:
        self.proc.kill()

    def wait(self) -> int:
        return self.proc.wait()

    def errors(self) -> str:
        return self._errors.text()[-2000:]


class RunningEngine(Protocol):
    """A started engine, whatever the backend."""

    # None: the load generator finds the engine's processes in ``procs_files``; a uid: as that
    # uid's processes in the pid namespace it shares with the engine (Docker).
    meter_uid: int | None
    # Where the load generator reads every task's CPU time per CPU (``interference.USAGE_FILE``);
    # None where it cannot.
    usage_file: str | None

    def run_loadgen(self, plan: Path, result: Path) -> LoadgenRun:
        """Start the load generator where it reaches the engine at 127.0.0.1 and nothing else."""
        ...

    def exit_code(self) -> int | None: ...

    def cpu_ns(self) -> int:
        """CPU time of the engine's processes so far (its cgroup)."""
        ...

    def pids(self) -> set[int]:
        """The engine's processes as host pids; empty where the judge cannot see them (an engine
        metered by ``meter_uid`` instead)."""
        ...

    def procs_files(self) -> list[str]:
        """Files listing the engine's processes that the load generator can read (its cgroup's);
        empty where it finds them by ``meter_uid``."""
        ...

    def stop(self) -> EngineExit: ...


@dataclass(slots=True)
class EngineExit:
    """How the engine ended and what it left behind."""

    code: int | None
    oom_killed: bool
    died_early: bool  # exited on its own before the judge stopped it
    stderr_tail: str
    memory_peak: int
    leftover_pids: list[int] = field(default_factory=list)
    cpu_ns: int = 0  # CPU time of the engine's processes (cgroup accounting)

    def describe(self) -> str:
        if self.oom_killed:
            return "killed: exceeded the memory limit"
        if self.code is None:
            return "did not exit"
        if self.code > 128:
            with contextlib.suppress(ValueError):
                return f"killed by {signal.Signals(self.code - 128).name}"
        return f"exited with code {self.code}"


class Sandbox(Protocol):
    def start(self, binary: Path, port: int) -> RunningEngine: ...

    def close(self) -> None:
        """Release what the judging's engines shared (a Docker volume); the engines are stopped."""
        ...


def _system_binds() -> list[str]:
    """Read-only system dirs; merged-/usr symlinks are recreated rather than bound."""
    args = ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib64", "lib32"):
        path = Path("/") / name
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), f"/{name}"]
        elif path.is_dir():
            args += ["--ro-bind", str(path), f"/{name}"]
    for etc in ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "nsswitch.conf"):
        args += ["--ro-bind-try", f"/etc/{etc}", f"/etc/{etc}"]
    return args


class BubblewrapSandbox:
    """bubblewrap (Debian ``bubblewrap``) + cgroups + rlimits; needs root to set up cgroups."""

    def __init__(self, limits: SandboxLimits | None = None, cgroup_root: Path = cgroups.ROOT) -> None:
        self.limits = limits or SandboxLimits()
        self.cgroup_root = cgroup_root
        self.bwrap = shutil.which("bwrap")
        if self.bwrap is None:
            raise RuntimeError("bubblewrap is not installed (apt-get install bubblewrap)")
        self.qctail = tail.program()

    def start(self, binary: Path, port: int) -> BubblewrapEngine:
        return BubblewrapEngine(self, binary, port)

    def close(self) -> None:
        """Nothing is shared between engines: each takes its binary from the host, read-only."""


class BubblewrapEngine:
    """One engine process tree inside bubblewrap."""

    def __init__(self, sandbox: BubblewrapSandbox, binary: Path, port: int) -> None:
        limits = sandbox.limits
        self.limits = limits
        self.workdir = Path(tempfile.mkdtemp(prefix="qc-sandbox-"))
        self.workdir.chmod(0o755)
        app = self.workdir / "app"
        app.mkdir(mode=0o755)
        shutil.copyfile(binary, app / "engine")
        (app / "engine").chmod(0o555)
        self.cgroup = cgroups.create(
            f"engine-{uuid.uuid4().hex[:12]}",
            cgroups.CgroupLimits(limits.memory_bytes, tail.pids_limit(limits.pids), limits.cpus),
            root=sandbox.cgroup_root,
        )
        info_r, info_w = os.pipe()
        out_r, out_w = os.pipe()
        argv = [
            str(sandbox.bwrap),
            "--unshare-all",
            "--die-with-parent",
            "--new-session",
            "--clearenv",
            "--cap-drop", "ALL",
            "--uid", str(limits.uid),
            "--gid", str(limits.uid),
            "--hostname", "engine",
            *_system_binds(),
            "--proc", "/proc",
            "--dev", "/dev",
            "--size", str(limits.tmp_bytes), "--perms", "1777", "--tmpfs", "/tmp",
            "--ro-bind", str(app), "/app",
            "--ro-bind", str(sandbox.qctail), tail.IN_SANDBOX,
            # Everything but /tmp read-only, or a file outside /tmp escapes its 100 MiB cap (/dev
            # holds an unbounded tmpfs /dev/shm; its device nodes are separate mounts and stay usable).
            "--remount-ro", "/", "--remount-ro", "/dev",
            "--chdir", "/app",
            "--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin",
            "--setenv", "HOME", "/tmp",
            "--setenv", "QC_PORT", str(port),
            "--info-fd", str(info_w),
            "--as-pid-1",  # qctail is the init: it reaps, and the engine cannot signal it
            "--",
            *tail.engine_argv(port, limits.term_grace_s),
        ]  # fmt: skip
        procs_files = self.cgroup.procs_files()
        preexec = _preexec(procs_files, limits)
        try:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out_w,
                stderr=out_w,
                pass_fds=(info_w,),
                preexec_fn=preexec,
                close_fds=True,
            )
        finally:
            os.close(info_w)
            os.close(out_w)
        self.stderr = StderrTail(out_r)
        self.child_pid = _read_child_pid(info_r)
        self.stopped = False
        self.meter_uid: int | None = None
        self.usage_file = interference.usage_file()

    @property
    def netns_path(self) -> str:
        return f"/proc/{self.child_pid or self.proc.pid}/ns/net"

    def run_loadgen(self, plan: Path, result: Path) -> LocalLoadgen:
        """Through ``nsenter --net``: the judge is root on this host and sees the engine's pid."""
        return LocalLoadgen(
            [
                "nsenter",
                f"--net={self.netns_path}",
                "--",
                sys.executable,
                "-m",
                LOADGEN_MODULE,
                str(plan),
                str(result),
            ]
        )

    def exit_code(self) -> int | None:
        return self.proc.poll()

    def cpu_ns(self) -> int:
        return self.cgroup.cpu_ns()

    def pids(self) -> set[int]:
        return self.cgroup.pids()

    def procs_files(self) -> list[str]:
        return self.cgroup.procs_files()

    def stop(self) -> EngineExit:
        """SIGTERM the engine, SIGKILL after the grace period, then empty and remove the cgroup."""
        died_early = self.proc.poll() is not None
        if not died_early:
            # To qctail (the sandbox's init), which passes it to every process of the engine.
            if self.child_pid is not None:
                cgroups.signal_member(self.child_pid, self.cgroup.pids(), signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(self.limits.term_grace_s)
        emptied = self.cgroup.kill_all()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        leftovers = sorted(self.cgroup.pids()) if not emptied else []
        oom = self.cgroup.oom_killed()
        peak = self.cgroup.memory_peak()
        cpu_ns = self.cpu_ns()
        self.cgroup.remove()
        shutil.rmtree(self.workdir, ignore_errors=True)
        self.stopped = True
        return EngineExit(
            code=self.proc.returncode,
            oom_killed=oom,
            died_early=died_early,
            stderr_tail=self.stderr.text(),
            memory_peak=peak,
            leftover_pids=leftovers,
            cpu_ns=cpu_ns,
        )


def _preexec(procs_files: list[str], limits: SandboxLimits):
    """Runs in the child between fork and exec: join the cgroup, set rlimits, drop to nobody."""

    def setup() -> None:
        pid = str(os.getpid()).encode()
        for path in procs_files:
            fd = os.open(path, os.O_WRONLY)
            try:
                os.write(fd, pid)
            finally:
                os.close(fd)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits.nofile, limits.nofile))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes))
        foreground(limits.cpus)  # every engine scheduled alike, whoever started the judging
        os.setgroups([])
        os.setresgid(limits.uid, limits.uid, limits.uid)
        os.setresuid(limits.uid, limits.uid, limits.uid)

    return setup


def _read_child_pid(fd: int, timeout: float = 10.0) -> int | None:
    """bwrap writes ``{"child-pid": N}`` to --info-fd once the namespaces exist."""
    data = b""
    deadline = time.monotonic() + timeout
    with os.fdopen(fd, "rb", buffering=0) as fh:
        while time.monotonic() < deadline:
            chunk = fh.read(4096)
            if not chunk:
                break
            data += chunk
            if b"}" in data:
                break
    with contextlib.suppress(ValueError):
        return int(json.loads(data.decode())["child-pid"])
    return None
