"""Every key layout of the bucket, spelled once. Both backends (folder, S3/MinIO) use these keys.

Pure naming, no I/O, so it lives in ``core``: the intake rules here in core and every layer above
(storage clients, Dagster IO managers and assets, the leaderboard, the CLI) share one spelling.

| prefix | what | who writes | who reads |
|---|---|---|---|
| ``submissions/<contestant>/<file>`` | uploads | contestants (API, CLI, S3) | sensor, judging |
| ``intake/<partition>.json`` | the upload's manifest for its judging | sensor | ``submission_binary`` |
| ``binaries/<partition>`` | the validated binary, pinned | ``submission_binary`` | judging |
| ``assets/<asset>/<partition>.<ext>`` | asset values (JSON, Parquet) | IO managers | assets, leaderboard |
| ``official/<asset>/<partition>/<phase>.jsonl.zst`` | official traces, answers | IO manager | judging |
| ``contestants/<name>.json`` | token digests | ``quantcraft contestants add`` | leaderboard |
| ``standings.json`` | the ranked standings | ``standings`` | finals |
| ``assets/final_standings/_.json`` | the finals' table | ``final_standings`` | leaderboard, CLI |

A judging's official trace is under its partition, the finals' shared set under ``_``. The
leaderboard never serves ``official/`` (organiser-held traces and answers) nor ``contestants/``.
"""

from __future__ import annotations

from collections.abc import Sequence

SUBMISSIONS = "submissions/"
INTAKE = "intake/"
BINARIES = "binaries/"
ASSETS = "assets/"
OFFICIAL = "official/"
CONTESTANTS = "contestants/"
UNPARTITIONED = "_"
STANDINGS = "standings.json"


def submission(contestant: str, filename: str = "") -> str:
    """An upload's key; with no file name, the contestant's prefix (for listing)."""
    return f"{SUBMISSIONS}{contestant}/{filename}"


def intake(partition: str) -> str:
    return f"{INTAKE}{partition}.json"


def binary(partition: str) -> str:
    return f"{BINARIES}{partition}"


def asset_value(asset: Sequence[str], partition: str | None, extension: str = "json") -> str:
    """An asset's value as its IO manager stores it; ``asset`` is the asset key's path."""
    return f"{ASSETS}{'/'.join(asset)}/{partition or UNPARTITIONED}.{extension}"


def official(asset: Sequence[str], partition: str | None, phase: str) -> str:
    """One phase of an official trace or its answers: a judging's own (``partition``) or the
    finals' shared set (None), zstd-compressed JSON Lines."""
    return f"{OFFICIAL}{'/'.join(asset)}/{partition or UNPARTITIONED}/{phase}.jsonl.zst"


def contestant(name: str) -> str:
    return f"{CONTESTANTS}{name}.json"


FINAL_STANDINGS = asset_value(("final_standings",), None)
