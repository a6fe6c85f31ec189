"""The seed generators are pure: same spec, same rows; every reference resolves; viewing is skewed."""

from __future__ import annotations

import hashlib
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta

import pytest

from streamctl.seed import catalogue, lookup
from streamctl.seed.audience import UserIndex, history_batches, user_index, user_rows
from streamctl.seed.reviews import review_documents
from streamctl.seed.spec import SeedSpec

AS_OF = date(2024, 3, 31)


def digest(rows: object) -> str:
    return hashlib.md5(repr(list(rows)).encode()).hexdigest()


def world(scale: float = 0.01, seed: int = 1) -> tuple[SeedSpec, catalogue.ContentIndex, UserIndex]:
    spec = SeedSpec(scale, seed, AS_OF)
    return spec, catalogue.content_index(spec), user_index(spec)


def history(spec: SeedSpec, content: catalogue.ContentIndex, users: UserIndex) -> list[tuple[object, ...]]:
    return [row for batch in history_batches(spec, content, users) for row in batch]


def test_same_seed_same_rows_other_seed_other_rows() -> None:
    def all_digests(seed: int) -> list[str]:
        spec, content, users = world(0.005, seed)
        return [digest(catalogue.people_rows(spec)), digest(catalogue.content_rows(spec, content)),
                digest(catalogue.content_genre_rows(spec, content)), digest(catalogue.cast_rows(spec, content)),
                digest(user_rows(spec, users)), digest(history(spec, content, users)),
                digest(review_documents(spec, content, users))]

    first, again, other = all_digests(3), all_digests(3), all_digests(4)
    assert first == again
    assert all(a != b for a, b in zip(first, other, strict=True))


@pytest.mark.parametrize("scale", [0.002, 0.01, 0.05])
def test_counts_grow_linearly_with_scale(scale: float) -> None:
    spec, content, users = world(scale)
    assert len(content) == round(10_000 * scale)
    assert len(users) == round(50_000 * scale)
    assert len(history(spec, content, users)) == round(1_000_000 * scale)
    assert sum(1 for _ in catalogue.people_rows(spec)) == max(20, round(20_000 * scale))
    assert sum(1 for _ in review_documents(spec, content, users)) == round(50_000 * scale)


def test_catalogue_rows_are_plausible_and_keys_unique() -> None:
    spec, content, _ = world(0.02)
    titles = list(catalogue.content_rows(spec, content))
    assert len({t[0] for t in titles}) == len(titles)
    assert {t[5] for t in titles} == {"movie", "series", "documentary"}
    for t in titles:
        assert t[1] and date.fromisoformat(str(t[3])) < spec.history_start
        assert 20 <= int(t[4]) <= 240  # type: ignore[call-overload]
        assert 1.0 <= float(str(t[9])) <= 9.8
    genre_ids = {g for g, _ in lookup.genres()}
    pairs = list(catalogue.content_genre_rows(spec, content))
    assert len(set(pairs)) == len(pairs) and {g for _, g in pairs} <= genre_ids
    assert {c for c, _ in pairs} == set(content.ids)  # every title has a genre
    cast = list(catalogue.cast_rows(spec, content))
    assert len({(c, p, r) for c, p, r, *_ in cast}) == len(cast)  # the table's primary key
    assert all(1 <= int(p) <= spec.people for _, p, *_ in cast)  # type: ignore[call-overload]
    assert {r for _, _, r, *_ in cast} == {"actor", "director", "writer", "producer"}


def test_users_unique_and_history_references_resolve() -> None:
    spec, content, users = world(0.01)
    rows = list(user_rows(spec, users))
    assert len({r[1] for r in rows}) == len(rows) and len({r[2] for r in rows}) == len(rows)
    registered = {r[0]: datetime.fromisoformat(str(r[3])).date() for r in rows}
    minutes = dict(zip(content.ids, content.minutes, strict=True))
    added = dict(zip(content.ids, content.added, strict=True))
    for user_id, content_id, watched_at, watched, position in history(spec, content, users):
        day = datetime.fromisoformat(str(watched_at)).date()
        assert user_id in registered and content_id in minutes
        assert registered[user_id] <= day and spec.history_start <= day <= spec.as_of and added[content_id] <= day
        assert 0 <= int(watched) <= int(position) <= minutes[content_id] * 60  # type: ignore[call-overload]


def test_viewing_is_skewed_with_a_long_tail() -> None:
    spec, content, users = world(0.05)
    rows = history(spec, content, users)
    per_title = Counter(r[1] for r in rows)
    top = sum(n for _, n in per_title.most_common(len(content) // 100))
    assert top / len(rows) > 0.08  # the top 1% of titles draw far more than 1% of views
    assert len(per_title) > 0.8 * len(content)  # yet most titles are watched at least once
    per_user = Counter(r[0] for r in rows)
    assert per_user.most_common(1)[0][1] > 10 * len(rows) / len(users)


def test_reviews_match_the_validator_and_point_at_existing_rows() -> None:
    spec, content, users = world(0.01)
    ids, user_ids = set(content.ids), set(users.ids)
    docs = list(review_documents(spec, content, users))
    assert any(d["replies"] for d in docs) and any(d["likes_count"] > 10 for d in docs)
    end = datetime.combine(spec.as_of + timedelta(days=1), time(), tzinfo=UTC)
    for d in docs:
        assert d["content_id"] in ids and d["user_id"] in user_ids
        assert isinstance(d["rating"], int) and 1 <= d["rating"] <= 10
        assert d["likes_count"] >= 0 and isinstance(d["is_spoiler"], bool) and d["comment"]
        assert d["created_at"].tzinfo is not None and d["created_at"] < end
        for reply in d["replies"]:
            assert reply["user_id"] in user_ids and reply["created_at"] >= d["created_at"]


def test_spec_rejects_a_non_positive_scale() -> None:
    with pytest.raises(ValueError):
        SeedSpec(0, 1, AS_OF)
