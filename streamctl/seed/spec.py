"""What to generate: scale, seed and reference day -> row counts, date windows and per-table RNGs."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import date, timedelta

# Scale 1 (the reference size); every count grows linearly with the scale.
TITLES_PER_SCALE = 10_000
USERS_PER_SCALE = 50_000
EVENTS_PER_SCALE = 1_000_000
PEOPLE_PER_SCALE = 20_000
REVIEWS_PER_SCALE = 50_000

HISTORY_DAYS = 90  # watch events fall in the last 90 days up to and including `as_of`
PLATFORM_YEARS = 5  # users registered (and titles were added) during the platform's last 5 years


class _Count:
    """A row count that grows linearly with the spec's scale, never below `minimum`."""

    def __init__(self, per_scale: int, minimum: int) -> None:
        self.per_scale, self.minimum = per_scale, minimum

    def __get__(self, spec: SeedSpec, owner: type | None = None) -> int:
        return max(self.minimum, round(self.per_scale * spec.scale))


@dataclass(frozen=True)
class SeedSpec:
    """Everything the generators depend on: the same spec always yields the same rows."""

    scale: float = 1.0
    seed: int = 42
    as_of: date = date(2024, 1, 1)  # the last day of watch history; the CLI defaults it to today (UTC)

    def __post_init__(self) -> None:
        if not self.scale > 0:
            raise ValueError("scale must be positive")

    # -- sizes (not fields: derived from the scale) -------------------------------------------------
    titles = _Count(TITLES_PER_SCALE, 1)
    users = _Count(USERS_PER_SCALE, 1)
    events = _Count(EVENTS_PER_SCALE, 0)
    people = _Count(PEOPLE_PER_SCALE, 20)  # a title needs up to a dozen distinct people
    reviews = _Count(REVIEWS_PER_SCALE, 0)

    # -- calendar ---------------------------------------------------------------------------------
    @property
    def history_start(self) -> date:
        return self.as_of - timedelta(days=HISTORY_DAYS - 1)

    @property
    def platform_start(self) -> date:
        return self.as_of - timedelta(days=365 * PLATFORM_YEARS)

    # -- randomness -------------------------------------------------------------------------------
    def rng(self, stream: str) -> random.Random:
        """An independent generator per stream, so changing one table never shifts another's rows."""
        return random.Random(f"streamctl/{self.seed}/{stream}")


@dataclass(frozen=True)
class Index:
    """What one generator hands the others about its rows: a list per attribute, one item per row, the
    ids first."""

    ids: list[str]

    def __len__(self) -> int:
        return len(self.ids)


def random_uuid(rng: random.Random) -> str:
    """A version-4 UUID drawn from `rng` (deterministic, unlike uuid.uuid4)."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def zipf_cum_weights(n: int, exponent: float) -> list[float]:
    """Cumulative weights 1/rank**exponent for ranks 1..n: a few items dominate, a long tail follows."""
    total = 0.0
    out = []
    for rank in range(1, n + 1):
        total += rank ** -exponent
        out.append(total)
    return out


def day_text(day: date) -> str:
    return day.isoformat()


def timestamp_text(day: date, seconds: int) -> str:
    """A UTC timestamp in the text form COPY and PostgreSQL accept, e.g. 2024-01-01 20:15:03+00."""
    h, rem = divmod(seconds, 3600)
    return f"{day.isoformat()} {h:02d}:{rem // 60:02d}:{rem % 60:02d}+00"
