"""Upload validation: is this an x86-64 ELF executable we may start at all?

Pure: it reads the ELF headers from bytes, so it runs before any sandbox and in well under a
second even for a 50 MiB file. Position-independent executables (ET_DYN with a program
interpreter, or static-pie flagged DF_1_PIE) are accepted; shared libraries are not.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

MAX_BINARY_BYTES = 50 * 1024 * 1024
HEADER_BYTES = 64  # the ELF64 file header

_MACHINES = {
    3: "x86 (32-bit)",
    40: "ARM (32-bit)",
    62: "x86-64",
    183: "ARM64 (AArch64)",
    243: "RISC-V",
    8: "MIPS",
    20: "PowerPC",
    21: "PowerPC64",
    22: "s390",
}
_ET_EXEC, _ET_DYN = 2, 3
_PT_DYNAMIC, _PT_INTERP = 2, 3
_DT_FLAGS_1, _DF_1_PIE = 0x6FFFFFFB, 0x08000000


@dataclass(frozen=True, slots=True)
class BinaryInfo:
    """What we learnt about an accepted upload."""

    size: int
    sha256: str
    linkage: str  # "static", "dynamic", "static-pie"


class Rejected(ValueError):
    """The upload is not something the judge may start; the message is the contestant's reason."""


def check_size(size: int, max_bytes: int = MAX_BINARY_BYTES) -> None:
    """The size rules alone, so a stored object can be refused before it is downloaded."""
    if size == 0:
        raise Rejected("empty file: upload the compiled engine binary")
    if size > max_bytes:
        raise Rejected(f"file is {size / 2**20:.1f} MiB, over the {max_bytes // 2**20} MiB limit")


def check_header(data: bytes) -> int:
    """The rules the ELF file header alone decides (its first ``HEADER_BYTES``), so an upload can be
    refused while it is still arriving; returns the ELF type."""
    if data[:2] == b"#!":
        raise Rejected("a script (starts with #!), not a compiled ELF executable")
    if data[:4] != b"\x7fELF":
        raise Rejected("not an ELF file (no \\x7fELF magic): upload a compiled Linux binary")
    if len(data) < HEADER_BYTES or data[4] != 2:
        raise Rejected("32-bit or truncated ELF: the judge runs 64-bit x86-64 executables only")
    if data[5] != 1:
        raise Rejected("big-endian ELF: the judge runs little-endian x86-64 executables only")
    e_type, e_machine = struct.unpack_from("<HH", data, 16)
    if e_machine != 62:
        name = _MACHINES.get(e_machine, f"machine {e_machine}")
        raise Rejected(f"ELF built for {name}, not x86-64")
    if e_type not in (_ET_EXEC, _ET_DYN):
        kind = {0: "no file type", 1: "a relocatable object (.o)", 4: "a core dump"}.get(
            e_type, f"ELF type {e_type}"
        )
        raise Rejected(f"{kind}, not an executable")
    return e_type


def validate(data: bytes, max_bytes: int = MAX_BINARY_BYTES) -> BinaryInfo:
    """Accept an x86-64 ELF executable or raise :class:`Rejected` with a specific reason."""
    size = len(data)
    check_size(size, max_bytes)
    e_type = check_header(data[:HEADER_BYTES])
    segments = _program_headers(data)
    has_interp = any(p_type == _PT_INTERP for p_type, _, _ in segments)
    if e_type == _ET_EXEC:
        linkage = "dynamic" if has_interp else "static"
    elif has_interp:
        linkage = "dynamic"
    elif _is_static_pie(data, segments):
        linkage = "static-pie"
    else:
        raise Rejected("a shared library (no program interpreter), not an executable")
    return BinaryInfo(size, hashlib.sha256(data).hexdigest(), linkage)


def _program_headers(data: bytes) -> list[tuple[int, int, int]]:
    """(type, file offset, file size) of each program header."""
    e_phoff = struct.unpack_from("<Q", data, 32)[0]
    e_phentsize, e_phnum = struct.unpack_from("<HH", data, 54)
    if e_phnum == 0 or e_phentsize < 56 or e_phoff + e_phnum * e_phentsize > len(data):
        raise Rejected("ELF has no valid program headers, so it cannot be executed")
    headers = []
    for i in range(e_phnum):
        base = e_phoff + i * e_phentsize
        p_type = struct.unpack_from("<I", data, base)[0]
        p_offset, _, _, p_filesz = struct.unpack_from("<QQQQ", data, base + 8)
        headers.append((p_type, p_offset, p_filesz))
    return headers


def _is_static_pie(data: bytes, segments: list[tuple[int, int, int]]) -> bool:
    for p_type, offset, filesz in segments:
        if p_type != _PT_DYNAMIC:
            continue
        end = min(offset + filesz, len(data))
        for pos in range(offset, end - 15, 16):
            tag, value = struct.unpack_from("<qQ", data, pos)
            if tag == 0:
                break
            if tag == _DT_FLAGS_1 and value & _DF_1_PIE:
                return True
    return False
