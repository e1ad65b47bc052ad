"""The Docker sandbox's probe: one container per judging whose network and pid namespaces the
judging's engines join, and where the load generator is ``exec``-ed for each run (the Docker
sandbox's docstring says why). Plans go in and results come out through a volume only it mounts.
"""

from __future__ import annotations

import contextlib
import io
import os
import tarfile
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from docker.errors import APIError, DockerException
from docker.types import LogConfig, Mount

from . import cgroups, interference
from .sandbox import LOADGEN_MODULE
from .tail import STDERR_TAIL_BYTES

if TYPE_CHECKING:
    from .docker_sandbox import DockerSandbox

# A judging's binary volume outlives its engines (one per phase and trial): its expiry bounds the
# whole judging. It holds a file, no process: a dead host judge's is reaped this late; a dead run
# container's at once (its owner is gone), a finished judging's when it closes its sandbox.
VOLUME_LIFETIME_S = 6 * 3600.0
WORK = "/work"  # the probe's volume: plan in, result out
USAGE = "/host/cpuacct.usage_percpu"  # the host's interference.USAGE_FILE, bound read-only


class Probe:
    """The container whose network and pid namespaces a judging's engines join, and where the
    load generator runs (see the module's docstring)."""

    def __init__(self, sandbox: DockerSandbox) -> None:
        client = sandbox.client
        labels = sandbox.labels(VOLUME_LIFETIME_S, kind="probe")
        name = f"qc-probe-{uuid.uuid4().hex[:12]}"
        self.work = client.volumes.create(f"{name}-work", labels=labels)
        # Every task's CPU time per CPU, from the daemon's host: the load generator tells other
        # work on the engine's CPUs from idle by it. A cgroup v2 host has no such file.
        self.usage_file: str | None = USAGE
        usage = Mount(USAGE, interference.USAGE_FILE, type="bind", read_only=True)
        try:
            try:
                self.container = self._create(sandbox, name, [usage])
            except APIError as exc:
                if "bind source path does not exist" not in str(exc):
                    raise
                self.usage_file = None
                self.container = self._create(sandbox, name, [])
            self.container.start()
        except BaseException:
            with contextlib.suppress(DockerException, AttributeError):
                self.container.remove(force=True)
            with contextlib.suppress(DockerException):
                self.work.remove(force=True)
            raise
        self.client = client

    def _create(self, sandbox: DockerSandbox, name: str, mounts: list[Mount]):  # -> Container
        return sandbox.client.containers.create(
            sandbox.probe_image,
            ["python", "-c", "import signal; signal.pause()"],  # holds the namespaces
            name=name,
            labels=sandbox.container_labels(VOLUME_LIFETIME_S, kind="probe"),
            hostname="engine",
            user="0:0",
            network_mode="none",
            ipc_mode="private",
            read_only=True,
            mounts=[Mount(WORK, self.work.name, type="volume"), *mounts],
            tmpfs={"/tmp": "size=64m,mode=1777"},
            cap_drop=["ALL"],
            cap_add=["SYS_NICE"],
            security_opt=["no-new-privileges"],
            pids_limit=64,
            cpuset_cpus=",".join(map(str, sandbox.loadgen_cpus)) or None,
            cpu_shares=cgroups.MAX_SHARES,  # outweighs the host's work on its CPUs (judge.cpu_weight)
            cgroup_parent=sandbox.cgroup_parent,
            init=True,  # PID 1 of the engines' pid namespace: reaps what an engine orphans
            log_config=LogConfig(type=LogConfig.types.NONE),
        )


def archive(*files: tuple[str, bytes, int]) -> bytes:
    """A tar holding only ``files`` (name, data, mode), root-owned."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data, mode in files:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = mode
            info.mtime = int(time.time())
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class ProbeLoadgen:
    """The load generator ``exec``-ed in the probe: the plan copied in, its stdout and stderr
    demultiplexed from the exec's stream, the result copied out once it exits with 0."""

    def __init__(self, probe: Probe, plan: Path, result: Path) -> None:
        self.probe, self.result = probe, result
        probe.container.put_archive(WORK, archive(("plan.pkl", plan.read_bytes(), 0o600)))
        api = probe.client.api
        argv = ["python", "-m", LOADGEN_MODULE, f"{WORK}/plan.pkl", f"{WORK}/result.pkl"]
        self._exec = api.exec_create(probe.container.id, argv, stdout=True, stderr=True)["Id"]
        frames = api.exec_start(self._exec, stream=True, demux=True)
        out_r, self._out_w = os.pipe()
        self.stdout = os.fdopen(out_r, "r")
        self._errors = bytearray()
        self._killed = False
        self._done = threading.Event()
        threading.Thread(target=self._pump, args=(frames,), daemon=True).start()

    def _pump(self, frames) -> None:
        try:
            for out, err in frames:
                if out:
                    os.write(self._out_w, out)
                if err:
                    self._errors += err
                    del self._errors[:-STDERR_TAIL_BYTES]
        except (OSError, DockerException) as exc:
            self._errors += f"\n(the exec's stream broke: {exc})".encode()
        finally:
            os.close(self._out_w)
            self._done.set()

    def poll(self) -> int | None:
        return self._code() if self._done.is_set() else None

    def _code(self) -> int:
        if self._killed:
            return -9
        code = self.probe.client.api.exec_inspect(self._exec)["ExitCode"]
        return -1 if code is None else int(code)

    def kill(self) -> None:
        """SIGKILL every load generator in the probe (root there; the engine's uid is not)."""
        self._killed = True
        mine = repr(["-m", LOADGEN_MODULE])
        script = (
            "import os\n"
            "for p in filter(str.isdigit, os.listdir('/proc')):\n"
            "    try:\n"
            f"        if open(f'/proc/{{p}}/cmdline', 'rb').read().decode().split(chr(0))[1:3] == {mine}:\n"
            "            os.kill(int(p), 9)\n"
            "    except (OSError, IndexError):\n"
            "        pass\n"
        )
        with contextlib.suppress(DockerException):
            self.probe.container.exec_run(["python", "-c", script])

    def wait(self) -> int:
        self._done.wait()
        code = self._code()
        if code == 0:
            try:
                chunks, _ = self.probe.container.get_archive(f"{WORK}/result.pkl")
                with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
                    member = tar.extractfile("result.pkl")
                    assert member is not None
                    self.result.write_bytes(member.read())
            except (DockerException, tarfile.TarError, KeyError) as exc:
                self._errors += f"\n(its result could not be copied out: {exc})".encode()
        return code

    def errors(self) -> str:
        return bytes(self._errors[-2000:]).decode("utf-8", "replace")
