"""TLS: every node refuses plain-text clients, and no certificate of the cluster expires within 30 days."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from streamctl.config.model import Engine, Node, Topology
from streamctl.context import ClusterContext
from streamctl.tls import certs
from streamctl.verify.result import CheckResult, Verdict, describe, failed, guarded, passed

REQUIRED = "tls.required"
EXPIRY = "tls.expiry"


def skip_reason(t: Topology) -> str | None:
    if not t.tls.enabled:
        return "TLS is off in the topology (tls: false)"
    if all(n.is_external for n in t.nodes()):
        return "every node is external: the cluster CA covers provisioned nodes only"
    return None


def plain_text_probe(host: str, port: int, user: str) -> str | None:
    """Try a plain-text connection carrying no password: pg_hba's refusal ("no encryption") comes before
    authentication, so no secret is needed to see it, and none can leak to whoever answers. Returns None
    when refused, else what happened (the server asked for a password, or let the client in)."""
    import os

    import psycopg

    try:
        # An empty password and a password file that cannot exist (libpq skips it silently): libpq sends
        # nothing, whatever PGPASSWORD or ~/.pgpass say.
        plain = psycopg.connect(host=host, port=port, user=user, dbname="postgres", password="",
                                passfile=os.path.join(os.devnull, "none"), sslmode="disable",
                                gssencmode="disable", connect_timeout=5)
    except psycopg.OperationalError as exc:
        text = str(exc)
        if "no encryption" in text:
            return None
        if "password" in text or "authentication" in text:  # pg_hba admitted it: authentication was next
            return "accepts plain-text connections up to password authentication (pg_hba admits `host`, " \
                   "not only `hostssl`)"
        raise
    plain.close()
    return "accepts plain-text logins (pg_hba admits `host`, not only `hostssl`)"


def _postgres(ctx: ClusterContext, node: Node) -> Verdict:
    """A plain-text connection is attempted for real (without a password): pg_hba must refuse it, and
    `ssl` must be on."""
    ep = ctx.endpoint(node.name)
    problem = plain_text_probe(ep.host, ep.port, ctx.topology.pg_user)
    if problem is not None:
        return failed(problem)
    with ctx.pg_connect(node.name, "postgres") as conn:
        row = conn.execute("SELECT current_setting('ssl'), (SELECT version FROM pg_stat_ssl "
                           "WHERE pid = pg_backend_pid())").fetchone()
    if not row or row[0] != "on":
        return failed("ssl is off")
    return passed(f"plain text refused; verified {row[1]}", protocol=row[1])


def _redis(ctx: ClusterContext) -> Verdict:
    client = ctx.redis()
    try:
        conf: dict[str, Any] = {k: client.config_get(k).get(k) for k in ("port", "tls-port")}
    finally:
        client.close()
    if str(conf["port"]) != "0":
        return failed(f"a plain-text port is open ({conf['port']})", **conf)
    return passed(f"TLS port {conf['tls-port']} only, verified", **conf)


def _mongo(ctx: ClusterContext) -> Verdict:
    client = ctx.mongo(admin=True)
    try:
        opts = client.admin.command("getCmdLineOpts").get("parsed", {})
    finally:
        client.close()
    mode = opts.get("net", {}).get("tls", {}).get("mode")
    return passed("requireTLS") if mode == "requireTLS" else failed(f"net.tls.mode is {mode!r}, not requireTLS")


def _required(ctx: ClusterContext, node: Node) -> Verdict:
    if node.engine is Engine.POSTGRES:
        return _postgres(ctx, node)
    if node.engine is Engine.REDIS:
        return _redis(ctx)
    return _mongo(ctx)


def check_required(ctx: ClusterContext) -> list[CheckResult]:
    nodes = [n for n in ctx.topology.nodes() if ctx.managed_tls(n.name)]  # external nodes bring their own
    with ThreadPoolExecutor(max_workers=max(1, len(nodes))) as pool:
        return list(pool.map(lambda n: guarded(REQUIRED, n.name, lambda: _required(ctx, n)), nodes))


def _expiry(label: str, pem: bytes) -> Verdict:
    days = certs.days_left(pem)
    when = certs.expires(pem).date().isoformat()
    if days < certs.RENEW_WITHIN_DAYS:
        return failed(f"{label} expires {when} ({days:.0f} days); run `streamctl up` to reissue",
                      days_left=round(days, 1))
    return passed(f"{label} valid until {when} ({days:.0f} days)", days_left=round(days, 1))


def check_expiry(ctx: ClusterContext) -> list[CheckResult]:
    """The CA and each node's certificate as deployed (the files `up` gave the servers)."""
    tls = ctx.tls
    out = [guarded(EXPIRY, "ca", lambda: _expiry("cluster CA", tls.ca_file.read_bytes()))]
    for node in [n for n in ctx.topology.nodes() if ctx.managed_tls(n.name)]:
        def one(n: Node = node) -> Verdict:
            try:
                return _expiry("certificate", tls.deployed_cert(n.name).read_bytes())
            except OSError as exc:
                return failed(f"no certificate: {describe(exc)}")
        out.append(guarded(EXPIRY, node.name, one))
    return out
