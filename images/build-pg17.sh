#!/usr/bin/env bash
# Build streamctl-test/pg:trixie-17 without any container registry: a Debian trixie root filesystem
# (debootstrap, minbase) holding PostgreSQL 17, with the same entrypoint as the bookworm test image
# (images/build.sh). Tests use it beside the bookworm image (PostgreSQL 15) to change a node's image to
# another PostgreSQL major version. Like the official images, it declares its major version in PG_MAJOR.
#
# Keyed by its inputs like images/build.sh (this script, the entrypoint, suite, packages, mirror): an image
# with the same key (tag TAG-KEY) is reused and TAG moved to it, a changed input builds a new one (FORCE=1
# rebuilds anyway); the keyed tag is printed on stdout. The root filesystem is cached as a tarball outside
# the repository. Environment: STREAMCTL_PG17_IMAGE (tag), STREAMCTL_DEBIAN_MIRROR,
# STREAMCTL_IMAGE_CACHE, FORCE (as for images/build.sh).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tag="${STREAMCTL_PG17_IMAGE:-streamctl-test/pg:trixie-17}"
suite=trixie
major=17
packages="postgresql-$major,ca-certificates"
cache="${STREAMCTL_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/streamctl/images}"

log() { printf '[build-pg17.sh] %s\n' "$*" >&2; }

apt_mirror() {  # the Debian archive apt uses here (one-line or deb822 sources)
    {
        grep -hE '^[[:space:]]*deb[[:space:]]' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
            awk '{for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; break }}'
        grep -hE '^[[:space:]]*URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}'
    } | grep -E '/debian/?$' | head -n 1
}

mirror="${STREAMCTL_DEBIAN_MIRROR:-$(apt_mirror || true)}"
image_key="$(cat "$here/build-pg17.sh" "$here/docker-entrypoint.sh" <(printf '%s %s %s' "$suite" "$packages" "$mirror") |
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
    [[ -n "$mirror" ]] || { log "no Debian mirror found in /etc/apt/sources.list*; set STREAMCTL_DEBIAN_MIRROR"; exit 1; }
    command -v debootstrap >/dev/null || { log "debootstrap is not installed (apt-get install debootstrap)"; exit 1; }
    work="$(mktemp -d "$cache/rootfs.XXXXXX")"
    trap 'rm -rf "$work"' EXIT
    log "debootstrap $suite (minbase + $packages) from $mirror"
    debootstrap --variant=minbase --include="$packages" "$suite" "$work/root" "$mirror" >"$work/debootstrap.log" 2>&1 || {
        tail -n 30 "$work/debootstrap.log" >&2
        exit 1
    }
    rm -rf "$work/root/var/lib/postgresql/$major/main" "$work/root/etc/postgresql/$major/main"
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
install -D -m 0755 "$here/docker-entrypoint.sh" "$stage/add/usr/local/bin/docker-entrypoint.sh"
mkdir -p "$stage/add/var/lib/postgresql/data" "$stage/add/docker-entrypoint-initdb.d"
tar --numeric-owner --owner=0 --group=0 -C "$stage/add" -rf "$stage/rootfs.tar" \
    ./usr/local/bin/docker-entrypoint.sh ./var/lib/postgresql/data ./docker-entrypoint-initdb.d

log "docker import -> $keyed"
docker import \
    --change "ENV PATH=/usr/lib/postgresql/$major/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    --change "ENV PG_MAJOR=$major" \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PGDATA=/var/lib/postgresql/data' \
    --change 'EXPOSE 5432' \
    --change 'ENTRYPOINT ["docker-entrypoint.sh"]' \
    --change 'CMD ["postgres"]' \
    --change "LABEL io.streamctl.test-image.key=$image_key" \
    --message "streamctl test image: Debian $suite, PostgreSQL $major" \
    "$stage/rootfs.tar" "$keyed" >/dev/null
docker tag "$keyed" "$tag"
log "built $keyed ($tag points at it)"
echo "$keyed"
