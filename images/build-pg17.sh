#!/usr/bin/env bash
# Build streamctl-test/pg:trixie-17 without any container registry: a Debian trixie root filesystem
# (debootstrap, minbase) holding PostgreSQL 17, with the same entrypoint as the bookworm test image
# (images/build.sh). Tests use it beside the bookworm image (PostgreSQL 15) to change a node's image to
# another PostgreSQL major version. Like the official images, it declares its major version in PG_MAJOR.
#
# Keyed by its inputs like images/build.sh (images/lib.sh: this script, the entrypoint, the library, suite,
# packages, mirror): an image with the same key (tag TAG-KEY) is reused and TAG moved to it, a changed input
# builds a new one (FORCE=1 rebuilds anyway); the keyed tag is printed on stdout. The root filesystem is
# cached as a tarball outside the repository. Environment: STREAMCTL_PG17_IMAGE (tag),
# STREAMCTL_DEBIAN_MIRROR, STREAMCTL_IMAGE_CACHE, FORCE (as for images/build.sh).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$here/lib.sh"
tag="${STREAMCTL_PG17_IMAGE:-streamctl-test/pg:trixie-17}"
suite=trixie
major=17
packages="postgresql-$major,ca-certificates"

reuse_debian_keyed "$here/docker-entrypoint.sh"
debian_stage "var/lib/postgresql/$major/main" "etc/postgresql/$major/main"
install -D -m 0755 "$here/docker-entrypoint.sh" "$stage/add/usr/local/bin/docker-entrypoint.sh"
mkdir -p "$stage/add/var/lib/postgresql/data" "$stage/add/docker-entrypoint-initdb.d"
stage_add 0 ./usr/local/bin/docker-entrypoint.sh ./var/lib/postgresql/data ./docker-entrypoint-initdb.d

import_image \
    --change "ENV PATH=/usr/lib/postgresql/$major/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    --change "ENV PG_MAJOR=$major" \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PGDATA=/var/lib/postgresql/data' \
    --change 'EXPOSE 5432' \
    --change 'ENTRYPOINT ["docker-entrypoint.sh"]' \
    --change 'CMD ["postgres"]' \
    --message "streamctl test image: Debian $suite, PostgreSQL $major"
