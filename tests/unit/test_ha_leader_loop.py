"""When a group waits for its Patroni leader's next loop (and streamctl may wake it): a standby that runs
without streaming yet (its replication slot is made in that loop), or, when synchronous, streaming standbys
none of which confirms commits yet. Nothing else wakes it (its callers ask only while the group is not
ready)."""

from __future__ import annotations

from streamctl.ha.rest import MemberState, _awaits_leaders_loop


def _s(name: str, role: str, state: str) -> MemberState:
    return MemberState(name, role, state, "127.0.0.1", 5432, 2, 0)


EXPECTED = {"w", "w-2", "w-3"}


def test_a_standby_running_without_streaming_waits_for_the_leaders_loop_whatever_the_mode() -> None:
    states = [_s("w", "leader", "running"), _s("w-2", "replica", "running"), _s("w-3", "replica", "streaming")]
    for synchronous in (True, False):
        found = _awaits_leaders_loop(states, EXPECTED, synchronous, "")
        assert found is not None and found.name == "w"


def test_streaming_standbys_wait_for_it_only_until_one_is_synchronous_and_only_when_synchronous() -> None:
    streaming = [_s("w", "leader", "running"), _s("w-2", "replica", "streaming"), _s("w-3", "replica", "streaming")]
    found = _awaits_leaders_loop(streaming, EXPECTED, True, "")
    assert found is not None and found.name == "w"
    assert _awaits_leaders_loop(streaming, EXPECTED, False, "") is None


def test_no_single_running_leader_or_a_member_still_being_cloned_wakes_nothing() -> None:
    assert _awaits_leaders_loop([_s("w-2", "replica", "running")], EXPECTED, True, "") is None
    two = [_s("w", "leader", "running"), _s("w-2", "leader", "running")]
    assert _awaits_leaders_loop(two, EXPECTED, True, "") is None
    old = [_s("w", "leader", "running"), _s("w-2", "replica", "running")]
    assert _awaits_leaders_loop(old, EXPECTED, True, not_led_by="w") is None  # a switchover's old leader
    cloning = [_s("w", "leader", "running"), _s("w-2", "replica", "creating replica")]
    assert _awaits_leaders_loop(cloning, EXPECTED, False, "") is None
