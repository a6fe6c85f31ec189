#!/bin/sh
# Unpacks Debian 13 (trixie)'s Docker Compose v2 plugin into bench/.tools/, for bench/up.py --compose.
# Uses a private apt configuration (the system's Debian mirror, suite trixie) in a temporary directory:
# nothing is added to the system's sources or package state.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/lists/partial" "$tmp/cache/archives/partial" "$tmp/sources" "$tmp/prefs" "$here/.tools"
mirror=$(grep -rhoE '(URIs:|deb) +https?://[^ ]+/debian/?' /etc/apt/sources.list /etc/apt/sources.list.d 2>/dev/null \
         | awk '{print $2}' | head -n1)
[ -n "$mirror" ] || { echo "no Debian mirror found in the apt sources" >&2; exit 1; }
printf 'Types: deb\nURIs: %s\nSuites: trixie\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    "$mirror" >"$tmp/sources/trixie.sources"
opts="-o Dir::Etc::sourcelist=/dev/null -o Dir::Etc::sourceparts=$tmp/sources -o Dir::Etc::preferencesparts=$tmp/prefs
      -o Dir::State::Lists=$tmp/lists -o Dir::Cache=$tmp/cache -o Debug::NoLocking=1"
# shellcheck disable=SC2086
apt-get $opts update >/dev/null
# shellcheck disable=SC2086
(cd "$tmp" && apt-get $opts download docker-compose >/dev/null)
dpkg-deb -x "$tmp"/docker-compose_*.deb "$tmp/root"
cp "$tmp/root/usr/libexec/docker/cli-plugins/docker-compose" "$here/.tools/docker-compose"
"$here/.tools/docker-compose" version
