#!/bin/sh
# Entrypoint of a Swarm test node: a container running its own Docker engine (Docker-in-Docker), for the
# multi-host Swarm tests. The container runs with all capabilities but CAP_SYS_RESOURCE (--privileged is
# refused where that one is missing from the bounding set), so this does what --privileged would have done:
# /sys and each cgroup v1 hierarchy become writable, then dockerd starts with overlay2 on the named volume
# mounted at /var/lib/docker. The API listens on TCP 2375 inside the test's own Docker network only.
set -eu

mount -o remount,rw /sys
if mountpoint -q /sys/fs/cgroup; then
    mount -o remount,rw /sys/fs/cgroup
fi
awk '$3 == "cgroup" || $3 == "cgroup2" { print $2 }' /proc/self/mounts | while read -r dir; do
    mount -o remount,bind,rw "$dir"
done

exec dockerd --host=unix:///var/run/docker.sock --host=tcp://0.0.0.0:2375 --storage-driver=overlay2 "$@"
