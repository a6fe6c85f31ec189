"""What every layer knows about pgBackRest's names: a stanza per backed-up group, the local backend's
configuration file, and the archive_command that pushes a server's WAL into a stanza. One home, so Patroni's
configuration (streamctl.ha) and `up`'s archiving step (streamctl.backup) write the same command. Also its TLS
server's command line and a client's options to reach one (the Swarm nodes' and repository's servers, a Docker
HA standby's), and the password file the processes such a server starts read."""

from __future__ import annotations

import shlex
from pathlib import Path

from streamctl.engines.tls import CA, CERT, KEY


def stanza_name(cluster: str, node: str) -> str:
    """`<cluster>-<node>`: one stanza per PostgreSQL group, named after the node the topology names."""
    return f"{cluster}-{node}"


def stanza_prefix(cluster: str, generation: str | None) -> str:
    """What a cluster's stanzas start with: a cluster made from a repository's set (`up --from-backup`) archives
    under a generation of its own (`<cluster>-g<time>`), apart from the stanzas it was restored from."""
    return f"{cluster}-{generation}" if generation else cluster


def local_config(home: Path) -> Path:
    """The local backend's pgBackRest configuration file, under the cluster's data home."""
    return home / "backup" / "pgbackrest.conf"


def archive_push(config: Path | str, stanza: str, *options: str) -> str:
    """archive_command: `%p` is relative to the data directory, which pgBackRest checks against pg1-path, so a
    group whose stanza lists several members passes each member's own (`--pg1-path=...` in `options`)."""
    return " ".join(["pgbackrest", f"--config={config}", f"--stanza={stanza}", *options, "archive-push", "%p"])


# Patroni runs it as `<command> on_role_change <role> <scope>`: $1, $2, $3 of the script.
_PUSH_EARLIER = """[ "$1" = on_role_change ] && [ "$2" = primary ] || exit 0
cd "$0" 2>/dev/null || exit 0
n=0
while [ -e standby.signal ] || [ -e recovery.signal ]; do
  n=$((n + 1)); [ "$n" -le 600 ] || exit 0; sleep 0.1
done
tl=$(ls pg_wal | grep -E '^[0-9A-F]{24}$|^[0-9A-F]{8}[.]history$' | cut -c1-8 | sort | tail -n 1)
[ -n "$tl" ] || exit 0
for f in $(ls pg_wal | grep -E '^[0-9A-F]{24}$'); do
  [ "$(printf '%d' "0x$(echo "$f" | cut -c1-8)")" -lt "$(printf '%d' "0x$tl")" ] || continue
  PUSH "pg_wal/$f" || echo "streamctl: $f of an earlier timeline could not be pushed" >&2
done"""


def push_earlier_timelines(config: Path | str, stanza: str, data_dir: Path | str, *options: str) -> str:
    """Patroni's on_role_change callback under HA: once a standby is promoted (Patroni calls it as it asks for the
    promotion: the script waits until PostgreSQL has removed its standby.signal, by then the new timeline's first
    segment is in pg_wal), the finished WAL segments of the earlier timelines still there are pushed into the
    stanza. It received them streaming and a standby archives nothing (archive_mode `on`), so segments its old
    leader had finished and not pushed when it crashed would otherwise be missing from the repository (one already
    there with the same contents is a no-op for pgBackRest). Synchronous pushes: the asynchronous mode only sends
    what the server marked ready."""
    push = " ".join(["pgbackrest", f"--config={config}", f"--stanza={stanza}", *options, "--no-archive-async",
                     "archive-push"])
    script = _PUSH_EARLIER.replace("PUSH", push)
    return f"sh -c {shlex.quote(script)} {shlex.quote(str(data_dir))}"


TLS_PORT = 8432  # pgBackRest's TLS server (its default port)


def tls_files(directory: str) -> dict[str, str]:
    """The certificate, key and CA a pgBackRest TLS server or client names, in a server's TLS directory."""
    return {"cert": f"{directory}/{CERT}", "key": f"{directory}/{KEY}", "ca": f"{directory}/{CA}"}


def host_options(kind: str, host: str, config: str, tls_dir: str) -> list[str]:
    """A client's options to reach `host`'s pgBackRest TLS server (`kind`: pg2, repo1...) with the certificate
    in its own `tls_dir`; `config`: the configuration file the process the server starts there reads."""
    return [f"--{kind}-host={host}", f"--{kind}-host-type=tls", f"--{kind}-host-port={TLS_PORT}",
            *(f"--{kind}-host-{k}-file={v}" for k, v in tls_files(tls_dir).items()), f"--{kind}-host-config={config}"]


def server_argv(home: str, address: str, tls_dir: str, auth: list[str]) -> list[str]:
    """pgBackRest's TLS server, listening on `address` only, accepting only the cluster CA's certificates whose
    common names `auth` names (`<cn>=<stanza>` or `<cn>=*`). Every setting on the command line: no configuration
    file is read when it starts (the processes it starts read the one their client names)."""
    return ["pgbackrest", "--config=/dev/null", f"--log-path={home}/log", f"--tls-server-address={address}",
            f"--tls-server-port={TLS_PORT}", *(f"--tls-server-{k}-file={v}" for k, v in tls_files(tls_dir).items()),
            *(f"--tls-server-auth={a}" for a in auth), "server"]


def _pgpass_field(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:")


def passfile(user: str, password: str) -> str:
    """A libpq password file's one line: `user`'s password for any host, port and database (`:` and `\\`
    escaped as libpq reads them)."""
    return f"*:*:*:{_pgpass_field(user)}:{_pgpass_field(password)}\n"
