#!/usr/bin/env bash
# Build the test image streamctl-test/prometheus:bookworm without any container registry: a Debian
# bookworm root filesystem (debootstrap, minbase) holding Debian's `prometheus` package, imported with
# `docker import` and shaped like the official prom/prometheus image, so the Docker backend runs either the
# same way: entrypoint /bin/prometheus (Debian's /usr/bin/prometheus), configuration in
# /etc/prometheus/prometheus.yml, data in /prometheus, run as nobody (65534), which owns both directories.
#
# Keyed by its inputs like images/build.sh: tagged TAG-KEY, KEY a hash of this script, the suite, the
# packages and the mirror, and labelled io.streamctl.test-image.key=KEY; an image with this key is reused,
# TAG is moved to it, and the keyed tag is printed on stdout. The debootstrapped root filesystem is cached
# as a tarball outside the repository (the same cache as images/build.sh).
#
# Environment:
#   STREAMCTL_TEST_PROMETHEUS_IMAGE  tag to build (default streamctl-test/prometheus:bookworm)
#   STREAMCTL_DEBIAN_MIRROR          Debian archive URL (default: the one apt on this machine uses)
#   STREAMCTL_IMAGE_CACHE            cache directory (default ${XDG_CACHE_HOME:-$HOME/.cache}/streamctl/images)
#   FORCE=1                          rebuild even when an image with this key exists
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tag="${STREAMCTL_TEST_PROMETHEUS_IMAGE:-streamctl-test/prometheus:bookworm}"
suite=bookworm
packages=prometheus,ca-certificates
cache="${STREAMCTL_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/streamctl/images}"

log() { printf '[build-prometheus.sh] %s\n' "$*" >&2; }

# The Debian archive apt already uses here (as images/build.sh finds it).
apt_mirror() {
    {
        grep -hE '^[[:space:]]*deb[[:space:]]' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
            awk '{for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; break }}'
        grep -hE '^[[:space:]]*URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}'
    } | grep -E '/debian/?$' | head -n 1
}

mirror="${STREAMCTL_DEBIAN_MIRROR:-$(apt_mirror || true)}"

image_key="$(cat "$here/build-prometheus.sh" <(printf '%s %s %s' "$suite" "$packages" "$mirror") |
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
    # The package's own configuration and data belong to its systemd unit; the image gets the official
    # image's layout instead (below).
    rm -rf "$work/root/etc/prometheus"/* "$work/root/var/lib/prometheus"/*
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

# The official image's layout, added to a copy of the cached tarball: /etc/prometheus + /prometheus owned
# by nobody, with a minimal configuration scraping itself (/bin/prometheus is there already: bookworm's
# /bin is a link to /usr/bin).
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
cp "$rootfs_tar" "$stage/rootfs.tar"
# The package's (emptied) /etc/prometheus goes: `docker import` refuses a path twice in one archive.
tar --delete -f "$stage/rootfs.tar" ./etc/prometheus
mkdir -p "$stage/add/etc/prometheus" "$stage/add/prometheus"
cat >"$stage/add/etc/prometheus/prometheus.yml" <<'YML'
global:
  scrape_interval: 15s
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ['localhost:9090']
YML
tar --numeric-owner --owner=65534 --group=65534 -C "$stage/add" -rf "$stage/rootfs.tar" \
    ./etc/prometheus ./prometheus

log "docker import -> $keyed"
docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'USER 65534' \
    --change 'WORKDIR /prometheus' \
    --change 'VOLUME ["/prometheus"]' \
    --change 'EXPOSE 9090' \
    --change 'ENTRYPOINT ["/bin/prometheus"]' \
    --change 'CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]' \
    --change "LABEL io.streamctl.test-image.key=$image_key" \
    --message "streamctl test image: Debian $suite, Prometheus (the official image's layout)" \
    "$stage/rootfs.tar" "$keyed" >/dev/null
docker tag "$keyed" "$tag"
log "built $keyed ($tag points at it)"
echo "$keyed"
