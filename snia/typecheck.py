"""Settings checked against their dataclass's own field types, so the checks cannot drift from the
settings: ``epochs: ten`` is "epochs must be a whole number, not 'ten'" (a ConfigError naming the
key, the value and what is expected) instead of a TypeError deep in a training job.

Understood: ``int`` (a whole number; not a bool, not 16.5), ``float`` (any number; a string such
as '2e-3', which YAML 1.1 reads as text, is taken as the number it spells), ``bool``, ``str``,
``list``/``tuple`` (optionally of one element type, or of fixed length), ``dict``, ``X | None``,
nested dataclasses (a mapping or an instance) and ``object`` (anything).
"""

from __future__ import annotations

import dataclasses
import sys
import types
import typing

from snia.errors import ConfigError


def checked(values: dict, cls, prefix: str = "") -> dict:
    """``values`` (a settings mapping for dataclass ``cls``) with each known key checked against
    its field's type (numeric strings of float fields become floats); unknown keys are left to the
    caller. ``prefix`` names the section in messages (e.g. "model.")."""
    hints = typing.get_type_hints(cls, vars(sys.modules[cls.__module__]))
    names = {f.name for f in dataclasses.fields(cls)}
    out = dict(values)
    for key, value in values.items():
        if key in names and key in hints:
            out[key] = _check(value, hints[key], f"{prefix}{key}")
    return out


def _check(value, tp, key: str):
    ok, value = _conforms(value, tp)
    if not ok:
        raise ConfigError(f"{key} must be {describe(tp)}, not {value!r}")
    return value


def _conforms(value, tp):
    """(whether ``value`` is of type ``tp``, the value to use)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is typing.Any or tp is object:
        return True, value
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            ok, converted = _conforms(value, arg)
            if ok:
                return True, converted
        return False, value
    if tp is type(None):
        return value is None, value
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is float:
        if isinstance(value, str):
            try:
                return True, float(value)
            except ValueError:
                return False, value
        return isinstance(value, (int, float)) and not isinstance(value, bool), value
    if tp is str:
        return isinstance(value, str), value
    if tp is dict or origin is dict:
        return isinstance(value, dict), value
    if tp in (list, tuple) or origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False, value
        if not args:
            return True, value
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            if len(value) != len(args):
                return False, value
            pairs = list(zip(value, args))
        else:
            pairs = [(v, args[0]) for v in value]
        converted = []
        for v, arg in pairs:
            ok, v = _conforms(v, arg)
            if not ok:
                return False, value
            converted.append(v)
        return True, type(value)(converted)
    if dataclasses.is_dataclass(tp):
        return isinstance(value, (dict, tp)), value
    return True, value  # a type this module does not know: the dataclass checks it


def describe(tp) -> str:
    """What a value of type ``tp`` is, in words."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join("null" if a is type(None) else describe(a) for a in args)
    words = {int: "a whole number", float: "a number", bool: "true or false", str: "a text",
             dict: "a mapping of settings"}
    if tp in words:
        return words[tp]
    if tp in (list, tuple) or origin in (list, tuple):
        if not args:
            return "a list"
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            return f"a list of {len(args)} ({', '.join(describe(a) for a in args)})"
        return f"a list of {_plural(describe(args[0]))}"
    if dataclasses.is_dataclass(tp):
        return "a mapping of settings"
    return getattr(tp, "__name__", str(tp))


def _plural(words: str) -> str:
    return {"a whole number": "whole numbers", "a number": "numbers", "a text": "texts",
            "true or false": "true or false values"}.get(words, words)
