from __future__ import annotations

from dataclasses import dataclass

import pytest

from quantcraft_dagster.core.intake import IntakeCursor, parse_key, scan


@dataclass
class Obj:
    key: str
    etag: str
    size: int = 10
    modified: float = 1_000.0


@pytest.mark.parametrize(
    "key",
    [
        "submissions/a",
        "submissions/a/b/c",
        "other/a/b",
        "submissions/../x",
        "submissions/al ice/e",
        "submissions/alice/.hidden",
        "submissions/-x/e",
    ],
)
def test_bad_layouts(key):
    with pytest.raises(ValueError):
        parse_key(key)


def test_scan_is_idempotent_and_sees_late_and_replaced_objects():
    listing = [Obj("submissions/alice/e1", "aa", modified=100.0), Obj("junk/file", "bb", modified=101.0)]
    first = scan(listing, IntakeCursor())
    assert [s.key for s in first.new] == ["submissions/alice/e1"]
    assert first.skipped and first.skipped[0][0] == "junk/file"
    cursor = IntakeCursor.from_json(first.cursor.to_json())
    again = scan(listing, cursor)
    assert again.new == [] and again.skipped == []  # a re-listing judges and logs nothing twice
    late = [*listing, Obj("submissions/bob/e", "cc", modified=50.0)]  # listed late, older stamp
    result = scan(late, cursor)
    assert [s.key for s in result.new] == ["submissions/bob/e"]
    replaced = [Obj("submissions/alice/e1", "dd", modified=200.0)]
    result = scan(replaced, result.cursor)
    assert [s.etag for s in result.new] == ["dd"]
    assert result.new[0].run_key == "submissions/alice/e1@dd"


def test_partition_keys_are_unique_and_safe():
    subs = scan(
        [Obj(f"submissions/c{i % 7}/e{i}", f"{i:032x}", modified=1e9 + i) for i in range(500)], IntakeCursor()
    )
    keys = [s.partition_key for s in subs.new]
    assert len(set(keys)) == 500
    assert all("..." not in k and k.isprintable() and "/" not in k for k in keys)
