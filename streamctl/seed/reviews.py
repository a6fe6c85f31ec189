"""Review documents for MongoDB: rating, comment in a matching tone, likes, and threads of replies."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from typing import Any

from bson import ObjectId

from streamctl.seed import lookup
from streamctl.seed.audience import UserIndex
from streamctl.seed.catalogue import ContentIndex
from streamctl.seed.spec import SeedSpec, zipf_cum_weights

REVIEW_TITLE_SKEW = 0.8  # reviews concentrate on popular titles even more than views do
REVIEWER_SKEW = 0.9  # and on a core of prolific reviewers


def _tone(rating: int) -> str:
    return "good" if rating >= 7 else "mixed" if rating >= 5 else "bad"


def review_id(created: datetime, n: int) -> ObjectId:
    """A deterministic ObjectId: its 4-byte time part is the review's creation (so id order follows
    time, as for ids the driver makes) and the other 8 bytes its sequence number, so the same seed
    gives the same ids and two reviews of one seed never share an id."""
    return ObjectId(int(created.timestamp()).to_bytes(4, "big") + n.to_bytes(8, "big"))


def review_documents(spec: SeedSpec, content: ContentIndex, users: UserIndex) -> Iterator[dict[str, Any]]:
    """Every review points at a generated title and user and is dated after both existed."""
    rng = spec.rng("reviews")
    phrases = lookup.review_phrases()
    titles = list(range(len(content)))
    rng.shuffle(titles)
    title_cum = zipf_cum_weights(len(content), REVIEW_TITLE_SKEW)
    reviewers = list(range(len(users)))
    rng.shuffle(reviewers)
    reviewer_cum = zipf_cum_weights(len(users), REVIEWER_SKEW)
    end = datetime.combine(spec.as_of, time(23, 59, 59), tzinfo=UTC)
    start = datetime.combine(spec.platform_start, time(), tzinfo=UTC)

    def moment(after: datetime) -> datetime:
        span = max(0, int((end - after).total_seconds()))
        return after + timedelta(seconds=int(span * rng.random() ** 0.5))  # recent reviews dominate

    for n in range(spec.reviews):
        c = rng.choices(titles, cum_weights=title_cum)[0]
        u = rng.choices(reviewers, cum_weights=reviewer_cum)[0]
        rating = min(10, max(1, round(rng.gauss(content.ratings[c], 1.6))))
        spoiler = rng.random() < 0.06
        sentences = rng.sample(phrases[_tone(rating)], 2)
        if spoiler:
            sentences.append(rng.choice(phrases["spoiler"]))
        joined = max(datetime.combine(content.added[c], time(), tzinfo=UTC),
                     start + timedelta(days=users.registered[u]))
        created = moment(joined)
        replies: list[dict[str, Any]] = []
        for _r in range(rng.choices((0, 1, 2, 3), weights=(60, 25, 10, 5))[0]):
            replier = rng.choices(reviewers, cum_weights=reviewer_cum)[0]
            replied = moment(max(created, start + timedelta(days=users.registered[replier])))
            replies.append({"user_id": users.ids[replier], "comment": rng.choice(phrases["reply"]),
                            "created_at": replied})
        replies.sort(key=lambda r: r["created_at"])
        yield {
            "_id": review_id(created, n),
            "content_id": content.ids[c],
            "user_id": users.ids[u],
            "rating": rating,
            "comment": " ".join(sentences),
            "created_at": created,
            "is_spoiler": spoiler,
            "likes_count": min(100_000, int(rng.paretovariate(1.3)) - 1),  # mostly none, a few very many
            "replies": replies,
        }
