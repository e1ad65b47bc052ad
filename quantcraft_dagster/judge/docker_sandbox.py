"""The Docker sandbox backend: the production twin of bubblewrap behind the same interface.

Each engine runs in its own container from a glibc-only image (``deploy/sandbox.Dockerfile``) with
no network (``network_mode=none``: its own loopback only), a read-only root, a 100 MiB tmpfs
``/tmp``, no capabilities, ``no-new-privileges``, uid 65534, and the kernel limits of
:class:`SandboxLimits` (memory = memory+swap, pids, cpuset, rlimits). The binary is copied in
through the Docker API, once per judging, into a volume its engines mount read-only at ``/app``:
the judge may run in a container of its own (DockerRunLauncher), so no host path of its is
visible to the daemon, and Docker refuses to copy into a read-only root.

The load generator runs in a probe container, one per judging (``deploy/loadgen.Dockerfile``: the
load generator and its interpreter, nothing else), with no network either; each engine joins the
probe's network and pid namespaces (``network_mode``/``pid_mode`` ``container:<probe>``). So the
load generator reaches the engine at 127.0.0.1 and sees its processes, to meter the interference
(``interference.EngineOfUid``), and the judge needs no privilege at all: not the host's pid
namespace, not ``SYS_ADMIN`` for ``setns``, only the Docker API. The probe runs as root with every
capability dropped but ``SYS_NICE`` (its sender outranks other work on its CPU); the engine, as uid
65534, can neither signal it nor read its memory, files or working directory
(``/proc/<pid>/root`` wants ptrace rights over it). Every engine of a judging listens on the same
port, as the protocol says, in the one namespace: the load generator closes first or resets, so no
connection the previous engine served holds the port in TIME_WAIT against an engine that binds
without ``SO_REUSEADDR`` (``loadgen._http_get``). Plans go in and results come out through a volume
only the probe mounts; the load generator is a process ``exec``-ed in the probe for each run.

An engine's stdout and stderr never leave its container while it runs: it is started by
``qctail`` (:mod:`.tail`; in the sandbox image), which hands the daemon the last 64 KiB once.

Every container and volume is labelled with its judging and an expiry; :func:`reap`, run when a
:class:`DockerSandbox` is made, removes those whose judging is over (expired, or whose judge's own
container is gone), so a crashed run worker or a restarted daemon never leaves an engine running on
the CPUs of the next judging.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import threading
import time
import uuid
from pathlib import Path

import docker
from docker.errors import APIError, DockerException, NotFound
from docker.models.volumes import Volume
from docker.types import LogConfig, Mount, Ulimit

from .. import settings
from . import cgroups, cpu_weight, tail
from .container_cgroup import ContainerCgroup
from .docker_probe import VOLUME_LIFETIME_S, Probe, ProbeLoadgen, archive
from .errors import InfrastructureError
from .sandbox import EngineExit, SandboxLimits
from .tail import StderrTail

LABEL = "quantcraft.sandbox"
JUDGING_LABEL = "quantcraft.judging"
EXPIRES_LABEL = "quantcraft.expires"
OWNER_LABEL = "quantcraft.owner"
# Beyond the judge's own phase bounds: stopping, copying the binary, a slow daemon.
LIFETIME_MARGIN_S = 120.0


def _own_container_id() -> str:
    """The id of the container this judge runs in ('' on a host): Docker bind-mounts its hostname."""
    with contextlib.suppress(OSError):
        found = re.search(r"/containers/([0-9a-f]{64})/hostname ", Path("/proc/self/mountinfo").read_text())
        if found:
            return found.group(1)
    return ""


COMPOSE_LABELS = ("com.docker.compose.project", "com.docker.compose.service")


def compose_labels(client: docker.DockerClient, container_id: str | None = None) -> dict[str, str]:
    """The labels that make a container a one-off of the compose service this process runs in
    (``container_id``: that container, by default this process's own), as ``docker-compose run``
    labels one: ``docker-compose down`` then stops and removes it with the stack. The daemon's run
    containers carry them (``quantcraft_dagster.launcher``), so the sandboxes a run starts do too.
    None outside a compose project."""
    own = _own_container_id() if container_id is None else container_id
    if not own:
        return {}
    try:
        labels = client.containers.get(own).labels
    except DockerException:
        return {}
    if not all(k in labels for k in COMPOSE_LABELS):
        return {}
    return {**{k: labels[k] for k in COMPOSE_LABELS}, "com.docker.compose.oneoff": "True"}


def reap(client: docker.DockerClient, now: float | None = None) -> list[str]:
    """Remove sandboxes whose judging is over; returns the names removed.

    A judging is over when its expiry has passed or the container of the judge that started it no
    longer runs. Sandboxes of judgings still in flight (other run workers on this host) are kept.
    """
    now = time.time() if now is None else now

    def over(labels: dict[str, str]) -> bool:
        owner = labels.get(OWNER_LABEL, "")
        return float(labels.get(EXPIRES_LABEL, "0")) < now or bool(owner and not _running(client, owner))

    removed: list[str] = []
    for container in client.containers.list(all=True, filters={"label": LABEL}):
        if over(container.labels):
            with contextlib.suppress(NotFound):
                container.remove(force=True)
                removed.append(container.name)
    for volume in client.volumes.list(filters={"label": LABEL}):
        if over(volume.attrs["Labels"] or {}):
            with contextlib.suppress(APIError):  # gone already, or still mounted by a live engine
                volume.remove(force=True)
                removed.append(volume.name)
    return removed


def _running(client: docker.DockerClient, container_id: str) -> bool:
    try:
        return client.containers.get(container_id).status == "running"
    except NotFound:
        return False


class DockerSandbox:
    """Starts engines as sibling containers through the Docker API (socket or ``DOCKER_HOST``)."""

    def __init__(
        self,
        limits: SandboxLimits | None,
        image: str,  # settings.sandbox_image: a glibc base built offline (deploy/build-images.sh)
        lifetime_s: float = 3600.0,
        judging_id: str = "",
        client: docker.DockerClient | None = None,
        loadgen_cpus: tuple[int, ...] = (),
        probe_image: str | None = None,  # default: settings.loadgen_image
    ) -> None:
        self.limits = limits or SandboxLimits()
        self.image = image
        self.probe_image = probe_image or settings.current().loadgen_image
        self.lifetime_s = lifetime_s
        self.judging_id = judging_id or uuid.uuid4().hex
        self.loadgen_cpus = loadgen_cpus
        self.owner = _own_container_id()
        self._volumes: dict[Path, Volume] = {}
        self._probe: Probe | None = None
        try:
            self.client = client or docker.from_env()
            reap(self.client)
            driver = str(self.client.info().get("CgroupDriver", ""))
        except DockerException as exc:
            raise InfrastructureError(f"Docker is not reachable: {exc}") from exc
        self.compose = compose_labels(self.client, self.owner)
        self.cgroup_parent = cpu_weight.container_parent(driver)

    def labels(self, lifetime_s: float | None = None, kind: str = "engine") -> dict[str, str]:
        return {
            LABEL: kind,
            JUDGING_LABEL: self.judging_id,
            EXPIRES_LABEL: f"{time.time() + (lifetime_s or self.lifetime_s):.0f}",
            OWNER_LABEL: self.owner,
        }

    def container_labels(self, lifetime_s: float | None = None, kind: str = "engine") -> dict[str, str]:
        """A container's: its judging's (:meth:`labels`, which volumes carry too) and, under
        compose, those of a one-off of the judge's service (``compose_labels``)."""
        return {**self.labels(lifetime_s, kind), **self.compose}

    def start(self, binary: Path, port: int) -> DockerEngine:
        try:
            if self._probe is None:
                self._probe = Probe(self)
            return DockerEngine(self, self._probe, binary, port)
        except DockerException as exc:
            raise InfrastructureError(f"could not start the engine container: {exc}") from exc

    def app_volume(self, binary: Path) -> str:
        """The volume holding ``binary`` as ``engine``, made once per judging and binary: copying
        it in takes a helper container, which cost as much again as the engine's own start.

        Docker copies only into a container's writable volumes: a never-started helper fills the
        volume, which every engine of the judging then mounts read-only."""
        key = binary.resolve()
        if key not in self._volumes:
            name = f"qc-app-{uuid.uuid4().hex[:12]}"
            volume = self.client.volumes.create(name, labels=self.labels(VOLUME_LIFETIME_S))
            try:
                loader = self.client.containers.create(
                    self.image, ["/app/engine"], name=f"{name}-load",
                    labels=self.container_labels(VOLUME_LIFETIME_S), network_mode="none",
                    mounts=[Mount("/app", name, type="volume")],
                )  # fmt: skip
                try:
                    loader.put_archive("/app", archive(("engine", binary.read_bytes(), 0o555)))
                finally:
                    loader.remove(force=True)
            except BaseException:
                with contextlib.suppress(DockerException):
                    volume.remove(force=True)
                raise
            self._volumes[key] = volume
        return self._volumes[key].name

    def close(self) -> None:
        """Remove the judging's probe and volumes (its engines are gone by now); usable again after.
        Never raises: the verdict is made, and what Docker will not remove now is labelled for
        :func:`reap`, which removes it once its judging is over."""
        probe, self._probe = self._probe, None
        volumes, self._volumes = list(self._volumes.values()), {}
        if probe is not None:
            volumes.append(probe.work)
            with contextlib.suppress(DockerException):
                probe.container.remove(force=True)
        for volume in volumes:
            with contextlib.suppress(DockerException):
                volume.remove(force=True)


class DockerEngine:
    """One engine container; its stdout and stderr are drained into a 64 KiB tail."""

    def __init__(self, sandbox: DockerSandbox, probe: Probe, binary: Path, port: int) -> None:
        client, limits = sandbox.client, sandbox.limits
        self.limits, self.probe = limits, probe
        self.meter_uid: int | None = limits.uid  # the probe finds its processes: this judge may not
        self.usage_file = probe.usage_file
        labels = sandbox.container_labels()
        name = f"qc-engine-{uuid.uuid4().hex[:12]}"
        app = sandbox.app_volume(binary)
        ulimits = [
            Ulimit(name="nofile", soft=limits.nofile, hard=limits.nofile),
            Ulimit(name="fsize", soft=limits.file_bytes, hard=limits.file_bytes),
            Ulimit(name="core", soft=0, hard=0),
        ]
        self.container = client.containers.create(
            sandbox.image,
            tail.engine_argv(port, limits.term_grace_s, engine_uid=limits.uid),
            name=name,
            labels=labels,
            user="0:0",  # qctail's, until it drops itself and the engine to their uids (judge/tail.py)
            working_dir="/app",
            environment={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp", "QC_PORT": str(port)},
            # The probe's namespaces: its loopback only (it has no network), and its PID 1 reaps.
            network_mode=f"container:{probe.container.id}",
            pid_mode=f"container:{probe.container.id}",
            ipc_mode="private",
            read_only=True,
            mounts=[Mount("/app", app, type="volume", read_only=True)],
            # /dev/shm would be a second writable tmpfs beside /tmp: mounted read-only instead.
            tmpfs={"/tmp": f"size={limits.tmp_bytes},mode=1777", "/dev/shm": "ro,size=4k"},
            cap_drop=["ALL"],
            cap_add=["SETUID", "SETGID"],  # for qctail's drop; gone from every process after it
            security_opt=["no-new-privileges"],
            pids_limit=tail.pids_limit(limits.pids),
            mem_limit=limits.memory_bytes,
            memswap_limit=limits.memory_bytes,
            cpuset_cpus=",".join(map(str, limits.cpus)) or None,
            cpu_shares=cgroups.MAX_SHARES,
            cgroup_parent=sandbox.cgroup_parent,
            ulimits=ulimits,
            log_config=LogConfig(type=LogConfig.types.NONE),  # output goes to the tail, not to disk
        )
        try:
            self._start()
        except BaseException:  # never a container left holding the judging's volume
            with contextlib.suppress(DockerException):
                self.container.remove(force=True)
            raise

    def _start(self) -> None:
        out_r, out_w = os.pipe()
        # Attached before the start, so nothing is missed; the stream ends when the container exits.
        stream = self.container.attach(stdout=True, stderr=True, stream=True)
        threading.Thread(target=_pump, args=(stream, out_w), daemon=True).start()
        self.stderr = StderrTail(out_r)
        self._code: int | None = None
        self._exited = threading.Event()
        self.container.start()
        self.container.reload()
        # The container's host pid (qctail's) means something here only where this judge sees the
        # host's pids (a judge on the host): in a run container the same number may be another.
        self.pid = int(self.container.attrs["State"]["Pid"])
        self.cgroup = ContainerCgroup.of(self.pid, self.container.id)
        threading.Thread(target=self._wait, daemon=True).start()

    def _wait(self) -> None:
        with contextlib.suppress(DockerException):
            self._code = int(self.container.wait()["StatusCode"])
        self._exited.set()

    def run_loadgen(self, plan: Path, result: Path) -> ProbeLoadgen:
        return ProbeLoadgen(self.probe, plan, result)

    def exit_code(self) -> int | None:
        return self._code if self._exited.is_set() else None

    def cpu_ns(self) -> int:
        return self._usage()[0]

    def procs_files(self) -> list[str]:
        return []  # the probe finds the engine's processes by its uid

    def pids(self) -> set[int]:
        return set()  # in the probe's pid namespace, not this judge's: the probe meters them

    def _usage(self) -> tuple[int, int]:
        """(CPU ns, peak memory) of the container's cgroup: from its files when this judge sees them,
        else through the API (a container's first stats call is answered at once, every later one
        at the daemon's 1 s collection interval: a run container asks once, at the stop)."""
        if self.cgroup is not None:
            with contextlib.suppress(OSError, ValueError):
                return self.cgroup.usage()
        return _usage(self.container)

    def stop(self) -> EngineExit:
        """SIGTERM, SIGKILL after the grace period; then the container is removed (the binary's
        volume stays for the judging's next engine: :meth:`DockerSandbox.close`)."""
        died_early = self._exited.is_set()
        try:
            cpu_ns, peak = self._usage() if not died_early else (0, 0)
            if not died_early:
                self._terminate()
            self._exited.wait(30)
            self.container.reload()
            state = self.container.attrs["State"]
            self.container.remove(force=True)
        except DockerException as exc:
            raise InfrastructureError(f"could not stop the engine container: {exc}") from exc
        return EngineExit(
            code=int(state["ExitCode"]),
            oom_killed=bool(state["OOMKilled"]),
            died_early=died_early,
            stderr_tail=self.stderr.text(),
            memory_peak=peak,
            cpu_ns=cpu_ns,
        )

    def _terminate(self) -> None:
        """SIGTERM, then SIGKILL after the grace period, to every process of the container through
        its cgroup where this judge sees it (:class:`ContainerCgroup`: Docker's own took a fork
        bomb 6-8 s, this a few ms past the grace period); else Docker's stop."""
        grace = self.limits.term_grace_s
        if self.cgroup is None or self.cgroup.procs is None:
            self.container.stop(timeout=max(1, round(grace)))
            return
        # To qctail, which signals the engine's processes: Docker signals a container sharing
        # another's pid namespace through runc, one process at a time.
        cgroups.signal_member(self.pid, self.cgroup.pids(), signal.SIGTERM)
        if not self._exited.wait(grace) and not self.cgroup.kill_all():
            self.container.kill()


def _usage(container) -> tuple[int, int]:
    """(CPU ns, peak memory) from the container's cgroup, read through the API before it is stopped.

    The daemon reads ``cpuacct.usage`` (v1) or ``cpu.stat usage_usec`` (v2) and reports both in
    ns; the peak is v1's ``max_usage`` (0 on v2, which keeps none before kernel 5.19). An engine
    that exited by itself has no cgroup left to read: (0, 0).
    """
    with contextlib.suppress(APIError, KeyError, TypeError):
        stats = container.stats(stream=False, one_shot=True)
        cpu = int(stats["cpu_stats"]["cpu_usage"]["total_usage"])
        return cpu, int(stats["memory_stats"].get("max_usage", 0))
    return 0, 0


def _pump(stream, fd: int) -> None:
    """Copy the container's output stream into a pipe the 64 KiB tail drains."""
    try:
        for chunk in stream:
            os.write(fd, chunk)
    except (OSError, DockerException):
        pass
    finally:
        os.close(fd)
