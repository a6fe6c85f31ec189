import pytest

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def test_up_twice(make_cluster):
    c = make_cluster()
    r1 = c.up()
    assert r1.changed
    r2 = c.up()
    assert not r2.changed
