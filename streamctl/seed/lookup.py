"""Lookup data shipped in `seeds/` (genres, name parts, title words, review phrases)."""

from __future__ import annotations

from collections import defaultdict
from functools import cache

from streamctl.assets import asset_dir


def _lines(name: str) -> list[str]:
    text = asset_dir("seeds").joinpath(name).read_text(encoding="utf-8")
    return [line.rstrip("\n") for line in text.splitlines() if line.strip() and not line.startswith("#")]


def _sections(name: str) -> dict[str, tuple[str, ...]]:
    out: dict[str, list[str]] = defaultdict(list)
    for line in _lines(name):
        section, value = line.split("\t", 1)
        out[section].append(value)
    return {k: tuple(v) for k, v in out.items()}


@cache
def genres() -> tuple[tuple[int, str], ...]:
    """(genre_id, name) pairs; ids are fixed in the file so they are stable across releases."""
    return tuple((int(gid), name) for gid, name in (line.split("\t", 1) for line in _lines("genres.txt")))


@cache
def first_names() -> tuple[str, ...]:
    return tuple(_lines("first_names.txt"))


@cache
def last_names() -> tuple[str, ...]:
    return tuple(_lines("last_names.txt"))


@cache
def countries() -> tuple[str, ...]:
    """Repetition in the file is the weighting."""
    return tuple(_lines("countries.txt"))


@cache
def title_words() -> dict[str, tuple[str, ...]]:
    """Sections: adjective, noun, place, topic."""
    return _sections("title_words.txt")


@cache
def review_phrases() -> dict[str, tuple[str, ...]]:
    """Sections: good, mixed, bad, reply, spoiler."""
    return _sections("review_phrases.txt")


@cache
def username_parts() -> tuple[str, ...]:
    return tuple(_lines("username_parts.txt"))
