# shellcheck shell=bash disable=SC2154  # tag, suite, packages: set by the sourcing script
# The blocks the image build scripts share; sourced by each of them (`source "$here/lib.sh"`), never run.
#
# An image is keyed by its inputs: tagged TAG-KEY, KEY a hash of the build script, the files it names, this
# library and a string of other inputs (suite, packages, mirror; a base image's id). An image with this key
# is reused (FORCE=1 rebuilds anyway); a changed input builds a new one, never a stale image under the old
# name. TAG is then moved to it, and the keyed tag is printed on stdout: callers take its last line.
#
# Images without a registry start from a Debian root filesystem made with debootstrap (minbase) from the
# mirror apt uses here, cached as a tarball outside the repository (keyed by suite, packages and mirror),
# so a rebuild after `docker rmi` or an entrypoint change takes seconds; `docker import` makes the image.
#
# The sourcing script sets `tag` (and, for a Debian image, `suite` and `packages`) before calling these.
# Environment: STREAMCTL_DEBIAN_MIRROR (Debian archive URL; default the one apt on this machine uses),
# STREAMCTL_IMAGE_CACHE (default ${XDG_CACHE_HOME:-$HOME/.cache}/streamctl/images), FORCE=1.

lib="${BASH_SOURCE[0]}"
script="$(cd "$(dirname "${BASH_SOURCE[1]}")" && pwd)/$(basename "${BASH_SOURCE[1]}")"
cache="${STREAMCTL_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/streamctl/images}"

log() { printf '[%s] %s\n' "$(basename "$script")" "$*" >&2; }

# The Debian archive apt already uses here: a one-line `deb URL suite ...` or a deb822 `URIs:` field.
apt_mirror() {
    {
        grep -hE '^[[:space:]]*deb[[:space:]]' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
            awk '{for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; break }}'
        grep -hE '^[[:space:]]*URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}'
    } | grep -E '/debian/?$' | head -n 1
}

# reuse_keyed INPUTS [FILE...]: set image_key (a hash of the script, FILE..., this library and the string
# INPUTS) and keyed (TAG-KEY). When an image with that key exists, move TAG to it, print it and end the
# script (exit 0); otherwise return, and the script builds `keyed`.
reuse_keyed() {
    local inputs=$1
    shift
    image_key="$(cat "$script" "$@" "$lib" <(printf '%s' "$inputs") | sha256sum | cut -c1-12)"
    if [[ "$tag" == *:* ]]; then keyed="$tag-$image_key"; else keyed="$tag:$image_key"; fi
    if [[ "${FORCE:-0}" != 1 ]] && docker image inspect "$keyed" >/dev/null 2>&1; then
        docker tag "$keyed" "$tag"
        log "$keyed is up to date (FORCE=1 rebuilds); $tag points at it"
        echo "$keyed"
        exit 0
    fi
}

# reuse_debian_keyed [FILE...]: reuse_keyed for a Debian image, whose other inputs are suite, packages and
# the mirror (set in `mirror` for debian_stage).
reuse_debian_keyed() {
    mirror="${STREAMCTL_DEBIAN_MIRROR:-$(apt_mirror || true)}"
    reuse_keyed "$suite $packages $mirror" "$@"
}

# debian_stage [PATH...]: a copy of the Debian root filesystem (suite + packages) as $stage/rootfs.tar, in a
# temporary directory `stage` removed on exit, to which the script adds its own files (stage_add). A root
# filesystem not cached yet is made with debootstrap, trimmed of PATH... (relative to the root; globs
# allowed) and of what a container never needs (package caches and lists, documentation, man pages), then
# cached.
debian_stage() {
    local key rootfs_tar path
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
        for path in "$@"; do
            # shellcheck disable=SC2086 # PATH may be a glob, expanded on purpose
            rm -rf "$work/root"/$path
        done
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
    # The script's own files go into a copy, so changing them never needs a new debootstrap.
    stage="$(mktemp -d)"
    trap 'rm -rf "$stage"' EXIT
    cp "$rootfs_tar" "$stage/rootfs.tar"
}

# stage_add UID PATH...: append $stage/add/PATH... to the staged root filesystem, owned by UID:UID.
stage_add() {
    local owner=$1
    shift
    tar --numeric-owner --owner="$owner" --group="$owner" -C "$stage/add" -rf "$stage/rootfs.tar" "$@"
}

# import_image OPTION...: `docker import` the staged root filesystem as `keyed` with these options
# (--change ..., --message ...) and the key's label, then built.
import_image() {
    log "docker import -> $keyed"
    docker import "$@" --change "LABEL io.streamctl.test-image.key=$image_key" "$stage/rootfs.tar" "$keyed" >/dev/null
    built
}

# built: move TAG to the image just built as `keyed` and print the keyed tag.
built() {
    docker tag "$keyed" "$tag"
    log "built $keyed ($tag points at it)"
    echo "$keyed"
}
