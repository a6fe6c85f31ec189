"""The CLI's front door, as a real `streamctl` process: every --help in one style (no `<bool>`, one-line
summaries, examples on one line), bad choices exit 2 listing the choices, and `down --volumes` refuses to
destroy without a terminal to ask on unless --yes (`failover` too, after its clear errors). None of these
needs an engine."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from streamctl.errors import ExitCode
from tests.support.cli import help_text, streamctl  # help_text: in-process (a process per command: minutes)


def _commands() -> list[tuple[str, ...]]:
    """Every command and subcommand, as argv prefixes (the lazy registry imported in full)."""
    from typer.main import get_command

    from streamctl.cli.main import _Commands, app

    root = get_command(app)
    out: list[tuple[str, ...]] = []

    def walk(cmd, path: tuple[str, ...]) -> None:
        out.append(path)
        for name in getattr(cmd, "commands", {}):
            walk(cmd.commands[name], (*path, name))

    for name in _Commands.lazy:
        walk(root.get_command(None, name), (name,))  # type: ignore[arg-type]
    return out


COMMANDS = _commands()


def test_every_command_and_subcommand_is_listed() -> None:
    assert {("up",), ("down",), ("shards", "rebalance"), ("shards", "hot"), ("compose", "export")} <= set(COMMANDS)


@pytest.mark.parametrize("argv", [(), *COMMANDS], ids=lambda a: " ".join(a) or "streamctl")
def test_help_has_one_metavar_style_and_examples_on_one_line(argv: tuple[str, ...]) -> None:
    out = help_text(*argv)
    assert "<bool>" not in out and not re.search(r"<[a-z|]+>", out), out
    if argv:
        assert "Example:" in out, out  # every command's help has an example
    lines = out.splitlines()
    for line, after in zip(lines, [*lines[1:], ""], strict=True):
        if "Example:" in line:  # not wrapped: what follows is another example, a blank line or a panel
            assert "Example:" in after or not after.strip() or after.lstrip()[:1] in "╭│", (line, after)


def test_command_summaries_fit_on_one_line() -> None:
    from streamctl.cli.helpstyle import summary
    from streamctl.cli.main import _Commands

    out = help_text()
    panel = out[out.index("Commands"):]
    rows = [line for line in panel.splitlines() if line.startswith("│")]
    for name in _Commands.lazy:
        row = next(i for i, line in enumerate(rows) if line[2:].split(" ")[0] == name)
        continuation = rows[row + 1] if row + 1 < len(rows) else "│ x"
        assert continuation[2:].split(" ")[0] != "", (name, rows[row], continuation)  # no second line
    assert summary("Stop it (data kept). Or not.\n\nExample: x") == "Stop it (data kept)"


@pytest.mark.parametrize(("argv", "choices"), [
    (("up", "--backend", "kubernetes"), "'docker', 'swarm', 'local', 'external'"),
    (("status", "--backend", "k8s"), "'docker', 'swarm', 'local', 'external'"),
    (("shards", "rebalance", "--transfer-mode", "fast"), "'auto', 'force_logical', 'block_writes'"),
    (("shards", "move", "1", "--to", "w", "--transfer-mode", "fast"), "'auto', 'force_logical'"),
    (("gateway", "--log-level", "loud"), "'critical', 'error', 'warning'"),
    (("verify", "--only", "replicaton"), "unknown check replicaton (known: backup, backup.archiving, citus,"),
])
def test_a_bad_choice_exits_2_naming_the_choices(argv: tuple[str, ...], choices: str, tmp_path: Path) -> None:
    res = streamctl(*argv, cwd=tmp_path)  # no topology here: the value is refused before anything is read
    assert res.returncode == ExitCode.USAGE, res.stderr
    assert choices in " ".join(res.stderr.split()).replace("│ ", ""), res.stderr


def test_v_means_verbose_wherever_it_exists() -> None:
    for argv in COMMANDS:
        out = help_text(*argv)
        for line in out.splitlines():
            if re.search(r"\s-v\s", line):
                assert "--verbose" in line, (argv, line)


def test_down_volumes_without_a_terminal_refuses_unless_yes(tmp_path: Path) -> None:
    (tmp_path / "topology.yaml").write_text("version: 1\ncluster: frontdoor-refuse\nstate_dir: .st\n")
    res = streamctl("down", "--volumes", cwd=tmp_path)
    assert res.returncode == ExitCode.REFUSED, res.stderr
    assert "no terminal to ask for confirmation" in res.stderr and "--yes" in res.stderr
    assert not (tmp_path / ".st").exists()  # refused before anything was touched
    assert "--yes" in inspect.getsource(__import__("streamctl.cli.cluster", fromlist=["down"]).down)


def test_failover_errors_and_refusal_come_before_patroni_is_asked(tmp_path: Path) -> None:
    examples = Path(__file__).resolve().parents[2] / "examples"
    for name in ("ha.yaml", "no-citus.yaml"):
        (tmp_path / name).write_text((examples / name).read_text())
    unknown = streamctl("failover", "worker-7", "--yes", "-f", "ha.yaml", cwd=tmp_path)
    assert unknown.returncode == ExitCode.NOT_FOUND and "worker-1 (1)" in unknown.stderr, unknown.stderr
    ha_off = streamctl("failover", "worker-1", "--yes", "-f", "no-citus.yaml", cwd=tmp_path)
    assert ha_off.returncode == ExitCode.PREFLIGHT and "no ha section" in ha_off.stderr, ha_off.stderr
    refused = streamctl("failover", "worker-1", "-f", "ha.yaml", cwd=tmp_path)
    assert refused.returncode == ExitCode.REFUSED, refused.stderr
    assert "no terminal to ask for confirmation" in refused.stderr and "--yes" in refused.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ha.yaml", "no-citus.yaml"]  # nothing else made
