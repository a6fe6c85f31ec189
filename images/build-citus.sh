#!/usr/bin/env bash
# Build the Citus test image streamctl-test/pg-citus:bookworm on top of the test image (images/build.sh),
# as citusdata/citus is built on postgres (see images/citus/Dockerfile). Needs no registry: the base is
# local, the Citus build comes from a directory beside the checkout (never from the repository).
#
# Keyed by its inputs like images/build.sh (images/lib.sh): tagged TAG-KEY, KEY a hash of this script, the
# Dockerfile, the init script, the library, the base image's id (so an entrypoint change rebuilds this one
# too) and the tarball's name; an image with this key is reused, TAG is moved to it, and the keyed tag is
# printed on stdout. Exit 3 (nothing built) when no Citus build is there.
#
# Environment:
#   STREAMCTL_TEST_CITUS_IMAGE  tag to build (default streamctl-test/pg-citus:bookworm)
#   STREAMCTL_CITUS_DIR         where the Citus build is (default ../shared/citus beside the checkout)
#   STREAMCTL_TEST_IMAGE        the base test image's tag (passed to images/build.sh)
#   FORCE=1                     rebuild even when an image with this key exists
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$here/lib.sh"
tag="${STREAMCTL_TEST_CITUS_IMAGE:-streamctl-test/pg-citus:bookworm}"
citus_dir="${STREAMCTL_CITUS_DIR:-$here/../../shared/citus}"

tarball="$(ls "$citus_dir"/citus-*-pg15-amd64.tar.gz 2>/dev/null | sort -V | tail -n 1 || true)"
if [[ -z "$tarball" ]]; then
    log "no Citus build (citus-*-pg15-amd64.tar.gz) in $citus_dir: the Citus image is not built"
    exit 3
fi

base="$(FORCE=0 bash "$here/build.sh" | tail -n 1)"
base_id="$(docker image inspect -f '{{.Id}}' "$base")"
reuse_keyed "$base_id $(basename "$tarball")" "$here/citus/Dockerfile" "$here/citus/001-create-citus-extension.sql"

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
built
