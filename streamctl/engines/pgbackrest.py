"""What every layer knows about pgBackRest's names: a stanza per backed-up group, the local backend's
configuration file, and the archive_command that pushes a server's WAL into a stanza. One home, so Patroni's
configuration (streamctl.ha) and `up`'s archiving step (streamctl.backup) write the same command."""

from __future__ import annotations

from pathlib import Path


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
