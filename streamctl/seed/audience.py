"""Users and their watch history, as row streams: viewing is skewed (a few titles and users dominate).

History is produced in fixed-size batches from one RNG, so the stream is deterministic and memory stays
flat whatever the number of events; only the per-user and per-title indexes are held.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

from streamctl.seed import lookup
from streamctl.seed.catalogue import ContentIndex
from streamctl.seed.spec import Index, SeedSpec, random_uuid, timestamp_text, zipf_cum_weights

Row = tuple[object, ...]

USER_COLUMNS = ("user_id", "username", "email", "registration_date")
HISTORY_COLUMNS = ("user_id", "content_id", "watched_at", "duration_watched_seconds", "last_position_seconds")
HISTORY_BATCH = 8192  # rows drawn per batch; part of the determinism contract (do not vary per run)
TITLE_SKEW = 0.7  # Zipf exponent over titles: the top 1% draw about a quarter of the views at scale 1
USER_SKEW = 0.6  # over users: heavy watchers and a long tail of occasional ones
# Relative viewing per hour of the day (UTC): quiet nights, an evening peak.
HOUR_WEIGHTS = (3, 2, 1, 1, 1, 1, 2, 3, 4, 4, 4, 5, 6, 6, 5, 5, 6, 8, 10, 13, 15, 14, 10, 6)
_DOMAINS = ("example.com", "example.net", "example.org", "mail.example")


@dataclass(frozen=True)
class UserIndex(Index):
    """Per user: id and registration day offset (days after the platform started)."""

    registered: list[int]


def user_index(spec: SeedSpec) -> UserIndex:
    rng = spec.rng("user-index")
    days = (spec.as_of - spec.platform_start).days
    ids, registered = [], []
    for _ in range(spec.users):
        ids.append(random_uuid(rng))
        registered.append(int(days * rng.random() ** 0.6))  # sign-ups grow over time
    return UserIndex(ids, registered)


def user_rows(spec: SeedSpec, users: UserIndex) -> Iterator[Row]:
    """Usernames are unique by construction: a readable part plus the user's number."""
    rng = spec.rng("users")
    first, parts = lookup.first_names(), lookup.username_parts()
    for n, (uid, day) in enumerate(zip(users.ids, users.registered, strict=True), start=1):
        username = f"{rng.choice(first).lower()}.{rng.choice(parts)}{n}"
        yield (uid, username, f"{username}@{rng.choice(_DOMAINS)}",
               timestamp_text(spec.platform_start + timedelta(days=day), rng.randrange(86_400)))


def history_batches(spec: SeedSpec, content: ContentIndex, users: UserIndex) -> Iterator[list[Row]]:
    """Watch events in batches of HISTORY_BATCH rows (the last one shorter).

    Each event falls between the user's registration (or the window start) and `as_of`, leaning to recent
    days; about 40% of views are finished, the rest stop part-way.
    """
    rng = spec.rng("history")
    rnd = rng.random
    title_order = list(range(len(content)))
    rng.shuffle(title_order)  # popularity is independent of the order titles were generated in
    title_cum = zipf_cum_weights(len(content), TITLE_SKEW)
    user_order = list(range(len(users)))
    rng.shuffle(user_order)
    user_cum = zipf_cum_weights(len(users), USER_SKEW)
    hour_cum = cumulative(HOUR_WEIGHTS)

    first_day = (spec.history_start - spec.platform_start).days  # as an offset like users.registered
    last_day = (spec.as_of - spec.platform_start).days
    day_texts = [(spec.platform_start + timedelta(days=d)).isoformat() + " " for d in range(last_day + 1)]
    hour_texts = [f"{h:02d}:" for h in range(24)]
    minsec_texts = [f"{s // 60:02d}:{s % 60:02d}+00" for s in range(3600)]
    seconds = [m * 60 for m in content.minutes]
    cids, uids, registered = content.ids, users.ids, users.registered
    hours = range(24)

    remaining = spec.events
    while remaining > 0:
        n = min(HISTORY_BATCH, remaining)
        remaining -= n
        picked_users = rng.choices(user_order, cum_weights=user_cum, k=n)
        picked_titles = rng.choices(title_order, cum_weights=title_cum, k=n)
        picked_hours = rng.choices(hours, cum_weights=hour_cum, k=n)
        batch: list[Row] = []
        append = batch.append
        for u, c, h in zip(picked_users, picked_titles, picked_hours, strict=True):
            lo = registered[u]
            if lo < first_day:
                lo = first_day
            day = lo + int((last_day - lo + 1) * rnd() ** 0.7)
            length = seconds[c]
            if rnd() < 0.4:
                watched = length - int(length * 0.05 * rnd())
                position = length
            else:
                watched = int(length * rnd() * rnd())
                position = watched
            append((uids[u], cids[c], day_texts[day] + hour_texts[h] + minsec_texts[int(rnd() * 3600)],
                    watched, position))
        yield batch


def cumulative(weights: tuple[int, ...]) -> list[float]:
    """Cumulative form of explicit weights (for random.choices)."""
    out, total = [], 0.0
    for w in weights:
        total += w
        out.append(total)
    return out
