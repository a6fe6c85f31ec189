"""The values every section of the topology file is made of: `Strict` (unknown keys are errors, nothing
changes after loading), ports, names, identifiers, sizes, the backends and libpq's SSL modes."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

Port = Annotated[int, Field(ge=1, le=65535)]
Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,40}$")]
Ident = Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_]{0,62}$")]
WalSize = Annotated[str, Field(pattern=r"^(-1|[0-9]{1,9}(kB|MB|GB|TB)?)$")]  # a PostgreSQL size setting
Constraint = Annotated[str, Field(min_length=1, max_length=300)]  # a Swarm placement constraint


class Strict(BaseModel):
    """Base for every section: unknown keys are errors and values never change after loading."""

    model_config = ConfigDict(extra="forbid", frozen=True)


BackendName = Literal["auto", "docker", "local", "external", "swarm"]
SslMode = Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]
