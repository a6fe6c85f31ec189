"""The one way the tests run the `streamctl` command: as a whole process, as users and CI do (output not a
terminal, no terminal to ask on, NO_COLOR), with this environment's executable.

- `streamctl(*argv)`: run it to the end; a CompletedProcess (text: returncode, stdout, stderr, and output,
  both as a terminal shows them).
- `start(*argv)`: started in the background (Ctrl-C and lock tests, `streamctl gateway`); a text Popen.
- `Cli(topology)`: both for one topology file: `-f FILE` (and `--backend` where the command takes it) added,
  run in the file's directory, with `ok`, `json` and `sql` for the common cases.
- `help_text(*argv)`: the one exception, `--help` rendered in-process (a process per command would take
  minutes where every command's help is checked).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import IO, Any

import yaml

STREAMCTL = Path(sys.executable).with_name("streamctl")  # the executable this environment installed
TAKES_BACKEND = {"up", "down", "status", "logs", "psql", "scale"}  # the others read the recorded state
TIMEOUT = 600.0


def command(*args: str, python: str | None = None) -> list[str]:
    """argv of `streamctl ARGS`: the installed executable, or `PYTHON -m streamctl` with another interpreter
    (another user's, which may not reach this environment)."""
    if python is not None:
        return [python, "-m", "streamctl", *args]
    if STREAMCTL.exists():
        return [str(STREAMCTL), *args]
    return [sys.executable, "-m", "streamctl", *args]  # streamctl importable, no script beside it


def environment(env: dict[str, str] | None = None, inherit: bool = True) -> dict[str, str]:
    """This process's environment (unless `inherit` is false) with `env` over it, and no colours."""
    return {**(os.environ if inherit else {}), **(env or {}), "NO_COLOR": "1"}


class Finished(subprocess.CompletedProcess[str]):
    """A finished `streamctl` process, its output as text."""

    @property
    def output(self) -> str:
        """stdout, then stderr (where an error or a progress line went does not matter to the reader)."""
        return self.stdout + self.stderr


def streamctl(*args: str, cwd: Path | str | None = None, env: dict[str, str] | None = None, inherit_env: bool = True,
              input: str | None = None, timeout: float | None = TIMEOUT, python: str | None = None,
              **popen: Any) -> Finished:
    """Run `streamctl ARGS` to its end. `env` goes over this environment (or alone, inherit_env=False); stdin is
    empty unless `input` is given; `popen` reaches subprocess.run (user=, group=, check=, ...)."""
    stdin = {"input": input} if input is not None else {"stdin": subprocess.DEVNULL}
    proc = subprocess.run(command(*args, python=python), capture_output=True, text=True, cwd=cwd, timeout=timeout,
                          env=environment(env, inherit_env), **stdin, **popen)
    return Finished(proc.args, proc.returncode, proc.stdout, proc.stderr)


def start(*args: str, cwd: Path | str | None = None, env: dict[str, str] | None = None, sigint_ignored: bool = False,
          stdout: int | IO[Any] | None = subprocess.PIPE,
          stderr: int | IO[Any] | None = subprocess.PIPE) -> subprocess.Popen[str]:
    """`streamctl ARGS` started in the background, its output as text (pipes unless told otherwise).
    sigint_ignored: as a non-interactive shell starts a background job (`&`), with SIGINT ignored, which the
    process inherits."""
    return subprocess.Popen(command(*args), stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, text=True,
                            cwd=cwd, env=environment(env), preexec_fn=_ignore_sigint if sigint_ignored else None)


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class Cli:
    """`streamctl CMD ... -f TOPOLOGY [--backend BACKEND] ...` in the topology's directory: `-f` goes before the
    first option (so after a subcommand and a node name), `--backend` only to the commands that take it."""

    def __init__(self, path: Path, backend: str | None = None, env: dict[str, str] | None = None,
                 timeout: float = TIMEOUT) -> None:
        self.path = Path(path)
        self.backend = backend
        self.env = env or {}  # e.g. DOCKER_HOST of a Swarm manager
        self.timeout = timeout
        self.data: dict[str, Any] = yaml.safe_load(self.path.read_text())

    @property
    def cluster(self) -> str:
        return str(self.data["cluster"])

    def save(self) -> None:
        """Write `data` (changed by the test) back to the topology file."""
        self.path.write_text(yaml.safe_dump(self.data, sort_keys=False))

    def argv(self, *args: str) -> list[str]:
        at = next((i for i, a in enumerate(args) if a.startswith("-")), len(args))
        extra = ["-f", str(self.path)]
        if self.backend is not None and args[0] in TAKES_BACKEND:
            extra += ["--backend", self.backend]
        return [*args[:at], *extra, *args[at:]]

    def run(self, *args: str, env: dict[str, str] | None = None, **kwargs: Any) -> Finished:
        kwargs.setdefault("timeout", self.timeout)
        return streamctl(*self.argv(*args), cwd=self.path.parent, env={**self.env, **(env or {})}, **kwargs)

    def start(self, *args: str, **kwargs: Any) -> subprocess.Popen[str]:
        return start(*self.argv(*args), cwd=self.path.parent, env=self.env, **kwargs)

    def ok(self, *args: str) -> Finished:
        """run, and it must exit 0."""
        proc = self.run(*args)
        assert proc.returncode == 0, f"{' '.join(args)}: exit {proc.returncode}\n{proc.output}"
        return proc

    def json(self, *args: str) -> Any:
        """`ok(*args, "--json")`'s output, parsed."""
        return json.loads(self.ok(*args, "--json").stdout)

    def actions(self) -> dict[str, str]:
        """`up`, and what it did to each node (create, start, recreate, noop)."""
        return {n["name"]: n["action"] for n in self.json("up")["nodes"]}

    def sql(self, node: str, query: str) -> str:
        """`streamctl psql NODE -- -At -c QUERY`'s output."""
        return self.ok("psql", node, "--", "-At", "-c", query).stdout.strip()


def help_text(*argv: str) -> str:
    """`streamctl ARGV --help` in-process, 80 columns, not a terminal."""
    from typer.testing import CliRunner

    from streamctl.cli.main import app

    res = CliRunner().invoke(app, [*argv, "--help"], env={"COLUMNS": "80", "NO_COLOR": "1"})
    assert res.exit_code == 0, res.output
    return res.output
