"""The reviews store against a real MongoDB: STREAMCTL_TEST_MONGO_URI's server, else a local mongod.

Skipped with the reason when neither exists (STREAMCTL_REQUIRE=mongo turns that into a failure); the
first test checks exactly that behaviour, in a child pytest, so it runs everywhere.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streamctl.config.model import Node
from streamctl.context import MONGO_APP_USER, ClusterContext
from streamctl.errors import BackendError
from streamctl.names import REVIEWS_COLLECTION
from streamctl.seed import mongo as seed_mongo
from streamctl.services.mongo import MongoService
from streamctl.services.mongo_schema import REVIEW_INDEXES
from streamctl.verify.stores import check_mongo
from tests.support.mongo import cleanup, mongo_context, mongo_server
from tests.support.ports import free_port

NAME, KEYS = next(iter(REVIEW_INDEXES.items()))


@pytest.mark.parametrize("require", [False, True])
def test_an_unreachable_uri_skips_with_the_reason_or_fails_when_required(require: bool) -> None:
    env = {**os.environ, "STREAMCTL_TEST_MONGO_URI": f"mongodb://127.0.0.1:{free_port()}/",
           "STREAMCTL_REQUIRE": "mongo" if require else ""}
    run = subprocess.run([sys.executable, "-m", "pytest", "-rs", "-q", "-p", "no:cacheprovider",
                          f"{__file__}::test_steps_converge_and_a_second_run_has_nothing_pending"],
                         capture_output=True, text=True, env=env, cwd=Path(__file__).parents[2], timeout=120)
    assert "STREAMCTL_TEST_MONGO_URI (mongodb://127.0.0.1:" in run.stdout and "does not answer" in run.stdout
    if require:
        assert run.returncode == 1 and "STREAMCTL_REQUIRE lists mongo" in run.stdout
        assert "1 failed" in run.stdout or "1 error" in run.stdout
    else:
        assert run.returncode == 0 and "1 skipped" in run.stdout


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[ClusterContext]:
    with mongo_server(tmp_path) as server:
        context = mongo_context(server, tmp_path)
        yield context
        cleanup(context)


def _service(ctx: ClusterContext) -> MongoService:
    node = ctx.topology.node(ctx.topology.mongo.name)
    assert isinstance(node, Node)
    return MongoService(ctx, node)


def _up(svc: MongoService) -> None:
    for step in (svc.users_step(), svc.reviews_step()):
        if step.pending():
            step.apply()


@pytest.mark.mongo
def test_steps_converge_and_a_second_run_has_nothing_pending(ctx: ClusterContext) -> None:
    svc = _service(ctx)
    _up(svc)
    assert svc.users_step().pending() == [] and svc.reviews_step().pending() == []
    assert [r.verdict for r in check_mongo(ctx)][0].status == "passed"


@pytest.mark.mongo
def test_indexes_converge_by_keys(ctx: ClusterContext) -> None:
    svc = _service(ctx)
    _up(svc)
    with ctx.mongo(admin=True) as client:
        coll = client[ctx.topology.mongo.database][REVIEWS_COLLECTION]
        coll.drop_index(NAME)
        coll.create_index([("content_id", 1)], name=NAME)  # our name, stale keys
        coll.create_index([("user_id", 1), ("created_at", -1)], name="user_id_1_created_at_-1")  # retired
        assert check_mongo(ctx)[0].verdict.status == "failed"
        svc.reviews_step().apply()
        info = coll.index_information()
        assert [tuple(k) for k in info[NAME]["key"]] == list(KEYS) and "user_id_1_created_at_-1" not in info
        coll.drop_index(NAME)
        coll.create_index(list(KEYS), name="by_title_newest")  # our keys, another name: adopted
        assert svc.reviews_step().pending() == []
        svc.reviews_step().apply()  # no IndexOptionsConflict


@pytest.mark.mongo
def test_verify_fails_on_a_stale_validator_and_a_missing_app_user(ctx: ClusterContext) -> None:
    _up(_service(ctx))
    with ctx.mongo(admin=True) as client:
        db = client[ctx.topology.mongo.database]
        db.command("collMod", REVIEWS_COLLECTION, validator={"$jsonSchema": {"bsonType": "object"}})
        assert "stale validator" in check_mongo(ctx)[0].verdict.detail
        _service(ctx).reviews_step().apply()
        db.command("dropUser", MONGO_APP_USER)
        assert "does not exist" in check_mongo(ctx)[0].verdict.detail


@pytest.mark.mongo
def test_the_app_user_reads_and_inserts_but_cannot_drop(ctx: ClusterContext) -> None:
    from pymongo.errors import OperationFailure

    _up(_service(ctx))
    with ctx.mongo() as client:
        coll = client[ctx.topology.mongo.database][REVIEWS_COLLECTION]
        with pytest.raises(BackendError, match="failing rule") as failure:
            seed_mongo.insert_reviews(client[ctx.topology.mongo.database], [{"content_id": "c", "rating": 11}])
        assert "rating" in str(failure.value) or "required" in str(failure.value)
        assert coll.find_one({}) is None
        with pytest.raises(OperationFailure) as refused:
            coll.drop()
        assert refused.value.code == 13


@pytest.mark.mongo
def test_a_changed_root_password_is_rotated_with_the_remembered_one(ctx: ClusterContext) -> None:
    svc = _service(ctx)
    _up(svc)
    secrets: dict[str, Any] = ctx.secrets
    old = secrets["mongo_password"]
    secrets["mongo_password"] = old + "-new"
    assert svc.users_step().pending() == ["rotate the password of streamctl_root (mongo_password changed)"]
    svc.users_step().apply()
    assert svc.users_step().pending() == []
    (ctx.store.root / "mongo-applied.json").unlink()  # forgotten: now it is a clear error, not "no user"
    secrets["mongo_password"] = old
    with pytest.raises(BackendError, match="refused the root password") as failure:
        svc.users_step().apply()
    assert failure.value.hint is not None and "previous" in failure.value.hint
    secrets["mongo_password"] = old + "-new"  # so that cleanup can log in
