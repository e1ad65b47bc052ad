"""Where the embedded default keeps its state: one folder, ``$QUANTCRAFT_HOME`` (./.quantcraft)."""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    return Path(os.environ.get("QUANTCRAFT_HOME", Path.cwd() / ".quantcraft")).resolve()


def bucket_root() -> Path:
    return Path(os.environ.get("QUANTCRAFT_BUCKET_ROOT", home() / "bucket")).resolve()
