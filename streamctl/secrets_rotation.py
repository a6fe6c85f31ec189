"""Rotating the cluster's secrets: a new value is recorded as pending beside the applied one, given to every
place that holds it (services/passwords.py), and only then recorded as applied; a run that stops halfway
is finished by the next `rotate-secrets` or `up`, which log in with the old value where the new one is
not set yet. Afterwards replication, the FDW, the gateway's logins and Redis are checked working.
"""

from __future__ import annotations

import secrets as _secrets
import time
from dataclasses import dataclass, field
from typing import Any

from streamctl.backends.base import Backend
from streamctl.config.members import ha_groups
from streamctl.config.model import Role
from streamctl.context import ClusterContext
from streamctl.errors import ExitCode, StepError, StreamctlError
from streamctl.events import Emit, Event, ignore
from streamctl.gateway.guard import replace_token
from streamctl.ha import secrets as ha_secrets
from streamctl.plan import PendingConfig
from streamctl.secrets_checks import primary_now, run_checks
from streamctl.services import passwords
from streamctl.state import SECRET_KEYS
from streamctl.verify.result import CheckResult, Status

GATEWAY_TOKEN = "gateway_token"  # the gateway's ops token (state file gateway-token), not an engine secret
HA_PASSWORDS = "ha_passwords"  # Patroni's own passwords, together (ha-secrets.json: streamctl.ha.secrets)
NAMES = (*SECRET_KEYS, HA_PASSWORDS, GATEWAY_TOKEN)  # what `rotate-secrets NAME` accepts
ORDER = SECRET_KEYS  # the superuser first: every other change logs in as it


class UsageError(StreamctlError, exit_code=ExitCode.USAGE):
    """`rotate-secrets` was asked for what it cannot do (an unknown name, a secret the topology fixes)."""


@dataclass
class SecretOutcome:
    """What happened to one secret: rotated (new value applied), finished (a pending one applied),
    fixed (set in the topology and unchanged: change it there), unused (nothing in the topology holds it)."""

    name: str
    status: str
    changed: list[str] = field(default_factory=list)
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "changed": self.changed, "detail": self.detail}


@dataclass
class RotationReport:
    cluster: str
    secrets: list[SecretOutcome] = field(default_factory=list)
    checks: list[CheckResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def exit_code(self) -> ExitCode:
        statuses = {c.status for c in self.checks}
        if Status.FAILED in statuses:
            return ExitCode.CHECK_FAILED
        return ExitCode.CHECK_ERROR if Status.ERROR in statuses else ExitCode.OK

    def count(self, status: Status) -> int:
        return sum(1 for c in self.checks if c.status is status)

    def to_json(self) -> dict[str, Any]:
        return {"cluster": self.cluster, "ok": self.exit_code is ExitCode.OK, "exit_code": int(self.exit_code),
                "seconds": round(self.seconds, 3), "summary": {s.value: self.count(s) for s in Status},
                "secrets": [s.to_json() for s in self.secrets],
                "checks": [c.to_json() for c in self.checks]}


def used(ctx: ClusterContext, name: str) -> bool:
    """Whether anything this topology provisions holds the secret."""
    t = ctx.topology
    analytics = ctx.first(Role.ANALYTICS_PRIMARY) is not None
    return {"postgres_password": bool(passwords.managed_postgres(ctx)),
            "replication_password": analytics and bool(t.nodes_by_role(Role.ANALYTICS_REPLICA)),
            "fdw_password": t.fdw.enabled and analytics and ctx.first(Role.COORDINATOR) is not None,
            "gateway_password": t.gateway.enabled, "redis_password": t.redis.enabled,
            "mongo_password": t.mongo.enabled, "mongo_app_password": t.mongo.enabled,
            HA_PASSWORDS: bool(ha_groups(t)), GATEWAY_TOKEN: ctx.store.gateway_token_file.exists()}[name]


def fixed(ctx: ClusterContext, name: str) -> bool:
    """Set in the topology (usually as ${VAR}): streamctl cannot choose a new value for it."""
    return bool(getattr(ctx.topology.secrets, name, None))


def pending(ctx: ClusterContext) -> list[str]:
    """Secrets whose wanted value is not yet applied everywhere (a topology edit, or a run that stopped)."""
    rec = ctx.store.rotations()
    return [k for k in ORDER if rec["pending"].get(k)
            or (k in rec["applied"] and rec["applied"][k] != ctx.secrets[k])] + (
        [HA_PASSWORDS] if ha_secrets.rotation_pending(ctx.store.root) else [])


def rotate(ctx: ClusterContext, backend: Backend, names: list[str] | None = None, emit: Emit = ignore
           ) -> RotationReport:
    """`rotate-secrets`: new values for `names` (none: every secret in use), applied everywhere, checked.
    A name with a pending rotation gets that one finished instead of a new value."""
    started = time.monotonic()
    explicit = bool(names)
    chosen = check_names(names or [])
    ctx.secrets  # noqa: B018 - raises NotFoundError (exit 7) before any change when there is no cluster
    report = RotationReport(ctx.topology.cluster)
    waiting = set(pending(ctx))
    plan: list[tuple[str, str]] = []
    for name in chosen or [n for n in NAMES if used(ctx, n)]:
        if name in waiting:
            plan.append((name, "finished"))
        elif not used(ctx, name):
            report.secrets.append(SecretOutcome(name, "unused", detail="nothing in this topology holds it"))
        elif fixed(ctx, name):
            if explicit:
                raise UsageError(f"secrets.{name} is set in the topology: streamctl cannot choose its new value",
                                 hint=f"change secrets.{name} (or the variable it reads), then run "
                                      f"`streamctl rotate-secrets {name}`")
            report.secrets.append(SecretOutcome(name, "fixed", detail=f"set in the topology (secrets.{name})"))
        else:
            plan.append((name, "rotated"))
    plan.sort(key=lambda item: NAMES.index(item[0]))  # the superuser first: the other changes log in as it
    for name in (n for n, _ in plan if n in ("postgres_password", HA_PASSWORDS)):
        refusal = passwords.ha_refusal(ctx, backend, name)
        if refusal is not None:  # before any value is generated or stored
            raise refusal
    # A walsender started after this logged in with the new replication password.
    since = primary_now(ctx) if any(n == "replication_password" for n, _ in plan) else None
    for name, status in plan:
        if name == GATEWAY_TOKEN:
            report.secrets.append(SecretOutcome(name, status, [_new_gateway_token(ctx)]))
            continue
        if name == HA_PASSWORDS:
            if status == "rotated":  # the values replaced are kept until every member has the new ones
                ha_secrets.begin_rotation(ctx.store.root)
        elif status == "rotated":
            value = _secrets.token_urlsafe(24)
            ctx.store.begin_rotation(name, value)  # before it is stored: a later run knows to try it
            ctx.store.set_secret(name, value)
            ctx.reread_secrets()
        else:
            ctx.store.begin_rotation(name, ctx.secrets[name])
        report.secrets.append(SecretOutcome(name, status, _apply(ctx, backend, name, emit)))
    started_checks = time.monotonic()
    report.checks = run_checks(ctx, since)
    emit(Event("done", "*", "checks", f"{len(report.checks)} checks", time.monotonic() - started_checks))
    report.seconds = time.monotonic() - started
    return report


def finish_pending(ctx: ClusterContext, backend: Backend, emit: Emit = ignore) -> list[tuple[str, str, list[str]]]:
    """For `up`, once every node runs: apply what a topology edit (or a stopped rotation) left pending."""
    out = []
    for name in pending(ctx):
        if name != HA_PASSWORDS:  # its replaced values are kept already (streamctl.ha.secrets)
            ctx.store.begin_rotation(name, ctx.secrets[name])
        out.append(("*", f"rotate {name}", _apply(ctx, backend, name, emit)))
    return out


def pending_rotations(ctx: ClusterContext) -> list[PendingConfig]:
    """For `up --dry-run`: the secrets `up` would apply first (none before the first `up`)."""
    if not ctx.store.secrets_file.exists():
        return []
    return [PendingConfig("*", f"rotate {name}", [f"rotate {name}: give every node the changed value (logging "
                                                  "in with the applied one)"]) for name in pending(ctx)]


def check_names(names: list[str]) -> list[str]:
    """The names, each once; an unknown one is a usage error (exit 2), raised before anything happens."""
    unknown = [n for n in names if n not in NAMES]
    if unknown:
        raise UsageError(f"unknown secret name(s): {', '.join(unknown)}", hint=f"known: {', '.join(NAMES)}")
    return list(dict.fromkeys(names))


def _apply(ctx: ClusterContext, backend: Backend, name: str, emit: Emit) -> list[str]:
    """Every place of one secret, then the record: applied. A failure leaves it pending (old value kept)."""
    t0 = time.monotonic()
    emit(Event("begin", "*", f"rotate {name}", "apply the new value everywhere"))
    try:
        changed = passwords.APPLY[name](ctx, backend)
    except Exception as exc:  # noqa: BLE001 - any failure leaves the rotation pending and says how to finish
        message = exc.message if isinstance(exc, StreamctlError) else (str(exc).strip().splitlines() or [""])[0]
        emit(Event("fail", "*", f"rotate {name}", message))
        raise StepError(f"rotating {name} stopped halfway: {message}",
                        hint=f"fix the cause and run `streamctl rotate-secrets {name}` (or `streamctl up`) "
                             "again: it logs in with the old value where the new one is not set yet and "
                             "finishes; the old value stays recorded until then") from exc
    if name == HA_PASSWORDS:
        ha_secrets.end_rotation(ctx.store.root)
    else:
        ctx.store.record_applied(name, ctx.secrets[name])
    emit(Event("done", "*", f"rotate {name}", f"{len(changed)} place(s)", time.monotonic() - t0))
    return changed


def _new_gateway_token(ctx: ClusterContext) -> str:
    replace_token(ctx.store.root)
    return "gateway-token file (restart `streamctl gateway` to serve with it)"
