"""Content catalogue generators: genres, people, titles and their genres and cast, as row streams.

The `ContentIndex` (ids, types, durations, dates) is small and shared with the history and review
generators, so every reference they make points at a title that exists.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta

from streamctl.seed import lookup
from streamctl.seed.spec import Index, SeedSpec, random_uuid, timestamp_text, zipf_cum_weights

Row = tuple[object, ...]

CONTENT_TYPES = ("movie", "series", "documentary")
_TYPE_WEIGHTS = (0.6, 0.25, 0.15)
_DOC_GENRES = (7, 15, 11, 13, 22, 4, 18)  # documentaries are Documentary + one of these themes
EARLIEST_RELEASE = date(1960, 1, 1)

GENRE_COLUMNS = ("genre_id", "name")
PEOPLE_COLUMNS = ("person_id", "full_name", "birth_year", "country")
CONTENT_COLUMNS = ("content_id", "title", "original_title", "release_date", "duration_minutes",
                   "content_type", "summary", "thumbnail_url", "trailer_url", "rating", "created_at",
                   "updated_at")
CONTENT_GENRE_COLUMNS = ("content_id", "genre_id")
CAST_COLUMNS = ("content_id", "person_id", "role", "character_name", "billing_order")


@dataclass(frozen=True)
class ContentIndex(Index):
    """Per title, what other generators need: id, type, duration, release and catalogue dates, rating."""

    types: list[str]
    minutes: list[int]
    released: list[date]
    added: list[date]
    ratings: list[float]


def content_index(spec: SeedSpec) -> ContentIndex:
    rng = spec.rng("content-index")
    n = spec.titles
    latest_release = spec.history_start - timedelta(days=1)
    span = (latest_release - EARLIEST_RELEASE).days
    ids, types, minutes, released, added, ratings = [], [], [], [], [], []
    for kind in rng.choices(CONTENT_TYPES, weights=_TYPE_WEIGHTS, k=n):
        ids.append(random_uuid(rng))
        types.append(kind)
        if kind == "movie":
            m = int(rng.gauss(108, 18))
        elif kind == "series":
            m = rng.choice((22, 25, 30, 42, 45, 50, 55, 60))  # episode length
        else:
            m = int(rng.gauss(80, 20))
        minutes.append(min(240, max(20, m)))
        # release dates lean to recent years, the way catalogues do
        rel = latest_release - timedelta(days=int(span * rng.random() ** 2.2))
        released.append(rel)
        first_day = max(rel, spec.platform_start)
        added.append(first_day + timedelta(days=int((spec.history_start - first_day).days * rng.random())))
        ratings.append(round(min(9.8, max(1.0, rng.gauss(6.4, 1.3))), 1))
    return ContentIndex(ids, types, minutes, released, added, ratings)


def genre_rows() -> Iterator[Row]:
    yield from lookup.genres()


def people_rows(spec: SeedSpec) -> Iterator[Row]:
    rng = spec.rng("people")
    first, last, countries = lookup.first_names(), lookup.last_names(), lookup.countries()
    for person_id in range(1, spec.people + 1):
        yield (person_id, f"{rng.choice(first)} {rng.choice(last)}", rng.randint(1935, 2006),
               rng.choice(countries))


def _title(rng: random.Random, kind: str, words: dict[str, tuple[str, ...]]) -> str:
    """Titles composed from the word lists, with a shape per content type."""
    shape = rng.random()
    adj, noun = rng.choice(words["adjective"]), rng.choice(words["noun"])
    if kind == "documentary":
        topic = rng.choice(words["topic"])
        return (f"The Secret Life of {topic}" if shape < 0.3 else f"{topic}: {adj} {noun}" if shape < 0.6
                else f"Inside {topic}")
    if shape < 0.35:
        return f"The {adj} {noun}"
    if shape < 0.55:
        return f"{noun} of {rng.choice(words['place'])}"
    if shape < 0.7:
        return f"{rng.choice(lookup.first_names())}'s {noun}"
    if shape < 0.85:
        return f"{adj} {noun}s"
    return f"The {noun} {rng.choice(('II', 'III', 'Returns', 'Rising'))}"


def content_rows(spec: SeedSpec, index: ContentIndex) -> Iterator[Row]:
    rng = spec.rng("content")
    words = lookup.title_words()
    places, nouns = words["place"], words["noun"]
    for i, cid in enumerate(index.ids):
        kind = index.types[i]
        title = _title(rng, kind, words)
        what = {"movie": "A film", "series": "A series", "documentary": "A documentary"}[kind]
        summary = (f"{what} about {rng.choice(nouns).lower()}s, {rng.choice(nouns).lower()}s and what "
                   f"people do for them, set in {rng.choice(places)}.")
        trailer = None if kind == "documentary" and rng.random() < 0.5 else \
            f"https://media.streamplat.example/trailers/{cid}.mp4"
        added = timestamp_text(index.added[i], rng.randrange(86_400))
        yield (cid, title, title, index.released[i].isoformat(), index.minutes[i], kind, summary,
               f"https://img.streamplat.example/thumbs/{cid}.jpg", trailer, f"{index.ratings[i]:.1f}",
               added, added)


def content_genre_rows(spec: SeedSpec, index: ContentIndex) -> Iterator[Row]:
    rng = spec.rng("content-genres")
    story_genres = [gid for gid, _ in lookup.genres() if gid not in (7, 15, 22)]
    for cid, kind in zip(index.ids, index.types, strict=True):
        if kind == "documentary":
            chosen = [7, rng.choice(_DOC_GENRES[1:])]
        else:
            chosen = rng.sample(story_genres, rng.choice((1, 2, 2, 3)))
        for gid in sorted(set(chosen)):
            yield (cid, gid)


def cast_rows(spec: SeedSpec, index: ContentIndex) -> Iterator[Row]:
    """Directors, writers, producers and billed actors; a few people appear in many titles."""
    rng = spec.rng("cast")
    people = range(1, spec.people + 1)
    cum = zipf_cum_weights(spec.people, 0.6)
    characters = lookup.first_names()
    for cid, kind in zip(index.ids, index.types, strict=True):
        if kind == "documentary":
            roles = ["director", "producer"] + ["actor"] * rng.randint(0, 2)
        else:
            roles = ["director", "producer"] + ["writer"] * rng.randint(1, 2) + ["actor"] * rng.randint(4, 8)
        picked: list[int] = []
        seen: set[int] = set()
        for pid in rng.choices(people, cum_weights=cum, k=len(roles) * 2):
            if pid not in seen:
                seen.add(pid)
                picked.append(pid)
        while len(picked) < len(roles):  # tiny scales: top up without replacement
            pid = rng.choice(people)
            if pid not in seen:
                seen.add(pid)
                picked.append(pid)
        billing = 0
        for role, pid in zip(roles, picked, strict=False):
            if role == "actor":
                billing += 1
                name = ("Narrator" if billing == 1 else "Themselves") if kind == "documentary" \
                    else rng.choice(characters)
                yield (cid, pid, role, name, billing)
            else:
                yield (cid, pid, role, None, None)
