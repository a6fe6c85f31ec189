"""What the local backend needs of the PostgreSQL installation it runs: its tools, and the extensions the
topology uses (checked before any change)."""

from __future__ import annotations

from pathlib import Path

from streamctl.backends.local import recipes
from streamctl.config.model import Topology
from streamctl.errors import PreflightError


def check_postgres_install(bindir: Path, topology: Topology) -> None:
    """PreflightError naming the first tool or extension missing from the PostgreSQL at `bindir`."""
    for tool in ("initdb", "pg_ctl", "postgres"):
        if not (bindir / tool).exists():
            raise PreflightError(f"PostgreSQL tool {tool} not found in {bindir}",
                                 hint="install PostgreSQL (apt-get install postgresql) or set "
                                      "local.pg_bindir")
    sharedir = recipes.pg_sharedir(bindir)
    needed = {"postgres_fdw": topology.fdw.enabled, "citus": topology.citus}
    for ext, wanted in needed.items():
        if wanted and not (sharedir / "extension" / f"{ext}.control").exists():
            how = ("install Citus for this PostgreSQL (e.g. the postgresql-NN-citus package from "
                   "Citus's repository) or set metadata.citus.enabled: false" if ext == "citus"
                   else "install postgresql-contrib, or set fdw.enabled: false")
            raise PreflightError(f"the {ext} extension is not installed in the PostgreSQL at {bindir} "
                                 f"(no {sharedir}/extension/{ext}.control)", hint=how)
