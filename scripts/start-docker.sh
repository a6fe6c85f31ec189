#!/usr/bin/env bash
# Make a Docker engine answer on this machine, then build the test image (images/build.sh, idempotent), the
# Prometheus test image (images/build-prometheus.sh, idempotent) and, when a Citus build sits beside the
# checkout (../shared/citus), the Citus test image (images/build-citus.sh).
# Starts dockerd only when `docker info` does not answer; its log goes to $DOCKERD_LOG.
#
# Environment:
#   DOCKERD_LOG        dockerd's log file (default /tmp/streamctl-dockerd.log)
#   DOCKER_WAIT        seconds to wait for the engine (default 60)
#   SKIP_IMAGE_BUILD=1 only start the engine
#   STREAMCTL_CITUS_DIR where the Citus build is (default ../shared/citus beside the checkout)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
log_file="${DOCKERD_LOG:-/tmp/streamctl-dockerd.log}"
wait_s="${DOCKER_WAIT:-60}"

say() { printf '[start-docker] %s\n' "$*" >&2; }

answers() { docker info >/dev/null 2>&1; }

if answers; then
    say "the Docker engine already answers"
else
    command -v dockerd >/dev/null || { say "dockerd is not installed (apt-get install docker.io)"; exit 1; }
    if [[ "$(id -u)" != 0 ]]; then
        say "dockerd needs root: run this script as root, or start Docker yourself"
        exit 1
    fi
    say "starting dockerd (log: $log_file)"
    nohup dockerd >"$log_file" 2>&1 &
    pid=$!
    deadline=$((SECONDS + wait_s))
    until answers; do
        if ! kill -0 "$pid" 2>/dev/null; then
            say "dockerd exited; last log lines:"
            tail -n 20 "$log_file" >&2
            exit 1
        fi
        if ((SECONDS >= deadline)); then
            say "dockerd did not answer within ${wait_s}s; last log lines:"
            tail -n 20 "$log_file" >&2
            exit 1
        fi
        sleep 0.5
    done
    say "dockerd (pid $pid) answers"
fi

if [[ "${SKIP_IMAGE_BUILD:-0}" != 1 ]]; then
    bash "$here/../images/build.sh" >/dev/null
    # The monitoring node's test image, with the official prom/prometheus image's layout.
    bash "$here/../images/build-prometheus.sh" >/dev/null
    # The Citus test image, when a Citus build sits beside the checkout (build-citus.sh says where it looks).
    if ls "${STREAMCTL_CITUS_DIR:-$here/../../shared/citus}"/citus-*-pg15-amd64.tar.gz >/dev/null 2>&1; then
        bash "$here/../images/build-citus.sh" >/dev/null
    fi
fi
