"""`up`'s configuration steps run: each as soon as the steps it needs are done (steps.dependencies), one
node's steps in order, independent nodes at once, over the connections `up` keeps. A step of an external
node that `up --configure` does not cover only checks what it would change. Emits events, never prints."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from streamctl import parallel
from streamctl.errors import StepError, StreamctlError
from streamctl.events import Emit, Event
from streamctl.steps import ConfigStep, dependencies, without_nodes

MAX_CONFIG_THREADS = 8  # steps of distinct nodes at once (each holds a connection or two)

# What one step ended in: its change, None (converged already), the differences an external node
# only checked has, or the failure.
StepOutcome = tuple[str, str, list[str]] | list[str] | StepError | None


@dataclass
class Configured:
    """What the steps did: their changes and the external nodes' differences, in the steps' order, and
    the failures (the first one in that order is the one to raise)."""

    changes: list[tuple[str, str, list[str]]] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)
    errors: list[StepError] = field(default_factory=list)


def configure(steps: list[ConfigStep], emit: Emit, check_only: Callable[[str], bool],
              skip: set[str] | None = None) -> Configured:
    """Every step, each as soon as the steps it needs are done; after a failure nothing new starts and
    the steps already running finish. `check_only(node)`: that node's steps only report what they would
    change. The steps of the nodes in `skip` (unreachable) are left out, and so is every step that needs
    one of them."""
    steps, needs = without_nodes(steps, skip) if skip else (steps, dependencies(steps))

    def one(i: int) -> StepOutcome:
        return check_step(steps[i], emit) if check_only(steps[i].node) else run_step(steps[i], emit)

    outcomes = parallel.by_needs(len(steps), needs, one, MAX_CONFIG_THREADS,
                                 halt=lambda o: isinstance(o, StepError))
    done = Configured()
    for i in sorted(outcomes):
        outcome = outcomes[i]
        if isinstance(outcome, list):
            done.differences += outcome
        elif isinstance(outcome, tuple):
            done.changes.append(outcome)
        elif isinstance(outcome, StepError):
            done.errors.append(outcome)
    return done


def run_step(step: ConfigStep, emit: Emit) -> StepOutcome:
    """Run one step: its change, None when converged already, or the StepError it failed with."""
    t0 = time.monotonic()
    try:
        pending = step.pending()
        if not pending:
            emit(Event("noop", step.node, step.name, "already configured"))
            return None
        emit(Event("begin", step.node, step.name, "; ".join(pending)))
        step.apply()
    except StreamctlError as exc:
        emit(Event("fail", step.node, step.name, exc.message))
        err = StepError(f"{step.node}: step '{step.name}' failed: {exc.message}",
                        hint=exc.hint or "fix the cause and run `streamctl up` again: it resumes "
                                         "where it stopped", details=exc.details)
        err.__cause__ = exc
        return err
    except Exception as exc:
        lines = str(exc).strip().splitlines() or [type(exc).__name__]
        emit(Event("fail", step.node, step.name, lines[0]))
        err = StepError(f"{step.node}: step '{step.name}' failed: {lines[0]}", details=lines[1:],
                        hint="fix the cause and run `streamctl up` again: it resumes where it stopped")
        err.__cause__ = exc
        return err
    emit(Event("done", step.node, step.name, "; ".join(pending), time.monotonic() - t0))
    return (step.node, step.name, pending)


def check_step(step: ConfigStep, emit: Emit) -> list[str]:
    """An external node without --configure: report what the step would change, change nothing."""
    try:
        pending = step.pending()
    except StreamctlError as exc:
        pending = [f"cannot check: {exc.message}"]
    except Exception as exc:  # noqa: BLE001 - e.g. a table the step needs is missing: a difference
        text = str(exc).strip().splitlines()
        pending = [f"cannot check: {text[0] if text else type(exc).__name__}"]
    if pending:
        emit(Event("info", step.node, step.name, "differs: " + "; ".join(pending)))
    else:
        emit(Event("noop", step.node, step.name, "matches the topology"))
    return [f"{step.node}: {step.name}: {p}" for p in pending]
