"""The fingerprint of an image's build: every file ``docker build .`` would send (the
``.dockerignore`` applied by docker-py's own reading of it), with its path and mode, hashed with
the arguments given (the Dockerfile, the build arguments, the parent images' ids).

``deploy/build-images.sh`` labels each image it builds with it and skips a build whose image
already carries it: under the vfs storage driver even a build that is all cache hits took 30-60 s
an image, and the compose tests rebuild to be sure they test the code at hand.

    python deploy/context_hash.py ARG...
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from docker.utils.build import exclude_paths

ROOT = Path(__file__).resolve().parent.parent


def fingerprint(args: list[str]) -> str:
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in ignore if line.strip() and not line.startswith("#")]
    digest = hashlib.sha256("\0".join(args).encode())
    for rel in sorted(exclude_paths(str(ROOT), patterns)):
        path = ROOT / rel
        if path.is_file() and not path.is_symlink():
            digest.update(f"\0{rel}\0{path.stat().st_mode & 0o777:o}\0".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


if __name__ == "__main__":
    print(fingerprint(sys.argv[1:]))
