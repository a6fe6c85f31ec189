"""What is recorded about secrets (applied, pending; 0600), and why a new password recreates no node."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import stat
from pathlib import Path

import pytest

from streamctl.backends.base import fingerprint
from streamctl.backends.docker.spec import secure_spec
from streamctl.backends.local.recipes import recipe_for
from streamctl.config.model import Topology
from streamctl.errors import ExitCode
from streamctl.services.passwords import scram_verifier
from streamctl.state import StateStore
from streamctl.tls import certs
from streamctl.tls.material import NodeTls

SECRETS = {"postgres_password": "pg-pw", "redis_password": "redis-pw", "mongo_password": "mongo-pw"}
OTHER = {"postgres_password": "pg-pw-2", "redis_password": "redis-pw-2", "mongo_password": "mongo-pw-2"}


def test_docker_fingerprints_do_not_depend_on_passwords_but_files_carry_them() -> None:
    ca = certs.new_ca("c")
    t = Topology()
    for node in t.nodes():
        pair = certs.issue_server(ca, node.name, {node.name})
        tls = NodeTls(ca.cert, pair.cert, pair.key)
        one, two = secure_spec(t, node, SECRETS, tls), secure_spec(t, node, OTHER, tls)
        assert fingerprint(one.definition()) == fingerprint(two.definition()), node.name
        assert [f.content for f in one.files if f.secret] != [f.content for f in two.files if f.secret]
        moved = secure_spec(t, node.__class__(**{**node.__dict__, "port": node.port + 1}), SECRETS, tls)
        assert fingerprint(moved.definition()) != fingerprint(one.definition())  # the rest still counts
    redis = t.node("redis")
    assert redis is not None
    conf = next(f for f in secure_spec(t, redis, OTHER, None).files if f.path.endswith("redis.conf"))
    assert b'requirepass "redis-pw-2"' in conf.content and b"redis-pw-2" not in (conf.stand_in or b"")


def test_local_redis_definition_leaves_the_password_out(tmp_path: Path) -> None:
    t = Topology()
    node = t.node("redis")
    assert node is not None
    one = recipe_for(node, tmp_path, t, {**SECRETS}, None)
    two = recipe_for(node, tmp_path, t, {**OTHER}, None)
    assert fingerprint(one.definition) == fingerprint(two.definition)
    assert 'requirepass "redis-pw-2"' in two.config_text()  # quoted as redis.conf's parser reads it


def test_applied_and_pending_records(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "c")
    t = Topology()
    first = store.secrets(t, create=True)
    assert store.applied_secrets() == first  # a new cluster is created with them
    store.begin_rotation("replication_password", "new-1")
    store.set_secret("replication_password", "new-1")
    assert store.secrets(t)["replication_password"] == "new-1"
    assert store.applied_secrets()["replication_password"] == first["replication_password"]  # old one kept
    store.begin_rotation("replication_password", "new-2")  # e.g. the topology changed again meanwhile
    assert store.login_candidates("replication_password", "new-2") == ["new-2", first["replication_password"],
                                                                       "new-1"]
    store.record_applied("replication_password", "new-2")
    assert store.rotations() == {"applied": {**first, "replication_password": "new-2"}, "pending": {}}
    for f in (store.secrets_file, store.rotations_file):
        assert stat.S_IMODE(f.stat().st_mode) == 0o600


def test_a_topology_edit_keeps_the_old_value_as_applied(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "c")
    store.secrets(Topology.model_validate({"secrets": {"gateway_password": "one"}}), create=True)
    edited = Topology.model_validate({"secrets": {"gateway_password": "two"}})
    assert store.secrets(edited, create=True)["gateway_password"] == "two"
    assert store.applied_secrets()["gateway_password"] == "one"
    assert store.login_candidates("gateway_password", "two") == ["two", "one"]


def test_scram_verifier_follows_rfc_7677() -> None:
    salt = b"0123456789abcdef"
    verifier = scram_verifier("pencil", salt, 4096)
    method, rest = verifier.split("$", 1)
    params, keys = rest.split("$")
    assert method == "SCRAM-SHA-256" and params == f"4096:{base64.b64encode(salt).decode()}"
    salted = hashlib.pbkdf2_hmac("sha256", b"pencil", salt, 4096)
    stored = hashlib.sha256(hmac.new(salted, b"Client Key", "sha256").digest()).digest()
    assert keys.split(":")[0] == base64.b64encode(stored).decode()
    assert scram_verifier("pencil") != scram_verifier("pencil")  # a fresh salt each time


def test_unknown_names_are_refused_before_anything(tmp_path: Path) -> None:
    from streamctl.context import ClusterContext
    from streamctl.secrets_rotation import UsageError, rotate

    ctx = ClusterContext.build(Topology(), tmp_path / "topology.yaml")
    with pytest.raises(UsageError) as err:
        rotate(ctx, None, ["no_such_password"])  # type: ignore[arg-type]
    assert err.value.exit_code is ExitCode.USAGE
    assert not ctx.store.root.exists()


def test_a_rotation_of_patronis_passwords_keeps_the_replaced_ones_until_it_is_finished(tmp_path: Path) -> None:
    """ha-secrets.json (0600): new values for all three, the replaced ones kept as `previous` (the REST API is
    asked with the old password where a member has not taken the new one); a second start before the end keeps
    the first values (a member may still have them); the end forgets them."""
    from streamctl.ha import secrets as ha

    first = ha.ha_secrets(tmp_path, create=True)
    assert all(first.values()) and not ha.rotation_pending(tmp_path)
    assert ha.rest_passwords(tmp_path) == [first["rest_password"]]
    ha.begin_rotation(tmp_path)
    second = ha.ha_secrets(tmp_path)
    assert all(second[k] != first[k] for k in ha.KEYS) and ha.rotation_pending(tmp_path)
    assert ha.rest_passwords(tmp_path) == [second["rest_password"], first["rest_password"]]
    ha.begin_rotation(tmp_path)  # stopped halfway, started again
    assert ha.rest_passwords(tmp_path)[1] == first["rest_password"]
    assert stat.S_IMODE((tmp_path / ha.FILE).stat().st_mode) == 0o600
    ha.end_rotation(tmp_path)
    assert not ha.rotation_pending(tmp_path) and len(ha.rest_passwords(tmp_path)) == 1
    assert set(json.loads((tmp_path / ha.FILE).read_text())) == set(ha.KEYS)  # the replaced values are gone
