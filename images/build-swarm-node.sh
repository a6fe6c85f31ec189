#!/usr/bin/env bash
# Build the Swarm test node image streamctl-test/swarm-node:bookworm: Debian with Debian's docker.io, whose
# entrypoint (images/swarm-node/entrypoint.sh) starts a nested Docker engine. The multi-host Swarm tests run
# several of these on a Docker network of their own and join their engines into one Swarm.
#
# Like images/build.sh (images/lib.sh): the debootstrapped root filesystem is cached as a tarball outside
# the repository, and the image is keyed by its inputs (this script, the entrypoint, the library, suite,
# packages, mirror): tagged TAG-KEY, reused while the key stands, TAG moved to it, and the keyed tag printed
# on stdout.
#
# Environment:
#   STREAMCTL_TEST_NODE_IMAGE  tag to build (default streamctl-test/swarm-node:bookworm)
#   STREAMCTL_DEBIAN_MIRROR    Debian archive URL (default: the one apt on this machine uses)
#   STREAMCTL_IMAGE_CACHE      cache directory (default ${XDG_CACHE_HOME:-$HOME/.cache}/streamctl/images)
#   FORCE=1                    rebuild even when an image with this key exists
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$here/lib.sh"
tag="${STREAMCTL_TEST_NODE_IMAGE:-streamctl-test/swarm-node:bookworm}"
suite=bookworm
packages=docker.io,iptables,iproute2,procps,util-linux,ca-certificates

reuse_debian_keyed "$here/swarm-node/entrypoint.sh"
# shellcheck disable=SC2119 # no arguments: nothing of its own to add
debian_stage
install -D -m 0755 "$here/swarm-node/entrypoint.sh" "$stage/add/usr/local/bin/swarm-node-entrypoint"
mkdir -p "$stage/add/var/lib/docker"
stage_add 0 ./usr/local/bin/swarm-node-entrypoint ./var/lib/docker

import_image \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'VOLUME /var/lib/docker' \
    --change 'EXPOSE 2375 2377 7946 4789' \
    --change 'ENTRYPOINT ["swarm-node-entrypoint"]' \
    --message "streamctl Swarm test node: Debian $suite with docker.io"
