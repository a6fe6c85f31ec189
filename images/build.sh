#!/usr/bin/env bash
# Build the test image streamctl-test/pg-redis:bookworm without any container registry:
# a Debian bookworm root filesystem (debootstrap, minbase) holding PostgreSQL 15 (postgres_fdw is part of
# Debian's postgresql-15 package) and Redis, plus an entrypoint honouring the official images' contract,
# imported with `docker import`.
#
# Keyed by its inputs: the image is also tagged TAG-KEY, KEY a hash of this script, the entrypoint, the
# suite, the packages and the mirror, and labelled io.streamctl.test-image.key=KEY. An image with this key
# is reused; a changed input builds a new one (never a stale image under the old name). TAG is then moved
# to it, and the keyed tag is printed on stdout (tests use it, so checkouts side by side never share a
# stale image). The debootstrapped root filesystem is cached as a tarball outside the repository, so a
# rebuild after `docker rmi` or an entrypoint change takes seconds.
#
# Environment:
#   STREAMCTL_TEST_IMAGE     tag to build (default streamctl-test/pg-redis:bookworm)
#   STREAMCTL_DEBIAN_MIRROR  Debian archive URL (default: the one apt on this machine uses)
#   STREAMCTL_IMAGE_CACHE    cache directory (default ${XDG_CACHE_HOME:-$HOME/.cache}/streamctl/images)
#   FORCE=1                  rebuild even when an image with this key exists
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tag="${STREAMCTL_TEST_IMAGE:-streamctl-test/pg-redis:bookworm}"
suite=bookworm
packages=postgresql-15,redis-server,ca-certificates
cache="${STREAMCTL_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/streamctl/images}"

log() { printf '[build.sh] %s\n' "$*" >&2; }

# The Debian archive apt already uses here: a one-line `deb URL suite ...` or a deb822 `URIs:` field.
apt_mirror() {
    {
        grep -hE '^[[:space:]]*deb[[:space:]]' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
            awk '{for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; break }}'
        grep -hE '^[[:space:]]*URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}'
    } | grep -E '/debian/?$' | head -n 1
}

mirror="${STREAMCTL_DEBIAN_MIRROR:-$(apt_mirror || true)}"

# What the image is made of; a change to any of it is a new key, hence a new image.
image_key="$(cat "$here/build.sh" "$here/docker-entrypoint.sh" <(printf '%s %s %s' "$suite" "$packages" "$mirror") |
    sha256sum | cut -c1-12)"
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
    if [[ -z "$mirror" ]]; then
        log "no Debian mirror found in /etc/apt/sources.list*; set STREAMCTL_DEBIAN_MIRROR"
        exit 1
    fi
    command -v debootstrap >/dev/null || { log "debootstrap is not installed (apt-get install debootstrap)"; exit 1; }
    work="$(mktemp -d "$cache/rootfs.XXXXXX")"
    trap 'rm -rf "$work"' EXIT
    log "debootstrap $suite (minbase + $packages) from $mirror"
    debootstrap --variant=minbase --include="$packages" "$suite" "$work/root" "$mirror" >"$work/debootstrap.log" 2>&1 || {
        tail -n 30 "$work/debootstrap.log" >&2
        exit 1
    }
    # The Debian package creates a `main` cluster; the entrypoint creates its own in PGDATA instead.
    rm -rf "$work/root/var/lib/postgresql/15/main" "$work/root/etc/postgresql/15/main"
    # Trim what a container never needs: package caches and lists, documentation, man pages.
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

# Add the entrypoint to a copy of the cached tarball, so changing it never needs a new debootstrap.
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
cp "$rootfs_tar" "$stage/rootfs.tar"
install -D -m 0755 "$here/docker-entrypoint.sh" "$stage/add/usr/local/bin/docker-entrypoint.sh"
mkdir -p "$stage/add/data" "$stage/add/var/lib/postgresql/data" "$stage/add/docker-entrypoint-initdb.d"
tar --numeric-owner --owner=0 --group=0 -C "$stage/add" -rf "$stage/rootfs.tar" \
    ./usr/local/bin/docker-entrypoint.sh ./data ./var/lib/postgresql/data ./docker-entrypoint-initdb.d

log "docker import -> $keyed"
docker import \
    --change 'ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PGDATA=/var/lib/postgresql/data' \
    --change 'WORKDIR /data' \
    --change 'EXPOSE 5432 6379' \
    --change 'ENTRYPOINT ["docker-entrypoint.sh"]' \
    --change 'CMD ["postgres"]' \
    --change "LABEL io.streamctl.test-image.key=$image_key" \
    --message "streamctl test image: Debian $suite, PostgreSQL 15, Redis" \
    "$stage/rootfs.tar" "$keyed" >/dev/null
docker tag "$keyed" "$tag"
log "built $keyed ($tag points at it)"
echo "$keyed"
