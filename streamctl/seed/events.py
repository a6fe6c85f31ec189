"""What seeding reports while it runs (events) and when it ends (results); never printed here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

EventKind = Literal["start", "advance", "done", "skip", "info"]


@dataclass(frozen=True)
class SeedEvent:
    """`advance` carries the rows just written; `done` the table's total rows and seconds."""

    kind: EventKind
    store: str  # the node (or role, for skips) the table lives on
    table: str
    rows: int = 0
    total: int | None = None
    seconds: float = 0.0
    detail: str = ""


Emit = Callable[[SeedEvent], None]


@dataclass(frozen=True)
class TableResult:
    store: str
    table: str
    rows: int
    seconds: float

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


class SeedCancelled(Exception):
    """Raised inside a load when another store failed: stop early instead of finishing in vain."""
