"""Progress events: what long operations (`up`, `scale`, `seed`) report as they go; the CLI renders them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

EventKind = Literal["begin", "done", "noop", "fail", "info"]


@dataclass(frozen=True)
class Event:
    kind: EventKind
    node: str
    step: str
    detail: str = ""
    seconds: float = 0.0


Emit = Callable[[Event], None]

Progress = Callable[[str, str], None]  # (node, message): how a long backend step (an image pull) reports


def ignore(_event: Event) -> None:
    """The Emit of a caller that wants no progress."""
