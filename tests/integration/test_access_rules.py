"""pg_hba as streamctl writes it, on a real local cluster: an address that cannot go into pg_hba.conf is
refused before anything changes; a file PostgreSQL rejects is replaced by the previous one; either way the
servers start again afterwards."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from streamctl.errors import ExitCode, StepError
from streamctl.services.postgres import install_hba

pytestmark = [pytest.mark.postgres]


def hba(c: Any, node: str) -> tuple[str, list[Any]]:
    """The file on disk and the errors PostgreSQL finds in it."""
    with c.ctx.pg_connect(node, "postgres") as conn:
        text = conn.execute("SELECT pg_read_file(current_setting('hba_file'))").fetchone()[0]
        errors = conn.execute("SELECT line_number, error FROM pg_hba_file_rules WHERE error IS NOT NULL").fetchall()
    return text, errors


def restart(c: Any) -> None:
    """Stop every node (data kept) and bring the cluster up again: a node with a bad pg_hba would not start."""
    c.down()
    c.up()


def test_a_host_name_for_a_replica_is_refused_before_any_change(make_cluster: Any) -> None:
    c = make_cluster(cluster="hbahost", redis=False, fdw=False)
    c.up()
    before = hba(c, "analytics-primary")
    good = c.path.read_text()
    data = yaml.safe_load(good)
    data["analytics"]["replicas"][0]["bind"] = "replica.invalid"
    c.path.write_text(yaml.safe_dump(data, sort_keys=False))
    res = c.cli.run("up")
    assert res.returncode == ExitCode.CONFIG, res.stdout + res.stderr
    assert "analytics.replicas[0].bind: 'replica.invalid' is not an IP address" in res.stdout + res.stderr
    assert hba(c, "analytics-primary") == before  # nothing was written

    c.path.write_text(good)
    restart(c)
    text, errors = hba(c, "analytics-primary")
    assert text == before[0] and errors == []


def test_a_file_postgres_rejects_is_replaced_by_the_previous_one(make_cluster: Any) -> None:
    c = make_cluster(cluster="hbabad", redis=False, fdw=False, replicas=0)
    c.up()
    before, _ = hba(c, "analytics-primary")
    node = c.topology.node("analytics-primary")
    broken = before + "host all all 10.0.0.0/33 scram-sha-256\n"  # a netmask PostgreSQL refuses
    with pytest.raises(StepError) as info:
        install_hba(c.ctx, c.backend, node, broken)
    assert "the previous file is back" in info.value.message
    assert any("10.0.0.0/33" in d or "invalid" in d.lower() for d in info.value.details), info.value.details
    text, errors = hba(c, "analytics-primary")
    assert text == before and errors == []
    restart(c)
    assert hba(c, "analytics-primary") == (before, [])
    assert not c.up().changed
