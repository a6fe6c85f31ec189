"""One error hierarchy: every user-facing failure is a StreamctlError, rendered once by the CLI."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes (documented in the README)."""

    OK = 0
    FAILURE = 1  # unexpected internal error
    USAGE = 2  # bad command line (Typer/Click's own code)
    CONFIG = 3  # topology file malformed or invalid
    PREFLIGHT = 4  # a binary, extension, engine or permission is missing
    RUNTIME = 5  # a node or step failed while running
    TIMEOUT = 6  # a readiness wait ran out of time
    NOT_FOUND = 7  # unknown node, no state for this cluster, ...
    CHECK_FAILED = 8  # verify: at least one check failed
    CHECK_ERROR = 9  # verify: at least one check could not run
    REFUSED = 10  # the operation would lose data and was refused (e.g. seed without --reset)
    BUSY = 11  # another streamctl command holds the cluster's lock (--wait-lock ran out)
    UNHEALTHY = 12  # status: a node is not running or does not answer
    FOREIGN = 13  # the nodes belong to another state directory (instance id differs); `up --adopt` takes over
    UNREACHABLE = 14  # up: every node on a healthy host converged, but some hosts cannot run their nodes
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT, as shells report it)


class StreamctlError(Exception):
    """Base class: a message for the user, an optional hint, and an exit code (each subclass names its
    own on its class line: `class NotFoundError(StreamctlError, exit_code=ExitCode.NOT_FOUND)`)."""

    exit_code: ExitCode = ExitCode.FAILURE

    def __init_subclass__(cls, exit_code: ExitCode | None = None, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if exit_code is not None:
            cls.exit_code = exit_code

    def __init__(self, message: str, hint: str | None = None, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details or []


class ConfigError(StreamctlError, exit_code=ExitCode.CONFIG):
    """The topology file is malformed; `details` holds one line per problem found."""


class PreflightError(StreamctlError, exit_code=ExitCode.PREFLIGHT):
    """Before any change: a binary, extension, engine or permission the command needs is missing."""


class BackendError(StreamctlError, exit_code=ExitCode.RUNTIME):
    """A node, or what runs it, failed while running."""


class StepError(StreamctlError, exit_code=ExitCode.RUNTIME):
    """A plan step failed; names the node and the step."""


class ReadinessTimeout(StreamctlError, exit_code=ExitCode.TIMEOUT):
    """A node did not become ready in time; `details` carries its last log lines."""


class NotFoundError(StreamctlError, exit_code=ExitCode.NOT_FOUND):
    """An unknown node, no state for this cluster, or nothing of what was asked for."""


class RefusedError(StreamctlError, exit_code=ExitCode.REFUSED):
    """The operation would lose data (or cannot be done safely) and was refused."""


class LockedError(StreamctlError, exit_code=ExitCode.BUSY):
    """Another mutating command holds the cluster's lock and the wait allowed for it ran out."""


class ForeignError(StreamctlError, exit_code=ExitCode.FOREIGN):
    """A container, service, volume, network or data directory carries another state directory's instance
    id: streamctl refuses to adopt, recreate or delete it (`up --adopt` takes it over deliberately)."""


class HostsUnreachable(StreamctlError, exit_code=ExitCode.UNREACHABLE):
    """`up` converged the nodes it could reach; the details name the hosts and the nodes pinned to them."""


class Interrupted(StreamctlError, exit_code=ExitCode.INTERRUPTED):
    """Ctrl-C: `details` say what was done or what still runs; the hint says how to finish, follow or cancel."""
