"""A polling command's arguments read from the commands' own typer declarations, without typer's conversion of each value (which loads pydantic); only plain options are read here, and typer handles help and anything else."""

from __future__ import annotations

import inspect
import os
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from typer.models import OptionInfo

_CONVERT: dict[Any, Callable[[str], Any]] = {str: str, Path: Path, float: float, int: int}


@dataclass(frozen=True)
class _Option:
    """One option of a typer function: its parameter, the kind of value it takes, its default and bounds."""

    param: str
    names: tuple[str, ...]
    kind: Any  # bool for a flag, else a key of _CONVERT
    multiple: bool
    default: Any
    envvar: str | None
    min: float | None

    def value(self, text: str) -> Any:
        """The value `text` gives this option; ValueError when typer would refuse it (it then says why)."""
        value = _CONVERT[self.kind](text)
        if self.min is not None and value < self.min:
            raise ValueError(f"{self.names[0]}: under {self.min}")
        return value


def _options(function: Callable[..., Any]) -> dict[str, _Option] | None:
    """The options of a typer function by name, or None when it has one of a kind this does not read."""
    hints = typing.get_type_hints(inspect.unwrap(function), include_extras=True)
    out: dict[str, _Option] = {}
    for name, parameter in inspect.signature(inspect.unwrap(function)).parameters.items():
        hint = hints[name]
        if hint is typer.Context:
            continue
        [info] = [m for m in getattr(hint, "__metadata__", ()) if isinstance(m, OptionInfo)] or [None]
        if info is None or not isinstance(info.default, str):
            return None
        kind, args = typing.get_args(hint)[0], ()
        if typing.get_origin(kind) in (typing.Union, types.UnionType):
            args = tuple(a for a in typing.get_args(kind) if a is not type(None))
            kind = args[0] if len(args) == 1 else None
        multiple = typing.get_origin(kind) is list
        kind = typing.get_args(kind)[0] if multiple else kind
        if kind is not bool and kind not in _CONVERT:
            return None
        envvar = info.envvar if isinstance(info.envvar, str) else None
        option = _Option(name, (info.default, *(info.param_decls or ())), kind, multiple, parameter.default,
                         envvar, info.min)
        out.update((n, option) for n in option.names)
    return out


def _read(options: dict[str, _Option], args: Sequence[str]) -> dict[str, Any] | None:
    """The values of every option (given, from its environment variable, or its default), or None when `args`
    hold anything else (--help, an unknown option, a bad or missing value)."""
    values: dict[str, Any] = {}
    i = 0
    while i < len(args):
        name, eq, inline = args[i].partition("=")
        option = options.get(name)
        if option is None or (option.kind is bool and eq):
            return None
        if option.kind is bool:
            values[option.param] = True
            i += 1
            continue
        if not eq and i + 1 >= len(args):
            return None
        text, i = (inline, i + 1) if eq else (args[i + 1], i + 2)
        try:
            value = option.value(text)
        except ValueError:
            return None
        if option.multiple:
            values.setdefault(option.param, []).append(value)
        else:
            values[option.param] = value
    for option in options.values():
        if option.param not in values:
            from_env = os.environ.get(option.envvar) if option.envvar else None
            try:
                values[option.param] = option.value(from_env) if from_env else option.default
            except ValueError:
                return None
    return values


def call(group: typer.Typer, main_options: Callable[..., None], command: Callable[..., None],
         global_args: Sequence[str], command_args: Sequence[str]) -> Callable[[], None] | None:
    """The call `aggregator GLOBAL_ARGS COMMAND COMMAND_ARGS` makes (the global options' function, then the
    command's, on one context), or None when typer must read the arguments."""
    global_options, command_options = _options(main_options), _options(command)
    if global_options is None or command_options is None:
        return None
    given_globals, given = _read(global_options, global_args), _read(command_options, command_args)
    if given_globals is None or given is None:
        return None

    def run() -> None:
        ctx = typer.Context(typer.main.get_command(group))
        try:
            main_options(ctx, **given_globals)
            command(ctx, **given)
        except typer.Exit as exc:
            raise SystemExit(exc.exit_code) from None
        except (KeyboardInterrupt, EOFError):  # as typer ends them
            typer.echo("Aborted!", err=True)
            raise SystemExit(1) from None

    return run
