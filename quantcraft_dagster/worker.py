"""A judge host's Celery worker: the tasks Dagster's ``CeleryRunLauncher`` queues, run here.

The control host's daemon (``deploy/dagster-celery.yaml``) dequeues a judging run and sends a
dagster-celery ``execute_job`` task to the judging queue in Redis. The first worker with a free
process takes it and runs the whole Dagster run in that (warm) process against the shared
Postgres instance; the judging step then takes a free CPU slot of this host (``judge.slots``).

One worker process per slot, and a worker reserves nothing it cannot start: a busy host leaves
the next judging to a free one. A worker process dies with its worker (SIGKILL included), so a
dead worker's judging does not live on unseen: the run monitor fails it after its maximum
runtime and run retries put it back on the queue for another host.
"""

from __future__ import annotations

import contextlib
import ctypes
import signal

from celery import Celery
from celery.signals import worker_process_init
from dagster_celery.config import DEFAULT_CONFIG
from dagster_celery.make_app import make_app
from dagster_celery.tasks import create_execute_job_task, create_resume_job_task

from . import services, settings
from .judge.cgroups import PlatformGroup
from .judge.cpus import background
from .judge.slots import host_slots

_PR_SET_PDEATHSIG = 1


def make_judging_app() -> Celery:
    """dagster-celery's app (its task names and routes), on the broker and queue from settings."""
    config = dict(
        DEFAULT_CONFIG,
        # Without this a worker whose processes are all judging still reserves the next message
        # (Redis only); it would wait behind the current judging while another host sits idle.
        worker_disable_prefetch=True,
        # Acknowledged on receipt (Celery's default, kept on purpose): a dead worker's task is not
        # redelivered; the run monitor fails the run and run retries launch a new run instead.
        task_acks_late=False,
        # The task's worker in the result backend, for organisers (and tests) asking who judged.
        result_extended=True,
        broker_connection_retry_on_startup=True,
    )
    configured = settings.current()
    return make_app(
        {
            "broker": configured.celery_broker,
            "backend": configured.celery_backend,
            "include": [],
            "config_source": config,
            "task_default_queue": configured.judging_queue,
        }
    )


app = make_judging_app()
execute_job = create_execute_job_task(app)
resume_job = create_resume_job_task(app)


@worker_process_init.connect
def _die_with_worker(**_: object) -> None:
    """A pool process gets SIGKILL when its worker dies: a judging never outlives its host's
    worker, and with it go the sandbox (bubblewrap ``--die-with-parent``) and the slot's locks."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")


def run(name: str, loglevel: str, celery_args: list[str]) -> None:
    """Calibrate this host's slots, then start its worker in the foreground: one process per
    judging slot, on the judging queue and on this host's own queue (its slots' calibrations).

    The worker itself runs SCHED_IDLE on the load generators' CPUs, so it never competes with an
    engine, and in the platform's freezer group, so the judge freezes it for each timed trial
    (``judge.quiet``: SCHED_IDLE alone still took ~1 ms slices of the load generator's CPU); a
    judging puts itself back in the foreground on its slot's CPUs and out of that group.
    """
    configured = settings.current()
    if not configured.dagster_home:
        raise SystemExit("DAGSTER_HOME is not set: point it at the folder holding deploy/dagster-celery.yaml")
    slots = host_slots(configured.judge_cpus, configured.cpus_per_slot)
    for slot in slots:
        print(f"judging slot: engine CPUs {slot.engine_cpus}, load generator CPUs {slot.loadgen_cpus}")
    print(f"{len(slots)} slot(s): count them in the control host's max_concurrent_runs", flush=True)
    services.prepare_host()  # in a process of its own: the pool forks from this one
    print(f"calibrated the slots of {configured.judge_host}", flush=True)
    if celery_args[:1] == ["--"]:
        celery_args = celery_args[1:]
    background(tuple(sorted({cpu for slot in slots for cpu in slot.loadgen_cpus})))
    with contextlib.suppress(OSError):  # no writable freezer (a container): SCHED_IDLE alone
        PlatformGroup().join()
    app.worker_main(
        [
            "worker",
            f"--queues={configured.judging_queue},{configured.host_queue(configured.judge_host)}",
            f"--concurrency={len(slots)}",
            "--pool=prefork",
            "--prefetch-multiplier=1",
            f"--hostname={name}@%h",
            f"--loglevel={loglevel}",
            *celery_args,
        ]
    )
