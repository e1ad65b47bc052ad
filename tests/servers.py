"""Real servers on loopback for tests and benchmarks: moto's S3 server, Debian's PostgreSQL and
Redis, each started in the foreground of a context manager and stopped when it ends.

In production these run on other machines than the judge hosts. Here they share the judge's two
cores, so each runs as the platform's own services do on a small judge host (``elsewhere``: off the
engines' CPUs, SCHED_IDLE, and in the platform's freezer group, which the judge freezes for each
timed trial: ``judge.quiet``): what would otherwise take an engine's CPU or the load generator's
is another machine's work, and the judge would rightly refuse the trial. SCHED_IDLE alone is not
enough here: measured beside an idle Celery cluster (tests/scale), its SCHED_IDLE daemon, workers,
PostgreSQL and Redis still ran 10-20 ms in ~1 ms slices on the load generator's CPU during a
phase C trial, and the judge sent 0.2-4 ms late at p99.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

from quantcraft_dagster.judge.cgroups import PlatformGroup
from quantcraft_dagster.judge.cpus import background


def elsewhere() -> None:
    """``preexec_fn`` of a stand-in for another machine: the load generator's CPUs only, only when
    the judge leaves them idle, and frozen while it times a trial (inherited by its children)."""
    background()
    PlatformGroup().join()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(
    check: Callable[[], object],
    timeout: float,
    what: str,
    every: float = 1.0,
    state: Callable[[], object] = lambda: None,
    ignore: tuple[type[Exception], ...] = (),
) -> object:
    """``check()``'s first truthy value; on timeout, fail naming ``what`` and ``state()``: where
    things stood, so a timeout in CI says which submission or run was stuck. A check raising one
    of ``ignore`` (a service not up yet) counts as not yet."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = check()
        except ignore:
            found = None
        if found:
            return found
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; state: {state()}")


def _answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=1)
    except OSError:
        return False
    return True


@contextlib.contextmanager
def moto_s3() -> Iterator[str]:
    """moto's S3-compatible server over HTTP: the real protocol, no AWS. Yields its URL."""
    url = f"http://127.0.0.1:{free_port()}"
    port = url.rsplit(":", 1)[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", port],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=elsewhere,
    )
    try:
        wait_for(lambda: proc.poll() is not None or _answers(url), 30, "moto server", 0.2)
        if proc.poll() is not None:
            raise RuntimeError("moto server did not start")
        yield url
    finally:
        proc.terminate()
        proc.wait()


PG_BIN = max(Path("/usr/lib/postgresql").glob("*/bin"), default=Path("/usr/lib/postgresql/15/bin"))


@contextlib.contextmanager
def postgres() -> Iterator[dict[str, str]]:
    """Debian's PostgreSQL on loopback, run as the postgres user (it refuses root), password auth.
    Yields the ``DAGSTER_PG_*`` settings of database ``dagster``."""
    data = Path(tempfile.mkdtemp(prefix="qc-pg-"))
    shutil.chown(data, "postgres", "postgres")
    password = secrets.token_hex(16)
    pwfile = data / "pw"
    pwfile.write_text(password)
    shutil.chown(pwfile, "postgres", "postgres")
    as_pg = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [*as_pg, PG_BIN / "initdb", "-D", data / "db", "-U", "dagster", f"--pwfile={pwfile}",
         "--auth-local=trust", "--auth-host=scram-sha-256"],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    port = str(free_port())
    proc = subprocess.Popen(
        [*as_pg, PG_BIN / "postgres", "-D", data / "db", "-p", port, "-k", data,
         "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=elsewhere,
    )  # fmt: skip
    try:
        ready = [PG_BIN / "pg_isready", "-h", "127.0.0.1", "-p", port]
        wait_for(lambda: subprocess.run(ready, capture_output=True).returncode == 0, 30, "postgres", 0.2)
        settings = {
            "DAGSTER_PG_HOST": "127.0.0.1",
            "DAGSTER_PG_PORT": port,
            "DAGSTER_PG_USER": "dagster",
            "DAGSTER_PG_PASSWORD": password,
            "DAGSTER_PG_DB": "dagster",
        }
        create_database(settings, "dagster")
        yield settings
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(data, ignore_errors=True)


def create_database(settings: dict[str, str], name: str) -> None:
    where = ["-h", "127.0.0.1", "-p", settings["DAGSTER_PG_PORT"], "-U", "dagster"]
    subprocess.run(
        [PG_BIN / "createdb", *where, name], env={"PGPASSWORD": settings["DAGSTER_PG_PASSWORD"]}, check=True
    )


@contextlib.contextmanager
def redis() -> Iterator[dict[str, str]]:
    """Debian's redis-server on loopback with a password, nothing persisted. Yields the Celery
    broker and result backend settings."""
    port, password = str(free_port()), secrets.token_hex(16)
    proc = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", port, "--requirepass", password,
         "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, preexec_fn=elsewhere,
    )  # fmt: skip
    try:
        ping = ["redis-cli", "-p", port, "--no-auth-warning", "-a", password, "ping"]
        wait_for(lambda: b"PONG" in subprocess.run(ping, capture_output=True).stdout, 30, "redis", 0.2)
        url = f"redis://:{password}@127.0.0.1:{port}"
        yield {"QUANTCRAFT_CELERY_BROKER": f"{url}/0", "QUANTCRAFT_CELERY_BACKEND": f"{url}/1"}
    finally:
        proc.terminate()
        proc.wait(30)


def sensor_ticks(instance, after: float) -> list:
    """The submission sensor's ticks since ``after`` (epoch seconds), newest first."""
    (state,) = [s for s in instance.all_instigator_state() if s.name == "submission_sensor"]
    return list(instance.get_ticks(state.instigator_origin_id, state.selector_id, after=after))
