"""Settings as frozen dataclasses, built from parsed YAML and checked field by field: types, constraints, and a message per problem in pydantic's words (what feeds.yaml's errors always said)."""

from __future__ import annotations

import dataclasses
import functools
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
Loc = tuple[int | str, ...]
Problem = tuple[Loc, str]  # where in the document (keys and indexes), and what is wrong there


@dataclass(frozen=True)
class Rule:
    """A field's bounds, checked once its type is: lengths and a pattern for text, bounds for numbers."""

    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    gt: int | None = None
    ge: int | None = None
    le: int | None = None


@dataclass(frozen=True)
class Before:
    """A function the raw value goes through before its type is checked; a ValueError is the problem."""

    convert: Callable[[Any], Any]


@dataclass(frozen=True)
class After:
    """A function the checked value goes through last; a ValueError is the problem."""

    convert: Callable[[Any], Any]


class _Bad:
    """The result of a value with a problem (recorded in the list of problems)."""


_BAD = _Bad()


def build(cls: type[T], value: Any, problems: list[Problem], loc: Loc = ()) -> T | None:
    """`cls` (a frozen dataclass whose fields are annotated with the types and markers above) made from a
    mapping of parsed YAML; None, with every problem found added to `problems`, when it cannot be."""
    made = _build(cls, value, loc, problems)
    return None if made is _BAD else made


def _s(n: int) -> str:
    return "" if n == 1 else "s"


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls, include_extras=True)


def _build(cls: type, value: Any, loc: Loc, problems: list[Problem]) -> Any:
    if isinstance(value, cls):
        return value
    if not isinstance(value, dict):
        problems.append((loc, f"Input should be a valid dictionary or instance of {cls.__name__}"))
        return _BAD
    before = len(problems)
    hints = _hints(cls)
    given: dict[str, Any] = {}
    names = set()
    for f in dataclasses.fields(cls):
        names.add(f.name)
        if f.name in value:
            given[f.name] = _value(hints[f.name], value[f.name], (*loc, f.name), problems)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            problems.append(((*loc, f.name), "Field required"))
    problems += [((*loc, key), "unknown key" if isinstance(key, str) else "Keys should be strings")
                 for key in value if key not in names]
    if len(problems) > before:
        return _BAD
    try:
        return cls(**given)
    except ValueError as exc:  # a check of several fields together (the dataclass's __post_init__)
        problems.append((loc, str(exc)))
        return _BAD


def _value(hint: Any, value: Any, loc: Loc, problems: list[Problem]) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Annotated:
        return _annotated(args[0], hint.__metadata__, value, loc, problems)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        kinds = [a for a in args if a is not type(None)]
        tried: list[Problem] = []
        for kind in kinds:
            tried = []
            checked = _value(kind, value, loc, tried)
            if checked is not _BAD:
                return checked
        problems += tried
        return _BAD
    if origin is typing.Literal:
        if value in args and any(type(value) is type(a) for a in args):
            return value
        choices = [repr(a) for a in args]
        problems.append((loc, f"Input should be {' or '.join([', '.join(choices[:-1]), choices[-1]] if len(choices) > 1 else choices)}"))
        return _BAD
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            problems.append((loc, "Input should be a valid tuple"))
            return _BAD
        items = [_value(args[0], item, (*loc, i), problems) for i, item in enumerate(value)]
        return _BAD if any(item is _BAD for item in items) else tuple(items)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, loc, problems)
    check = _SCALARS[hint]
    try:
        return check(value)
    except (TypeError, ValueError) as exc:
        problems.append((loc, str(exc)))
        return _BAD


def _annotated(kind: Any, markers: tuple[Any, ...], value: Any, loc: Loc, problems: list[Problem]) -> Any:
    try:
        for marker in markers:
            if isinstance(marker, Before):
                value = marker.convert(value)
    except ValueError as exc:
        problems.append((loc, str(exc)))
        return _BAD
    value = _value(kind, value, loc, problems)
    if value is _BAD:
        return _BAD
    try:
        for marker in markers:
            if isinstance(marker, Rule):
                _within(marker, value)
            elif isinstance(marker, After):
                value = marker.convert(value)
    except ValueError as exc:
        problems.append((loc, str(exc)))
        return _BAD
    return value


def _within(rule: Rule, value: Any) -> None:
    if isinstance(value, str):
        if rule.min_length is not None and len(value) < rule.min_length:
            raise ValueError(f"String should have at least {rule.min_length} character{_s(rule.min_length)}")
        if rule.max_length is not None and len(value) > rule.max_length:
            raise ValueError(f"String should have at most {rule.max_length} character{_s(rule.max_length)}")
        if rule.pattern is not None and not re.search(rule.pattern, value):
            raise ValueError(f"String should match pattern '{rule.pattern}'")
    elif isinstance(value, int):
        if rule.gt is not None and not value > rule.gt:
            raise ValueError(f"Input should be greater than {rule.gt}")
        if rule.ge is not None and not value >= rule.ge:
            raise ValueError(f"Input should be greater than or equal to {rule.ge}")
        if rule.le is not None and not value <= rule.le:
            raise ValueError(f"Input should be less than or equal to {rule.le}")


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("Input should be a valid string")
    return value


def _int(value: Any) -> int:
    """An integer, as the YAML may write one: 5, true, 5.0 or "5"."""
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("Input should be a finite number")
        if not value.is_integer():
            raise ValueError("Input should be a valid integer, got a number with a fractional part")
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            raise ValueError("Input should be a valid integer, unable to parse string as an integer") from None
    raise TypeError("Input should be a valid integer")


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError("Input should be a valid boolean")
    return value


def _path(value: Any) -> Path:
    if not isinstance(value, (str, Path)):
        raise TypeError("Input should be a valid path")
    return Path(value)


_SCALARS: dict[Any, Callable[[Any], Any]] = {str: _str, int: _int, bool: _bool, Path: _path}
