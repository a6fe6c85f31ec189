"""A MongoDB server for the Mongo tests: the one STREAMCTL_TEST_MONGO_URI names, else a throwaway
`mongod --auth` on a free loopback port; and a cluster context whose mongo node points at it."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from streamctl.config.load import load_topology
from streamctl.context import MONGO_ROOT_USER, ClusterContext
from streamctl.state import Endpoint
from tests.support.cluster import topology_dict
from tests.support.ports import free_port

ENV_URI = "STREAMCTL_TEST_MONGO_URI"


def _redacted(uri: str) -> str:
    parts = urlsplit(uri)
    return f"{parts.scheme}://{parts.hostname}:{parts.port or 27017}"


def uri_unreachable(uri: str, timeout_ms: int = 3000) -> str | None:
    """None when the server answers a ping, else the skip reason (host and port only, no secret)."""
    from pymongo import MongoClient
    from pymongo.errors import PyMongoError

    try:
        client: MongoClient[Any]
        with MongoClient(uri, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms) as client:
            client.admin.command("ping")
        return None
    except (PyMongoError, ValueError) as exc:
        return (f"{ENV_URI} ({_redacted(uri)}) does not answer: {type(exc).__name__}; "
                "start that server or unset the variable")


@dataclass
class MongoServer:
    """host/port of the server; `admin_uri` authenticates as a user allowed to create users (None for a
    fresh local mongod: its localhost exception lets `up`'s users step create the root user itself)."""

    host: str
    port: int
    admin_uri: str | None


@contextlib.contextmanager
def mongo_server(tmp: Path) -> Iterator[MongoServer]:
    uri = os.environ.get(ENV_URI)
    if uri:
        parts = urlsplit(uri)
        yield MongoServer(parts.hostname or "127.0.0.1", parts.port or 27017, uri)
        return
    mongod = shutil.which("mongod")
    assert mongod is not None  # the mongo marker checked it
    port = free_port()
    (tmp / "db").mkdir()
    proc = subprocess.Popen([mongod, "--auth", "--bind_ip", "127.0.0.1", "--port", str(port), "--dbpath",
                             str(tmp / "db"), "--logpath", str(tmp / "mongod.log")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while uri_unreachable(f"mongodb://127.0.0.1:{port}/?directConnection=true", 1000) is not None:
            if proc.poll() is not None or time.monotonic() > deadline:  # readiness: it answers a ping
                raise RuntimeError(f"mongod did not start; see {tmp / 'mongod.log'}")
            time.sleep(0.2)
        yield MongoServer("127.0.0.1", port, None)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def mongo_context(server: MongoServer, directory: Path) -> ClusterContext:
    """A context whose mongo node is `server`, with its own database (dropped by `cleanup`)."""
    database = f"streamctl_test_{secrets.token_hex(4)}"
    data = topology_dict(cluster="mongotest", mongo=True, analytics=False, redis=False, fdw=False)
    data["mongo"] = {"enabled": True, "port": server.port, "database": database}
    path = directory / "topology.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    ctx = ClusterContext.build(load_topology(path), path)
    t = ctx.topology
    ctx.store.secrets(t, create=True)
    ctx.store.record_endpoints("local", [Endpoint(t.mongo.name, "mongo", "mongo", "local", server.host,
                                                  server.port, server.host, server.port)])
    if server.admin_uri:  # an external server: give streamctl's root user the generated password
        from pymongo import MongoClient

        client: MongoClient[Any]
        with MongoClient(server.admin_uri) as client:
            pw = ctx.secrets["mongo_password"]
            if client.admin.command("usersInfo", MONGO_ROOT_USER)["users"]:
                client.admin.command("updateUser", MONGO_ROOT_USER, pwd=pw)
            else:
                client.admin.command("createUser", MONGO_ROOT_USER, pwd=pw, roles=["root"])
    return ctx


def cleanup(ctx: ClusterContext) -> None:
    """Drop the test database with its users and roles (an external server keeps only streamctl_root)."""
    with ctx.mongo(admin=True) as client:
        db = client[ctx.topology.mongo.database]
        db.command("dropAllUsersFromDatabase")
        db.command("dropAllRolesFromDatabase")
        client.drop_database(ctx.topology.mongo.database)
