"""Which uploaded objects are new submissions: key layout, partition keys and the listing cursor.

Pure: the sensor feeds it a bucket listing. Keys sort by name, not by time, so a key-based
cursor would miss a late upload under an early name. The cursor is instead a time watermark plus
the (key, etag) pairs seen within a safety window behind it: a listing may show an object late
(a long multipart upload keeps its start time), and anything seen before is never new again.
Run keys (key + ETag) are the last line of defence against a duplicate judging.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import orjson

from .keys import SUBMISSIONS

CONTESTANT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
FILENAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")
WINDOW_S = 600.0


class Listed(Protocol):
    """One object of a bucket listing, as any backend describes it (read-only)."""

    @property
    def key(self) -> str: ...
    @property
    def etag(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def modified(self) -> float: ...


@dataclass(frozen=True, slots=True)
class Submission:
    """One uploaded object that will be judged as one partition."""

    key: str
    etag: str
    size: int
    modified: float
    contestant: str
    filename: str

    @property
    def partition_key(self) -> str:
        """Contestant, upload time and content tag: unique, sortable, URL-safe."""
        stamp = datetime.fromtimestamp(self.modified, UTC).strftime("%Y%m%dT%H%M%S")
        tag = re.sub(r"[^0-9a-f]", "", self.etag.lower())[:10] or "0"
        return f"{self.contestant}-{stamp}-{tag}"

    @property
    def run_key(self) -> str:
        return f"{self.key}@{self.etag}"

    def to_obj(self) -> dict:
        return {
            "key": self.key,
            "etag": self.etag,
            "size": self.size,
            "modified": self.modified,
            "contestant": self.contestant,
            "filename": self.filename,
            "partition": self.partition_key,
        }


def parse_key(key: str) -> tuple[str, str]:
    """``submissions/<contestant_id>/<file>`` → (contestant, file); ValueError says what is wrong."""
    if not key.startswith(SUBMISSIONS):
        raise ValueError(f"{key!r} is not under {SUBMISSIONS}")
    parts = key[len(SUBMISSIONS) :].split("/")
    if len(parts) != 2:
        raise ValueError(f"{key!r} is not {SUBMISSIONS}<contestant_id>/<file>")
    contestant, filename = parts
    if not CONTESTANT_RE.match(contestant):
        raise ValueError(f"{key!r}: contestant id must be 1-64 of A-Z a-z 0-9 _ - (starting alphanumeric)")
    if not FILENAME_RE.match(filename):
        raise ValueError(f"{key!r}: file name must be 1-128 of A-Z a-z 0-9 . _ + - (starting alphanumeric)")
    return contestant, filename


@dataclass(slots=True)
class IntakeCursor:
    watermark: float = 0.0
    recent: dict[str, str] = field(default_factory=dict)  # key -> etag, within the window
    # Uploads skipped for the contestant's limits, looked at again when the limits change
    # (``limits``: the fingerprint they were skipped under): key -> [etag, size, modified].
    held: dict[str, list] = field(default_factory=dict)
    limits: str = ""

    def to_json(self) -> str:
        obj = {"watermark": self.watermark, "recent": self.recent, "held": self.held, "limits": self.limits}
        return orjson.dumps(obj).decode()

    @classmethod
    def from_json(cls, text: str | None) -> IntakeCursor:
        if not text:
            return cls()
        obj = orjson.loads(text)
        return cls(
            float(obj.get("watermark", 0.0)),
            dict(obj.get("recent", {})),
            dict(obj.get("held", {})),
            str(obj.get("limits", "")),
        )

    def hold(self, sub: Submission) -> None:
        self.held[sub.key] = [sub.etag, sub.size, sub.modified]

    def held_submissions(self) -> list[Submission]:
        return [
            Submission(key, etag, size, modified, *parse_key(key))
            for key, (etag, size, modified) in self.held.items()
        ]


@dataclass(slots=True)
class IntakeResult:
    new: list[Submission]
    skipped: list[tuple[str, str]]  # (key, reason)
    cursor: IntakeCursor


def scan(listing: Iterable[Listed], cursor: IntakeCursor, window_s: float = WINDOW_S) -> IntakeResult:
    """New submissions in ``listing`` since ``cursor``, and the cursor to store after them."""
    floor = cursor.watermark - window_s
    new: list[Submission] = []
    skipped: list[tuple[str, str]] = []
    seen: dict[str, tuple[str, float]] = {}
    for obj in listing:
        if obj.modified < floor:
            continue  # seen (or skipped) on an earlier tick
        seen[obj.key] = (obj.etag, obj.modified)
        if cursor.recent.get(obj.key) == obj.etag:
            continue
        try:
            contestant, filename = parse_key(obj.key)
        except ValueError as exc:
            skipped.append((obj.key, str(exc)))
            continue
        new.append(Submission(obj.key, obj.etag, obj.size, obj.modified, contestant, filename))
    watermark = max([cursor.watermark, *(m for _, m in seen.values())])
    keep_from = watermark - window_s
    recent = {key: etag for key, (etag, modified) in seen.items() if modified >= keep_from}
    return IntakeResult(new, skipped, IntakeCursor(watermark, recent, dict(cursor.held), cursor.limits))
