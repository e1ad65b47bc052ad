"""Where the embedded default keeps its state: one folder, ``$QUANTCRAFT_HOME`` (./.quantcraft)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from .core.limits import UploadLimits
from .judge.cpus import parse_cpu_list


def home() -> Path:
    return Path(os.environ.get("QUANTCRAFT_HOME", Path.cwd() / ".quantcraft")).resolve()


def bucket_root() -> Path:
    return Path(os.environ.get("QUANTCRAFT_BUCKET_ROOT", home() / "bucket")).resolve()


def calibration_engines() -> Path:
    """The platform's own example engines (``make -C examples/engines``): ``engine`` calibrates a
    judging slot, ``trivial`` measures the load generator's ceiling."""
    default = Path(__file__).resolve().parent.parent / "examples" / "engines" / "build"
    return Path(os.environ.get("QUANTCRAFT_CALIBRATION_ENGINES", default))


OFFICIAL_SECRET_ENV = "QUANTCRAFT_OFFICIAL_SECRET"


def official_secret() -> str:
    """The organisers' secret that official traces derive from: ``$QUANTCRAFT_OFFICIAL_SECRET``
    (production: from a secret store), else made once in the state folder (mode 0600), so the
    embedded default judges on official traces from its first start. Never printed or logged."""
    if value := os.environ.get(OFFICIAL_SECRET_ENV):
        return value
    path = home() / "official-secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
    return path.read_text().strip()


def fair_queue() -> bool:
    """Whether the queue is fair between contestants (``$QUANTCRAFT_FAIR_QUEUE``, on unless 0):
    at most one judging in flight per contestant, and each contestant's first pending judging
    ahead of anyone's second. Off, the queue is first come, first served."""
    return (os.environ.get("QUANTCRAFT_FAIR_QUEUE") or "1").strip().lower() not in ("0", "false", "no", "off")


def upload_limits() -> UploadLimits:
    """This contest's upload limits, per contestant; 0 switches one off. Read at every use, so
    the sensor and the upload API follow a change as soon as their processes see it.

    ``$QUANTCRAFT_UPLOADS_PER_WINDOW`` uploads per ``$QUANTCRAFT_UPLOAD_WINDOW_S`` seconds
    (default 3 per 600), and ``$QUANTCRAFT_MAX_PENDING_UPLOADS`` judgings waiting or running at once
    (default 3): a few tries per coffee break each, so one contestant's burst cannot fill the queue.
    """
    default = UploadLimits()

    def env(name: str, value: float) -> str:  # unset or empty (compose passes empty): the default
        return os.environ.get(name) or str(value)

    return UploadLimits(
        per_window=int(env("QUANTCRAFT_UPLOADS_PER_WINDOW", default.per_window)),
        window_s=float(env("QUANTCRAFT_UPLOAD_WINDOW_S", default.window_s)),
        max_pending=int(env("QUANTCRAFT_MAX_PENDING_UPLOADS", default.max_pending)),
    )


# Scale-out (deploy/dagster-celery.yaml, ``quantcraft worker``): the control host's daemon puts each
# judging run on a Celery queue in Redis; any judge host's worker takes the next one.
CELERY_BROKER_ENV = "QUANTCRAFT_CELERY_BROKER"
CELERY_BACKEND_ENV = "QUANTCRAFT_CELERY_BACKEND"
JUDGING_QUEUE_ENV = "QUANTCRAFT_JUDGING_QUEUE"


def celery_broker() -> str:
    """Where judging runs are queued: ``$QUANTCRAFT_CELERY_BROKER`` (a Redis URL)."""
    return os.environ.get(CELERY_BROKER_ENV, "redis://127.0.0.1:6379/0")


def celery_backend() -> str:
    """Where task states are kept (run monitoring reads them): ``$QUANTCRAFT_CELERY_BACKEND``."""
    return os.environ.get(CELERY_BACKEND_ENV, "redis://127.0.0.1:6379/1")


def judging_queue() -> str:
    return os.environ.get(JUDGING_QUEUE_ENV, "judging")


def slots_dir() -> Path:
    """The host-wide folder of CPU locks (``judge.slots``): every judging on this host, whichever
    worker or state folder it belongs to, takes its CPUs' locks here. ``$QUANTCRAFT_SLOTS_DIR``;
    the default is on /run, a per-boot tmpfs, so no lock file survives a reboot."""
    return Path(os.environ.get("QUANTCRAFT_SLOTS_DIR", "/run/quantcraft/slots"))


def judge_cpus() -> list[int] | None:
    """The CPUs this host judges on (``$QUANTCRAFT_JUDGE_CPUS``, e.g. ``0-7`` or ``2,3,6,7``); all
    online CPUs when unset."""
    text = os.environ.get("QUANTCRAFT_JUDGE_CPUS", "").strip()
    return parse_cpu_list(text) if text else None


def cpus_per_slot() -> int:
    """CPUs in one judging slot (``$QUANTCRAFT_CPUS_PER_SLOT``, default 4: two for the engine, two
    for the load generator, as ``split_cpus`` shares them)."""
    return int(os.environ.get("QUANTCRAFT_CPUS_PER_SLOT", "4"))
