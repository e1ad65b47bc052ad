"""``check_header``: the rules the first 64 bytes decide, with the reasons ``validate`` gives."""

from __future__ import annotations

import pytest

from bench.upload_bench import ELF_HEADER
from quantcraft_dagster.core.binary import HEADER_BYTES, Rejected, check_header, validate


def test_an_x86_64_executable_header_passes():
    assert check_header(ELF_HEADER) == 2  # ET_EXEC


@pytest.mark.parametrize(
    "head",
    [
        b"#!/bin/sh\n",
        b"MZ" + bytes(62),
        ELF_HEADER[:4] + b"\x01" + ELF_HEADER[5:],  # 32-bit
        ELF_HEADER[:18] + (183).to_bytes(2, "little") + ELF_HEADER[20:],  # AArch64
        ELF_HEADER[:16] + (1).to_bytes(2, "little") + ELF_HEADER[18:],  # relocatable object
        ELF_HEADER[:40],  # truncated
    ],
)
def test_a_wrong_header_is_refused_as_validate_refuses_the_whole_file(head):
    with pytest.raises(Rejected) as from_head:
        check_header(head[:HEADER_BYTES])
    with pytest.raises(Rejected) as from_file:
        validate(head)
    assert str(from_head.value) == str(from_file.value)
