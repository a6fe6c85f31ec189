#!/usr/bin/env bash
# Build the test image streamctl-test/prometheus:bookworm without any container registry: a Debian
# bookworm root filesystem (debootstrap, minbase) holding Debian's `prometheus` package, imported with
# `docker import` and shaped like the official prom/prometheus image, so the Docker backend runs either the
# same way: entrypoint /bin/prometheus (Debian's /usr/bin/prometheus), configuration in
# /etc/prometheus/prometheus.yml, data in /prometheus, run as nobody (65534), which owns both directories.
#
# Keyed by its inputs like images/build.sh (images/lib.sh): tagged TAG-KEY, KEY a hash of this script, the
# library, the suite, the packages and the mirror, and labelled io.streamctl.test-image.key=KEY; an image
# with this key is reused, TAG is moved to it, and the keyed tag is printed on stdout. The debootstrapped
# root filesystem is cached as a tarball outside the repository (the same cache as images/build.sh).
#
# Environment:
#   STREAMCTL_TEST_PROMETHEUS_IMAGE  tag to build (default streamctl-test/prometheus:bookworm)
#   STREAMCTL_DEBIAN_MIRROR          Debian archive URL (default: the one apt on this machine uses)
#   STREAMCTL_IMAGE_CACHE            cache directory (default ${XDG_CACHE_HOME:-$HOME/.cache}/streamctl/images)
#   FORCE=1                          rebuild even when an image with this key exists
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$here/lib.sh"
tag="${STREAMCTL_TEST_PROMETHEUS_IMAGE:-streamctl-test/prometheus:bookworm}"
suite=bookworm
packages=prometheus,ca-certificates

# shellcheck disable=SC2119 # no arguments: nothing of its own to add
reuse_debian_keyed
# The package's own configuration and data belong to its systemd unit; the image gets the official image's
# layout instead: /etc/prometheus + /prometheus owned by nobody, with a minimal configuration scraping
# itself (/bin/prometheus is there already: bookworm's /bin is a link to /usr/bin).
debian_stage 'etc/prometheus/*' 'var/lib/prometheus/*'
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
stage_add 65534 ./etc/prometheus ./prometheus

import_image \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'USER 65534' \
    --change 'WORKDIR /prometheus' \
    --change 'VOLUME ["/prometheus"]' \
    --change 'EXPOSE 9090' \
    --change 'ENTRYPOINT ["/bin/prometheus"]' \
    --change 'CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]' \
    --message "streamctl test image: Debian $suite, Prometheus (the official image's layout)"
