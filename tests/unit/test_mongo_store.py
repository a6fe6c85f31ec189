"""MongoDB at the boundary, without a server: error mapping, client options, the index that serves the
list query, index convergence by keys, the gateway's role, seed errors and seed ids."""

from __future__ import annotations

import asyncio
import inspect
import re
from datetime import date
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pymongo.errors import BulkWriteError, OperationFailure

import streamctl.gateway as gateway_package
from streamctl.errors import BackendError
from streamctl.gateway.errors import as_store_unavailable, install_error_handlers, store_of
from streamctl.gateway.routers import reviews as reviews_router
from streamctl.gateway.stores import PoolSizes, mongo_client
from streamctl.names import REVIEWS_COLLECTION
from streamctl.seed import catalogue
from streamctl.seed import mongo as seed_mongo
from streamctl.seed.audience import user_index
from streamctl.seed.reviews import review_documents
from streamctl.seed.spec import SeedSpec
from streamctl.services.mongo_schema import (
    GATEWAY_ACTIONS,
    REVIEW_INDEXES,
    IndexAction,
    index_plan,
    list_query,
    role_privileges,
)

AUTH_FAILED = OperationFailure("Authentication failed.", code=18)


# -- 1. auth failures are a 503 with a hint, and /details lists reviews as unavailable --------------
@pytest.mark.parametrize("code", [18, 13])
def test_credential_refusals_answer_503_with_a_hint(code: int) -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/boom")
    async def boom() -> None:
        raise OperationFailure("refused", code=code)

    resp = TestClient(app, raise_server_exceptions=False).get("/boom")
    assert resp.status_code == 503
    error = resp.json()["error"]
    assert error["code"] == "store_unavailable" and "mongo" in error["message"]
    assert "streamctl up" in error["hint"]


def test_other_operation_failures_stay_internal_errors() -> None:
    # A failed query (e.g. a bad operator) is a bug, not an unavailable store.
    assert as_store_unavailable(OperationFailure("bad query", code=2)) is None
    assert store_of(OperationFailure("bad query", code=2)) is None


def test_details_treats_an_auth_failure_as_an_unavailable_section() -> None:
    # routers/content.py keeps a section's exception when store_of() names a store, else re-raises.
    assert store_of(AUTH_FAILED) == "mongo"
    source = inspect.getsource(__import__("streamctl.gateway.routers.content", fromlist=["x"]).details)
    assert "store_of(result) is None" in source


# -- 2. the client is bounded like the other pools --------------------------------------------------
def test_client_options_bound_every_wait() -> None:
    async def build() -> tuple[float | None, ...]:
        client = mongo_client("mongodb://u:p@127.0.0.1:9/?authSource=reviews&directConnection=true",
                              PoolSizes(wait_seconds=2.5, mongo_max=7))
        try:
            pool = client.options.pool_options
            return (pool.socket_timeout, pool.wait_queue_timeout, pool.connect_timeout,
                    client.options.server_selection_timeout, pool.max_pool_size)
        finally:
            await client.close()

    assert asyncio.run(build()) == (2.5, 2.5, 2.5, 2.5, 7)


# -- 3. an index serves the list query ----------------------------------------------------------------
def _serves(keys: tuple[tuple[str, int], ...], filter_keys: list[str], sort: list[tuple[str, int]]) -> bool:
    prefix = [(k, 1) for k in filter_keys]
    head = list(keys[: len(prefix) + len(sort)])
    return head[: len(prefix)] == prefix and (head[len(prefix):] == sort or
                                              head[len(prefix):] == [(f, -d) for f, d in sort])


def test_an_index_prefix_is_the_list_querys_filter_and_sort() -> None:
    query, sort = list_query("c")
    assert list(query) == ["content_id"] and sort == [("created_at", -1), ("_id", -1)]
    assert any(_serves(keys, list(query), sort) for keys in REVIEW_INDEXES.values())
    assert not _serves((("content_id", 1),), list(query), sort)  # the old single-field index did not
    # The route builds its query with list_query, so the two cannot drift apart.
    assert "list_query(" in inspect.getsource(reviews_router.list_reviews)
    assert ".sort(sort)" in inspect.getsource(reviews_router.list_reviews)


# -- 6. convergence by keys ---------------------------------------------------------------------------
NAME, KEYS = next(iter(REVIEW_INDEXES.items()))


def test_converged_indexes_plan_nothing() -> None:
    assert index_plan({"_id_": {"key": [("_id", 1)]}, NAME: {"key": [(f, float(d)) for f, d in KEYS]}}) == []


def test_changed_keys_behind_our_name_are_rebuilt() -> None:
    plan = index_plan({NAME: {"key": [("content_id", 1)]}})
    assert plan == [IndexAction("drop", NAME), IndexAction("create", NAME, KEYS)]


def test_same_keys_under_another_name_are_adopted_not_created_twice() -> None:
    plan = index_plan({"by_title_newest": {"key": list(KEYS)}})
    assert plan == [IndexAction("adopt", "by_title_newest", KEYS, adopts=NAME)]
    assert [a for a in plan if a.kind == "create"] == []  # a create would fail with IndexOptionsConflict


def test_retired_indexes_are_dropped() -> None:
    plan = index_plan({NAME: {"key": list(KEYS)}, "content_id_1": {"key": [("content_id", 1)]},
                       "user_id_1_created_at_-1": {"key": [("user_id", 1), ("created_at", -1)]},
                       "someone_elses": {"key": [("rating", 1)]}})
    assert plan == [IndexAction("drop", "content_id_1"), IndexAction("drop", "user_id_1_created_at_-1")]


# -- 8. least privilege -------------------------------------------------------------------------------
_ACTION_OF = {"find": "find", "find_one": "find", "aggregate": "find", "count_documents": "find",
              "insert_one": "insert", "insert_many": "insert", "update_one": "update", "update_many": "update",
              "find_one_and_update": "update", "replace_one": "update", "delete_one": "remove",
              "delete_many": "remove", "drop": "dropCollection", "create_index": "createIndex",
              "drop_index": "dropIndex"}


def _collection_calls(source: str) -> set[str]:
    return {m for m in re.findall(r"(?:collection|db\[[^\]]+\])\.(\w+)\(", source) if m in _ACTION_OF}


def test_the_role_grants_exactly_what_the_app_users_code_runs() -> None:
    gateway = Path(gateway_package.__file__).parent
    used = {_ACTION_OF[c] for f in gateway.rglob("*.py") for c in _collection_calls(f.read_text())}
    # The seeder loads and probes with the application user too (reset deletes as root).
    used |= {_ACTION_OF[c] for fn in (seed_mongo.insert_reviews, seed_mongo.has_reviews)
             for c in _collection_calls(inspect.getsource(fn))}
    assert used == {"find", "insert"}  # the scan saw the calls (a regex that matched nothing would pass)
    assert set(GATEWAY_ACTIONS) == used
    assert role_privileges("reviews") == [{"resource": {"db": "reviews", "collection": REVIEWS_COLLECTION},
                                           "actions": sorted(used)}]


# -- 7. seed errors and seed ids ----------------------------------------------------------------------
RULE = {"operatorName": "$jsonSchema", "schemaRulesNotSatisfied": [
    {"operatorName": "properties", "propertiesNotSatisfied": [
        {"propertyName": "rating", "details": [{"operatorName": "maximum", "specifiedAs": {"maximum": 10},
                                                "reason": "comparison failed", "consideredValue": 11}]}]}]}


class _RefusingCollection:
    """Stands for a collection whose validator refuses the batch (MongoDB is the one engine faked)."""

    def insert_many(self, docs: list[dict[str, object]], ordered: bool) -> None:
        raise BulkWriteError({"writeErrors": [{"index": 0, "code": 121, "errmsg": "Document failed validation",
                                               "errInfo": {"failingDocumentId": 1, "details": RULE}}],
                              "nInserted": 0})


def test_a_seed_error_carries_the_failing_rule() -> None:
    with pytest.raises(BackendError) as failure:
        seed_mongo.insert_reviews({REVIEWS_COLLECTION: _RefusingCollection()}, [{"rating": 11}])
    message = str(failure.value)
    assert "Document failed validation" in message and "rating" in message and "maximum" in message
    assert failure.value.hint is not None


def test_identical_seeds_give_identical_review_ids() -> None:
    def ids(seed: int) -> list[object]:
        spec = SeedSpec(0.005, seed, date(2024, 3, 31))
        return [d["_id"] for d in review_documents(spec, catalogue.content_index(spec), user_index(spec))]

    first, again, other = ids(5), ids(5), ids(6)
    assert first == again and len(set(first)) == len(first)
    assert first != other
