#!/usr/bin/env bash
# Build the Swarm test node image streamctl-test/swarm-node:bookworm: Debian with Debian's docker.io, whose
# entrypoint (images/swarm-node/entrypoint.sh) starts a nested Docker engine. The multi-host Swarm tests run
# several of these on a Docker network of their own and join their engines into one Swarm.
#
# Like images/build.sh: the debootstrapped root filesystem is cached as a tarball outside the repository,
# and the image is keyed by its inputs (this script, the entrypoint, suite, packages, mirror): tagged
# TAG-KEY, reused while the key stands, TAG moved to it, and the keyed tag printed on stdout.
#
# Environment:
#   STREAMCTL_TEST_NODE_IMAGE  tag to build (default streamctl-test/swarm-node:bookworm)
#   STREAMCTL_DEBIAN_MIRROR    Debian archive URL (default: the one apt on this machine uses)
#   STREAMCTL_IMAGE_CACHE      cache directory (default ${XDG_CACHE_HOME:-$HOME/.cache}/streamctl/images)
#   FORCE=1                    rebuild even when an image with this key exists
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tag="${STREAMCTL_TEST_NODE_IMAGE:-streamctl-test/swarm-node:bookworm}"
suite=bookworm
packages=docker.io,iptables,iproute2,procps,util-linux,ca-certificates
cache="${STREAMCTL_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/streamctl/images}"

log() { printf '[build-swarm-node.sh] %s\n' "$*" >&2; }

apt_mirror() {  # the Debian archive apt already uses here (one-line or deb822 sources)
    {
        grep -hE '^[[:space:]]*deb[[:space:]]' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
            awk '{for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; break }}'
        grep -hE '^[[:space:]]*URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}'
    } | grep -E '/debian/?$' | head -n 1
}

mirror="${STREAMCTL_DEBIAN_MIRROR:-$(apt_mirror || true)}"
image_key="$(cat "$here/build-swarm-node.sh" "$here/swarm-node/entrypoint.sh" \
    <(printf '%s %s %s' "$suite" "$packages" "$mirror") | sha256sum | cut -c1-12)"
if [[ "$tag" == *:* ]]; then keyed="$tag-$image_key"; else keyed="$tag:$image_key"; fi
if [[ "${FORCE:-0}" != 1 ]] && docker image inspect "$keyed" >/dev/null 2>&1; then
    docker tag "$keyed" "$tag"
    log "$keyed is up to date (FORCE=1 rebuilds); $tag points at it"
    echo "$keyed"
    exit 0
fi

key="$(printf '%s %s %s' "$suite" "$packages" "$mirror" | sha256sum | cut -c1-12)"
rootfs_tar="$cache/rootfs-$suite-$key.tar"
mkdir -p "$cache"
if [[ ! -s "$rootfs_tar" ]]; then
    [[ -n "$mirror" ]] || { log "no Debian mirror found in /etc/apt/sources.list*; set STREAMCTL_DEBIAN_MIRROR"; exit 1; }
    command -v debootstrap >/dev/null || { log "debootstrap is not installed (apt-get install debootstrap)"; exit 1; }
    work="$(mktemp -d "$cache/rootfs.XXXXXX")"
    trap 'rm -rf "$work"' EXIT
    log "debootstrap $suite (minbase + $packages) from $mirror"
    debootstrap --variant=minbase --include="$packages" "$suite" "$work/root" "$mirror" >"$work/debootstrap.log" 2>&1 || {
        tail -n 30 "$work/debootstrap.log" >&2
        exit 1
    }
    rm -rf "$work/root"/var/cache/apt/archives/*.deb "$work/root"/var/lib/apt/lists/* \
        "$work/root"/usr/share/doc/* "$work/root"/usr/share/man/* "$work/root"/usr/share/locale/*
    tar --numeric-owner -C "$work/root" -cf "$work/rootfs.tar" .
    mv "$work/rootfs.tar" "$rootfs_tar"
    rm -rf "$work"
    trap - EXIT
    log "cached root filesystem: $rootfs_tar ($(du -h "$rootfs_tar" | cut -f1))"
else
    log "using cached root filesystem $rootfs_tar"
fi

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
cp "$rootfs_tar" "$stage/rootfs.tar"
install -D -m 0755 "$here/swarm-node/entrypoint.sh" "$stage/add/usr/local/bin/swarm-node-entrypoint"
mkdir -p "$stage/add/var/lib/docker"
tar --numeric-owner --owner=0 --group=0 -C "$stage/add" -rf "$stage/rootfs.tar" \
    ./usr/local/bin/swarm-node-entrypoint ./var/lib/docker

log "docker import -> $keyed"
docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'VOLUME /var/lib/docker' \
    --change 'EXPOSE 2375 2377 7946 4789' \
    --change 'ENTRYPOINT ["swarm-node-entrypoint"]' \
    --change "LABEL io.streamctl.test-image.key=$image_key" \
    --message "streamctl Swarm test node: Debian $suite with docker.io" \
    "$stage/rootfs.tar" "$keyed" >/dev/null
docker tag "$keyed" "$tag"
log "built $keyed ($tag points at it)"
echo "$keyed"
