"""Command-line flags derived from option dataclasses (TranscribeOptions, VadOptions, StreamingOptions).

Every field made with ``option(default, help, ...)`` becomes a flag ``--field-name`` (or its ``flag``
hint) whose type, default, choices and help come from the field, so flags never repeat a default or a
description by hand. Optional numbers accept ``none``.
"""

from __future__ import annotations

import argparse
from dataclasses import MISSING, Field, fields
from typing import Any, Callable

NONE_WORDS = {"none", "off"}


def _parse(kind: type, optional: bool) -> Callable[[str], Any]:
    def convert(text: str):
        if optional and text.strip().lower() in NONE_WORDS:
            return None
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind.__name__}{' or none' if optional else ''}, "
                                             f"got {text!r}") from None
    convert.__name__ = kind.__name__  # argparse names the type in its errors
    return convert


def _kind(f: Field) -> tuple[str, bool]:
    """("bool" | "int" | "float" | "floats" | "str", optional) from the field's annotation text."""
    t = str(f.type).replace(" ", "")
    optional = "None" in t.split("|")
    if t.startswith("bool"):
        return "bool", False
    if "Sequence[float]" in t:
        return "floats", optional
    for name in ("int", "float", "str"):
        if t.split("|")[0] == name:
            return name, optional
    return "str", optional


def _default_text(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (tuple, list)):
        return " ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
    if value is None:
        return "none"
    return f"{value:g}" if isinstance(value, float) else str(value)


def flag_of(f: Field) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def add_option_flags(parser: argparse.ArgumentParser, cls: type, *, groups: dict[str, Any] | None = None,
                     dest_prefix: str = "", defaults_none: bool = False, skip: set[str] = frozenset(),
                     only: set[str] | None = None) -> list[str]:
    """Add a flag for every CLI field of dataclass ``cls`` to ``parser`` (or to ``groups[field's group]``);
    return the field names added. ``defaults_none``: flags default to None (only what the user gives
    is used) and the help states the dataclass default. ``only``/``skip`` select fields by name."""
    added = []
    for f in fields(cls):
        meta = f.metadata
        if "help" not in meta or meta.get("cli") is False or f.name in skip or (only is not None and f.name not in only):
            continue
        target = (groups or {}).get(meta.get("group"), parser)
        default = f.default if f.default is not MISSING else None
        kind, optional = _kind(f)
        kwargs: dict[str, Any] = {"dest": dest_prefix + f.name,
                                  "help": f"{meta['help']} (default: {_default_text(default)})"}
        if kind == "bool":
            if default:
                kwargs["action"] = argparse.BooleanOptionalAction
            else:
                kwargs["action"] = "store_true"
        elif kind == "floats":
            kwargs.update(type=_parse(float, False), nargs="+")
        else:
            kwargs["type"] = _parse({"int": int, "float": float, "str": str}[kind], optional and kind != "str")
        if "choices" in meta:
            kwargs["choices"] = meta["choices"]
        if "metavar" in meta:
            kwargs["metavar"] = meta["metavar"]
        kwargs["default"] = None if defaults_none and kind != "bool" else default
        target.add_argument(flag_of(f), **kwargs)
        added.append(f.name)
    return added


def values_from_args(args: argparse.Namespace, cls: type, *, dest_prefix: str = "",
                     given_only: bool = False) -> dict[str, Any]:
    """The field values the parsed ``args`` hold for ``cls`` (``given_only``: those not None)."""
    out = {}
    for f in fields(cls):
        dest = dest_prefix + f.name
        if not hasattr(args, dest):
            continue
        value = getattr(args, dest)
        if isinstance(value, list):  # nargs="+": one value is a scalar, several a ladder
            value = tuple(value) if len(value) > 1 else value[0]
        if given_only and value is None:
            continue
        out[f.name] = value
    return out


def field_kind(f: Field) -> tuple[str, bool]:
    """("bool" | "int" | "float" | "floats" | "str", optional): the type rule the flags use, public so other
    front ends (the local server's form and query fields, edge_asr/server/fields.py) derive theirs the same way."""
    return _kind(f)
