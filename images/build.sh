#!/usr/bin/env bash
# Build the test image streamctl-test/pg-redis:bookworm without any container registry:
# a Debian bookworm root filesystem (debootstrap, minbase) holding PostgreSQL 15 (postgres_fdw is part of
# Debian's postgresql-15 package) and Redis, plus an entrypoint honouring the official images' contract,
# imported with `docker import`.
#
# Keyed by its inputs (images/lib.sh): the image is also tagged TAG-KEY, KEY a hash of this script, the
# entrypoint, images/lib.sh, the suite, the packages and the mirror, and labelled
# io.streamctl.test-image.key=KEY. An image with this key is reused; a changed input builds a new one (never
# a stale image under the old name). TAG is then moved to it, and the keyed tag is printed on stdout (tests
# use it, so checkouts side by side never share a stale image). The debootstrapped root filesystem is cached
# as a tarball outside the repository, so a rebuild after `docker rmi` or an entrypoint change takes seconds.
#
# Environment:
#   STREAMCTL_TEST_IMAGE     tag to build (default streamctl-test/pg-redis:bookworm)
#   STREAMCTL_DEBIAN_MIRROR  Debian archive URL (default: the one apt on this machine uses)
#   STREAMCTL_IMAGE_CACHE    cache directory (default ${XDG_CACHE_HOME:-$HOME/.cache}/streamctl/images)
#   FORCE=1                  rebuild even when an image with this key exists
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$here/lib.sh"
tag="${STREAMCTL_TEST_IMAGE:-streamctl-test/pg-redis:bookworm}"
suite=bookworm
packages=postgresql-15,redis-server,ca-certificates,pgbackrest

reuse_debian_keyed "$here/docker-entrypoint.sh"
# The Debian package creates a `main` cluster; the entrypoint creates its own in PGDATA instead.
debian_stage var/lib/postgresql/15/main etc/postgresql/15/main
install -D -m 0755 "$here/docker-entrypoint.sh" "$stage/add/usr/local/bin/docker-entrypoint.sh"
mkdir -p "$stage/add/data" "$stage/add/var/lib/postgresql/data" "$stage/add/docker-entrypoint-initdb.d"
stage_add 0 ./usr/local/bin/docker-entrypoint.sh ./data ./var/lib/postgresql/data ./docker-entrypoint-initdb.d

import_image \
    --change 'ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PGDATA=/var/lib/postgresql/data' \
    --change 'WORKDIR /data' \
    --change 'EXPOSE 5432 6379' \
    --change 'ENTRYPOINT ["docker-entrypoint.sh"]' \
    --change 'CMD ["postgres"]' \
    --message "streamctl test image: Debian $suite, PostgreSQL 15, Redis"
