#!/usr/bin/env bash
# Installs everything QuantCraft needs on a fresh Debian 12 machine (run as root): system
# packages, a virtualenv with the project and its test tools, and the example engines.
set -euo pipefail
cd "$(dirname "$0")/.."

# docker.io, docker-compose, debootstrap: the production path (deploy/), built and tested offline.
# postgresql, redis-server: the scale-out tests start their own (tests/scale/).
SYSTEM_PACKAGES=(bubblewrap gcc make util-linux procps python3-venv chromium
                 docker.io docker-compose debootstrap postgresql redis-server
                 golang-go golang-github-gorilla-websocket-dev)
missing=()
for pkg in "${SYSTEM_PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y "${missing[@]}" || { apt-get update && apt-get install -y "${missing[@]}"; }
fi

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/pip install --quiet --upgrade pip
.venv/bin/pip install --quiet -e '.[dev]'

make -s -C quantcraft_dagster/judge/native
make -s -C examples/engines -j"$(nproc)"
# Commit subjects of at most 72 characters (.githooks/commit-msg), in a clone of the repository.
if git rev-parse --git-dir >/dev/null 2>&1; then git config core.hooksPath .githooks; fi
echo "setup done: .venv/bin/quantcraft is ready"
