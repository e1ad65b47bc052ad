from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from quantcraft_dagster.core.binary import Rejected, validate

C_MAIN = "int main(void){return 0;}\n"


def _compile(tmp_path: Path, *flags: str) -> bytes:
    src = tmp_path / "m.c"
    src.write_text(C_MAIN)
    out = tmp_path / ("a" + "".join(f.strip("-") for f in flags))
    subprocess.run(["gcc", *flags, "-o", str(out), str(src)], check=True)
    return out.read_bytes()


@pytest.mark.parametrize("flags", [(), ("-static",), ("-no-pie",), ("-static-pie",)])
def test_executables_are_accepted(tmp_path, flags):
    info = validate(_compile(tmp_path, *flags))
    assert info.size > 0 and len(info.sha256) == 64


def _elf_with_machine(data: bytes, machine: int) -> bytes:
    return data[:18] + machine.to_bytes(2, "little") + data[20:]


def test_each_bad_upload_has_its_own_reason(tmp_path):
    exe = _compile(tmp_path)
    libz = next(
        Path(p)
        for p in ("/usr/lib/x86_64-linux-gnu/libz.so.1", "/lib/x86_64-linux-gnu/libz.so.1")
        if Path(p).exists()
    )
    cases = {
        "empty": b"",
        "huge": b"\x7fELF" + b"\0" * (60 * 2**20),
        "text": b"hello, I am an engine\n",
        "script": b"#!/bin/sh\necho hi\n",
        "arm64": _elf_with_machine(exe, 183),
        "library": libz.read_bytes(),
        "object": exe[:16] + (1).to_bytes(2, "little") + exe[18:],
    }
    reasons = {}
    for name, data in cases.items():
        start = time.perf_counter()
        with pytest.raises(Rejected) as err:
            validate(data)
        assert time.perf_counter() - start < 1.0
        reasons[name] = str(err.value)
    assert len(set(reasons.values())) == len(cases), reasons
    assert "empty" in reasons["empty"] and "50 MiB" in reasons["huge"]
    assert "ARM64" in reasons["arm64"] and "shared library" in reasons["library"]
    assert "script" in reasons["script"] and "not an ELF" in reasons["text"]


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
def test_shared_library_built_here_is_rejected(tmp_path):
    with pytest.raises(Rejected, match="shared library"):
        validate(_compile(tmp_path, "-shared", "-fPIC"))
