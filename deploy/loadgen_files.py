"""Lists every file the load generator needs (``python -m quantcraft_dagster.judge.loadgen``): the
interpreter, each module a real replay imports (with either client) and its bytecode, the native
client ``qcload``, and the shared libraries they load. The probe image
(``deploy/loadgen.Dockerfile``) copies only these: on a vfs storage driver a container costs time
per file of its image, and the Docker sandbox starts one per judging.

The modules are those of a real run, not of an import (the resolver imports ``encodings.idna``
only when it connects): the platform's example engine is started here, and the load generator
replays a few orders of phase A and of an open-loop phase at it under ``-X importtime``.
Run with the interpreter the image will run; prints one absolute path per line.
"""

from __future__ import annotations

import importlib.util
import os
import pickle
import py_compile
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from quantcraft_dagster import settings
from quantcraft_dagster.judge import native_client
from quantcraft_dagster.judge.bundles import phase_bundle
from quantcraft_dagster.judge.replay import LoadPlan
from quantcraft_dagster.judge.sandbox import LOADGEN_MODULE


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def replayed_modules() -> set[str]:
    """Names of the modules the load generator imported while replaying at the example engine."""
    port = free_port()
    engine = subprocess.Popen(
        [str(settings.current().calibration_engines / "engine"), "--port", str(port)],
        stderr=subprocess.DEVNULL,
    )
    names: set[str] = set()
    try:
        time.sleep(0.5)
        bundle = phase_bundle("quick", "A")
        n = 50
        orders = bundle.orders[:n]
        plan = LoadPlan(
            phase="A", port=port, payloads=bundle.payloads[:n], order_ids=[o.order_id for o in orders],
            conn_of=[0] * n, connections=1, book_symbols=list(bundle.books)[:1],
        )  # fmt: skip
        with tempfile.TemporaryDirectory() as tmp:
            open_loop = replace(plan, phase="C", rate=1000.0, window=1, book_symbols=[])
            for case in (plan, open_loop, replace(open_loop, client="picows")):
                plan_path, result_path = Path(tmp, "plan.pkl"), Path(tmp, "result.pkl")
                plan_path.write_bytes(pickle.dumps(case))
                argv = ["-X", "importtime", "-m", LOADGEN_MODULE, str(plan_path), str(result_path)]
                run = subprocess.run([sys.executable, *argv], capture_output=True, text=True, check=True)
                result = pickle.loads(result_path.read_bytes())
                if not (result.healthy and all(result.recv_ns)):  # else a replay's modules are missed
                    raise SystemExit(f"the replay at the example engine failed: {result.health_error}")
                for line in run.stderr.splitlines():
                    if line.startswith("import time:") and "|" in line:
                        names.add(line.rsplit("|", 1)[1].strip())
    finally:
        engine.kill()
    return names


files = {sys.executable, os.path.join(sys.prefix, "pyvenv.cfg"), str(native_client.BINARY)}
for name in replayed_modules() | {"runpy", LOADGEN_MODULE}:
    try:
        spec = importlib.util.find_spec(name)
    except ImportError:  # a module tried and not found (pickle looks for Jython's ``org``)
        continue
    if spec is not None and spec.origin and os.path.isabs(spec.origin):
        files.add(spec.origin)
        if spec.origin.endswith(".py"):
            # With its bytecode, compiled here if it is not yet: without, every replay compiled
            # each module again (the probe's root is read-only), most of an engine run's start.
            pyc = importlib.util.cache_from_source(spec.origin)
            files.add(py_compile.compile(spec.origin, cfile=pyc, doraise=True))
# Python finds its standard library by this landmark.
files.add(os.path.join(sysconfig.get_paths()["stdlib"], "os.py"))
for path in list(files):
    if path.endswith(".so") or path in (sys.executable, str(native_client.BINARY)):
        for line in subprocess.run(["ldd", path], capture_output=True, text=True).stdout.splitlines():
            parts = line.split("=>")[-1].split()
            if parts and parts[0].startswith("/"):
                files.add(parts[0])


def chain(path: str):
    """``path`` with its directories resolved (the image's /lib is a symlink to usr/lib: copying a
    real /lib over it would break it), then every symlink it leads through, to the file."""
    while True:
        path = os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))
        yield path
        if not os.path.islink(path):
            return
        path = os.path.join(os.path.dirname(path), os.readlink(path))


for path in sorted({link for p in files if os.path.exists(p) for link in chain(p)}):
    print(path)
