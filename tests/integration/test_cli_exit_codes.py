"""The documented exit codes, observed from a real `streamctl` process on a real local cluster (PostgreSQL
and Redis): 0, 2 (a bad choice), 3 (validate), 5 (a failed step), 6 (a readiness timeout, and seed's
--replica-timeout), 8 (a failed check), 9 (a check that could not run), 12 (status with a node down)."""

from __future__ import annotations

import json
import signal

import pytest

from streamctl.errors import ExitCode
from streamctl.names import SCHEMA_VERSION_TABLE
from tests.support.cli import start, streamctl

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def test_documented_exit_codes_from_a_real_streamctl(make_cluster) -> None:
    c = make_cluster(cluster="exit-codes", replicas=1)
    f = ("-f", str(c.path))

    ok = streamctl("validate", *f)  # validate as a command, on the file the rest of this test uses
    assert ok.returncode == 0 and "describes cluster 'exit-codes'" in ok.stdout, ok.stderr
    assert json.loads(streamctl("validate", "--json", *f).stdout)["ok"] is True

    usage = streamctl("up", "--backend", "kubernetes", *f)
    assert usage.returncode == ExitCode.USAGE and "kubernetes" in usage.stderr

    timeout = streamctl("up", "--timeout", "0.01", *f)
    assert timeout.returncode == ExitCode.TIMEOUT, timeout.stderr
    assert "was not ready after" in timeout.stderr

    up = streamctl("up", *f)
    assert up.returncode == 0, up.stderr
    status = streamctl("status", "--json", *f)
    assert status.returncode == 0 and json.loads(status.stdout)["ok"] is True, status.stdout
    names = {n.name for n in c.topology.nodes()}
    urls = json.loads(streamctl("url", "--json", *f).stdout)
    assert set(urls["nodes"]) == names and urls["ok"] is True  # a URI for every node
    assert all(u.startswith(("postgresql://", "redis://", "rediss://")) for u in urls["nodes"].values())
    assert len(streamctl("url", *f).stdout.splitlines()) == len(names)

    follow = start("logs", "redis", "--follow", "-n", "1", *f)  # follows until Ctrl-C
    assert follow.stdout is not None and follow.stdout.readline()
    follow.send_signal(signal.SIGINT)
    follow.communicate(timeout=60)
    assert follow.returncode == ExitCode.INTERRUPTED

    c.reload()
    sub = c.ctx.pg_connect("analytics-replica-1")
    with sub:
        name = sub.execute("SELECT subname FROM pg_subscription").fetchone()[0]  # type: ignore[index]
        sub.execute(f"ALTER SUBSCRIPTION {name} DISABLE")  # the replica stops following the primary
    seed = streamctl("seed", "--scale", "0.001", "--replica-timeout", "1", *f)
    assert seed.returncode == ExitCode.TIMEOUT, seed.stderr
    assert "--replica-timeout" in seed.stderr

    # A step that fails: the schema is applied again over a view standing where a table must be.
    with c.ctx.pg_connect("analytics-primary") as conn:
        conn.execute(f"DELETE FROM {SCHEMA_VERSION_TABLE}")
        conn.execute("ALTER TABLE user_watch_history RENAME TO user_watch_history_kept")
        conn.execute("CREATE VIEW user_watch_history AS SELECT * FROM user_watch_history_kept")
    failed = streamctl("up", *f)
    assert failed.returncode == ExitCode.RUNTIME, failed.stderr
    assert "analytics-primary: step 'schema analytics" in failed.stderr and "failed" in failed.stderr

    down_json = streamctl("down", "--json", *f)
    assert down_json.returncode == 0, down_json.stderr
    assert json.loads(down_json.stdout) == {"cluster": "exit-codes", "ok": True, "exit_code": 0, "backend": "local",
                                            "volumes": False, "outcome": "stopped",
                                            "nodes": json.loads(down_json.stdout)["nodes"]}
    assert set(json.loads(down_json.stdout)["nodes"]) == names
    down = streamctl("status", *f)
    assert down.returncode == ExitCode.UNHEALTHY, down.stdout + down.stderr
    checks = streamctl("verify", "--only", "nodes", *f)
    assert checks.returncode == ExitCode.CHECK_FAILED, checks.stdout + checks.stderr
    cannot = streamctl("verify", "--only", "tls", "--json", *f)
    assert cannot.returncode == ExitCode.CHECK_ERROR, cannot.stdout + cannot.stderr
    report = json.loads(cannot.stdout)
    assert report["exit_code"] == ExitCode.CHECK_ERROR and report["summary"]["error"] >= 1
    assert report["summary"]["failed"] == 0


def test_validate_as_a_command_lists_every_error_with_exit_3(tmp_path) -> None:
    path = tmp_path / "topology.yaml"
    path.write_text("version: 1\ncluster: Bad Name\nredis:\n  port: 15432\nmetdata: {}\n")
    res = streamctl("validate", "-f", str(path))
    assert res.returncode == ExitCode.CONFIG, res.stderr
    assert "3 errors in the topology" in res.stderr
    assert "cluster: 'Bad Name' is not a valid name" in res.stderr
    assert "redis.port: port 15432 is already used by metadata.coordinator (line 4)" in res.stderr
    assert "metdata: unknown key (did you mean 'metadata'?) (line 5)" in res.stderr
    js = streamctl("validate", "--json", "-f", str(path))
    assert js.returncode == ExitCode.CONFIG and len(json.loads(js.stdout)["errors"]) == 3
