"""Commands registered by name and imported only when they run: `streamctl --version` or `validate` must
not pay for the Docker SDK, psycopg or the gateway stack that other commands need."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import typer
import typer.main
from typer.core import TyperGroup

from streamctl.cli.helpstyle import tidy


@dataclass(frozen=True)
class LazyCommand:
    """Where a command lives: `module:function` for a command, `module:app` (is_group) for a sub-app."""

    name: str
    target: str
    is_group: bool = False

    def load(self) -> Any:
        module, attr = self.target.split(":")
        obj = getattr(importlib.import_module(module), attr)
        cmd: Any
        if self.is_group:
            cmd = typer.main.get_group(obj)
        else:
            single = typer.Typer(add_completion=False, context_settings={"help_option_names": ["-h", "--help"]})
            single.command(name=self.name)(obj)
            cmd = typer.main.get_command(single)
        cmd.name = self.name
        return tidy(cmd)


class LazyGroup(TyperGroup):
    """A Typer group whose registered commands are imported on first use (help lists them all)."""

    lazy: dict[str, LazyCommand] = {}

    def list_commands(self, ctx: Any) -> list[str]:
        return [*super().list_commands(ctx), *(n for n in self.lazy if n not in self.commands)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            self.add_command(self.lazy[cmd_name].load(), cmd_name)
        return super().get_command(ctx, cmd_name)
