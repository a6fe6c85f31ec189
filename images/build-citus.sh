#!/usr/bin/env bash
# Build the Citus test image streamctl-test/pg-citus:bookworm on top of the test image (images/build.sh),
# as citusdata/citus is built on postgres (see images/citus/Dockerfile). Needs no registry: the base is
# local, the Citus build comes from a directory beside the checkout (never from the repository).
#
# Keyed by its inputs like images/build.sh: tagged TAG-KEY, KEY a hash of this script, the Dockerfile, the
# init script, the base image's id (so an entrypoint change rebuilds this one too) and the tarball's name;
# an image with this key is reused, TAG is moved to it, and the keyed tag is printed on stdout.
# Exit 3 (nothing built) when no Citus build is there.
#
# Environment:
#   STREAMCTL_TEST_CITUS_IMAGE  tag to build (default streamctl-test/pg-citus:bookworm)
#   STREAMCTL_CITUS_DIR         where the Citus build is (default ../shared/citus beside the checkout)
#   STREAMCTL_TEST_IMAGE        the base test image's tag (passed to images/build.sh)
#   FORCE=1                     rebuild even when an image with this key exists
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tag="${STREAMCTL_TEST_CITUS_IMAGE:-streamctl-test/pg-citus:bookworm}"
citus_dir="${STREAMCTL_CITUS_DIR:-$here/../../shared/citus}"

log() { printf '[build-citus.sh] %s\n' "$*" >&2; }

tarball="$(ls "$citus_dir"/citus-*-pg15-amd64.tar.gz 2>/dev/null | sort -V | tail -n 1 || true)"
if [[ -z "$tarball" ]]; then
    log "no Citus build (citus-*-pg15-amd64.tar.gz) in $citus_dir: the Citus image is not built"
    exit 3
fi

base="$(FORCE=0 bash "$here/build.sh" | tail -n 1)"
base_id="$(docker image inspect -f '{{.Id}}' "$base")"
image_key="$(cat "$here/build-citus.sh" "$here/citus/Dockerfile" "$here/citus/001-create-citus-extension.sql" \
    <(printf '%s %s' "$base_id" "$(basename "$tarball")") | sha256sum | cut -c1-12)"
if [[ "$tag" == *:* ]]; then keyed="$tag-$image_key"; else keyed="$tag:$image_key"; fi

if [[ "${FORCE:-0}" != 1 ]] && docker image inspect "$keyed" >/dev/null 2>&1; then
    docker tag "$keyed" "$tag"
    log "$keyed is up to date (FORCE=1 rebuilds); $tag points at it"
    echo "$keyed"
    exit 0
fi

context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
cp "$here/citus/Dockerfile" "$here/citus/001-create-citus-extension.sql" "$context/"
cp "$tarball" "$context/citus.tar.gz"
log "docker build -> $keyed (base $base, $(basename "$tarball"))"
# The classic builder: it takes FROM a local image without asking any registry.
if ! DOCKER_BUILDKIT=0 docker build -q --build-arg BASE="$base" --build-arg CITUS_TARBALL=citus.tar.gz \
        --build-arg IMAGE_KEY="$image_key" -t "$keyed" "$context" >"$context/build.log" 2>&1; then
    tail -n 30 "$context/build.log" >&2
    exit 1
fi
docker tag "$keyed" "$tag"
log "built $keyed ($tag points at it)"
echo "$keyed"
