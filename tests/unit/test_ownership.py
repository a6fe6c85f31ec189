"""The ownership rules (ownership.py), on state directories in a temporary directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streamctl import ownership
from streamctl.backends.base import Action, NodeState, Observation
from streamctl.errors import ExitCode, ForeignError
from streamctl.plan import decide
from streamctl.state import StateStore


def store(tmp_path: Path, **state: object) -> StateStore:
    s = StateStore(tmp_path / "c")
    if state:
        s.write(dict(state))
    return s


def test_a_fresh_state_refuses_anything_it_finds_naming_the_owner(tmp_path: Path) -> None:
    own = ownership.load(store(tmp_path))
    assert not own.stored and len(own.instance) == 16
    with pytest.raises(ForeignError) as err:
        own.check("container x", "abc123", "/elsewhere/.streamctl/c")
    assert err.value.exit_code == ExitCode.FOREIGN == 13
    assert "abc123" in err.value.message and "/elsewhere/.streamctl/c" in err.value.message
    assert "--adopt" in (err.value.hint or "")
    with pytest.raises(ForeignError, match="no instance id"):  # unlabelled: made by another, older state
        own.check("container x", None)


def test_a_state_from_before_instance_ids_takes_unlabelled_nodes_over_once(tmp_path: Path) -> None:
    s = store(tmp_path, backend="docker")
    s.secrets_file.write_text("{}")  # an older streamctl's state: secrets, no id
    own = ownership.load(s)
    assert own.check("container x", None) is False  # to be relabelled
    with pytest.raises(ForeignError):
        own.check("container y", "someone-else")
    ownership.record(s, own)
    data = s.read()
    assert data["instance_id"] == own.instance and data["adopting"] == [None] and data["adopted"] == [None]
    # Interrupted before every node was relabelled: the next run, without --adopt, still takes them.
    again = ownership.load(s)
    assert again.instance == own.instance and again.check("container z", None) is False
    ownership.finish(s)
    done = ownership.load(s)
    assert "adopting" not in s.read() and done.check("container x", own.instance) is True
    assert done.mine(None)  # leftovers of what it took over (template volumes, network) are its own


def test_a_stored_id_refuses_unlabelled_nodes_and_adopt_takes_anything(tmp_path: Path) -> None:
    s = store(tmp_path, instance_id="0123456789abcdef")
    s.secrets_file.write_text("{}")
    own = ownership.load(s)
    assert own.stored and own.check("c", "0123456789abcdef") is True
    with pytest.raises(ForeignError):
        own.check("c", None)
    adopt = ownership.load(s, adopt=True)
    assert adopt.check("c", "feedfeedfeedfeed", "/x") is False and adopt.check("d", None) is False
    ownership.record(s, adopt)
    assert s.read()["adopted"] == [None, "feedfeedfeedfeed"]  # sorted by str(): "None" first


def test_marker_round_trip_and_garbage(tmp_path: Path) -> None:
    own = ownership.load(store(tmp_path))
    assert ownership.parse_marker(own.marker()) == (own.instance, str(tmp_path / "c"))
    assert ownership.parse_marker("not json") == (None, None)
    assert json.loads(own.marker())["instance"] == own.instance


def test_a_node_taken_over_is_recreated_whatever_its_fingerprint() -> None:
    obs = Observation("n", NodeState.RUNNING, "fp", "", takeover="instance abc")
    assert decide(obs, "fp") is Action.RECREATE
    assert decide(Observation("n", NodeState.RUNNING, "fp"), "fp") is Action.NOOP
