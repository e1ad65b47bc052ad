#!/usr/bin/env bash
# Builds every image the production path needs, offline (no registry is ever asked):
#   quantcraft/bookworm:minbase  debootstrap --variant=minbase bookworm, docker import
#   quantcraft/sandbox:bookworm  glibc only: what a contestant's engine runs in
#   quantcraft/app:latest        code location, webserver, daemon, run worker, leaderboard
#   quantcraft/loadgen:latest    the sandbox image plus the load generator: the Docker sandbox's
#                                probe, whose namespaces a judging's engines join
#   quantcraft/s3-standin, quantcraft/postgres-standin   with `offline`: MinIO's and Postgres's
#                                stand-ins for deploy/compose.offline.yml
# Idempotent: the base is imported once; an image whose build context, Dockerfile, arguments and
# parents are unchanged is kept without asking docker build (deploy/context_hash.py labels each
# image with their fingerprint: on vfs a build that is all cache hits still took a minute).
# Prints what it built or kept and how long each step took.
#   bash deploy/build-images.sh            # base, sandbox, project and probe images
#   bash deploy/build-images.sh offline    # all of the above and the offline stand-ins
set -euo pipefail
cd "$(dirname "$0")/.."

BASE=${QUANTCRAFT_BASE_IMAGE:-quantcraft/bookworm:minbase}
SANDBOX=${QUANTCRAFT_SANDBOX_IMAGE:-quantcraft/sandbox:bookworm}
APP=${QUANTCRAFT_IMAGE:-quantcraft/app:latest}
LOADGEN=${QUANTCRAFT_LOADGEN_IMAGE:-quantcraft/loadgen:latest}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# The host's pip index (if it names one) and the CA bundle pip trusts are the build's: images
# install from the same registry through the same TLS path (a proxy's CA included).
PIP_INDEX=$(pip config get global.index-url 2>/dev/null || echo https://pypi.org/simple)
PIP_CA=${PIP_CERT:-$(pip config get global.cert 2>/dev/null || echo /etc/ssl/certs/ca-certificates.crt)}
mkdir -p .build
cp "$PIP_CA" .build/pip-ca.pem
# Every image built here carries this label, so a rebuild can drop the versions it replaced and
# nothing else on the host: under vfs each layer is a full copy and a day of rebuilds fills a disk.
OURS=quantcraft.image=1
export DOCKER_BUILDKIT=0  # the classic builder: no buildx plugin on Debian's docker.io

timed() {
  local what=$1 start=$SECONDS
  shift
  "$@"
  echo "$what: $((SECONDS - start)) s"
}

import_base() {
  local root ok=0
  root=$(mktemp -d /var/tmp/qc-rootfs.XXXXXX)
  if debootstrap --variant=minbase bookworm "$root" "$MIRROR" >/dev/null; then
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    chmod 755 "$root"  # mktemp made it 0700: the image's / must be searchable by every user
    tar -C "$root" -c . | docker import - "$BASE" >/dev/null || ok=$?
  else
    ok=1
  fi
  rm -rf "$root"
  return "$ok"
}

PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}

build() {  # build IMAGE DOCKERFILE PARENT...: quiet on success, the builder's log on failure
  local log key parents
  parents=$(docker image inspect -f '{{.Id}}' "${@:3}")
  key=$("$PYTHON" deploy/context_hash.py "$2" "$BASE" "$APP" "$SANDBOX" "$PIP_INDEX" $parents)
  if [ "$(docker image inspect -f '{{index .Config.Labels "quantcraft.context"}}' "$1" 2>/dev/null)" = "$key" ]; then
    echo "kept $1 (nothing it is built from changed)"
    return 0
  fi
  log=$(mktemp)
  if ! docker build --network host --force-rm --label "$OURS" --label "quantcraft.context=$key" \
      --build-arg "BASE=$BASE" --build-arg "PIP_INDEX_URL=$PIP_INDEX" \
      --build-arg "APP=$APP" --build-arg "SANDBOX=$SANDBOX" \
      -t "$1" -f "$2" . >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    return 1
  fi
  rm -f "$log"
}

if docker image inspect "$BASE" >/dev/null 2>&1; then
  echo "kept $BASE (already imported)"
else
  timed "$BASE" import_base
fi
what=${1:-all}
timed "$SANDBOX" build "$SANDBOX" deploy/sandbox.Dockerfile "$BASE"
timed "$APP" build "$APP" deploy/Dockerfile "$BASE"
timed "$LOADGEN" build "$LOADGEN" deploy/loadgen.Dockerfile "$APP" "$SANDBOX"
if [ "$what" = offline ]; then
  timed quantcraft/s3-standin:latest build quantcraft/s3-standin:latest deploy/s3-standin.Dockerfile "$APP"
  timed quantcraft/postgres-standin:latest build quantcraft/postgres-standin:latest deploy/postgres-standin.Dockerfile "$BASE"
fi
docker image prune --force --filter "label=$OURS" >/dev/null  # dangling: replaced by this build
docker image ls --format '{{.Repository}}:{{.Tag}}  {{.Size}}' | grep '^quantcraft/' 
