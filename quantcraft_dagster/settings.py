"""Where the embedded default keeps its state: one folder, ``$QUANTCRAFT_HOME`` (./.quantcraft)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


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
