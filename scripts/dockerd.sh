#!/usr/bin/env bash
# Starts a Docker daemon for the production-path tests unless one already answers. The flags fit
# machines with no iptables and no pullable images (this project's CI): no bridge network, and
# overlay2 where the kernel mounts overlays on /var/lib/docker's filesystem, else vfs. A production
# host runs its distribution's dockerd service instead.
set -euo pipefail
docker info >/dev/null 2>&1 && exit 0
command -v dockerd >/dev/null || { echo "dockerd is not installed (scripts/setup.sh installs docker.io)" >&2; exit 1; }
# The daemon belongs to the host, not to whatever started it (a test's judge sits in the judges'
# heavy cpu group, judge/cpu_weight.py): into the root cpu group first, on cgroup v1 or v2.
for procs in /sys/fs/cgroup/cpu/cgroup.procs /sys/fs/cgroup/cgroup.procs; do
  [ -w "$procs" ] && echo $$ >"$procs" 2>/dev/null && break
done
# vfs copies a whole image per container (the project image's run containers: 1 GB each) and
# made the suite's Docker judgings about twice as slow; named, not guessed, so a host's old vfs
# state never decides it.
storage=vfs
mkdir -p /var/lib/docker
probe=$(mktemp -d /var/lib/docker/overlay-probe.XXXXXX)
mkdir -p "$probe"/{lower,upper,work,merged}
if mount -t overlay overlay -o "lowerdir=$probe/lower,upperdir=$probe/upper,workdir=$probe/work" \
  "$probe/merged" 2>/dev/null; then
  umount "$probe/merged"
  storage=overlay2
fi
rm -rf "$probe"
nohup dockerd --iptables=false --ip6tables=false --storage-driver="$storage" --bridge=none \
  >"${DOCKERD_LOG:-/tmp/dockerd.log}" 2>&1 </dev/null &
for _ in $(seq 60); do
  if docker info >/dev/null 2>&1; then
    # dockerd is a platform process like Dagster's: SCHED_IDLE, so copying a flooding engine's
    # output never delays the load generator. Only dockerd's own threads: containerd (already
    # started as its child) and the containers keep normal scheduling.
    chrt --idle --all-tasks --pid 0 "$(pgrep -o -x dockerd)"
    exit 0
  fi
  sleep 0.5
done
echo "dockerd did not answer within 30 s; see ${DOCKERD_LOG:-/tmp/dockerd.log}" >&2
exit 1
