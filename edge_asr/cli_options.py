"""Command-line flags derived from option dataclasses (TranscribeOptions, VadOptions, StreamingOptions).

Every field made with ``option(default, help, ...)`` becomes a flag ``--field-name`` (or its ``flag``
hint) whose type, default, choices and help come from the field, so flags never repeat a default or a
description by hand. Optional numbers accept ``none``.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import MISSING, Field, fields
from typing import Any, Callable

NONE_WORDS = {"none", "off"}
FILE_DEST_SUFFIX = "__files"


def read_lines_file(path: str) -> list[str]:
    """The values of a file flag: one a line, blank lines and # comments skipped."""
    from pathlib import Path

    from .errors import OptionError

    try:
        # utf-8-sig: Windows Notepad starts a UTF-8 file with a BOM, which would be glued to the first value.
        lines = Path(path).read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise OptionError(f"cannot read {path!r}: {e}; give a UTF-8 text file with one value a line") from None
    # A comment starts a line or follows a space, so a value may hold "#" ("C#").
    return [s for s in (re.split(r"(?:^|\s)#", line, maxsplit=1)[0].strip() for line in lines) if s]


def _file_values(path: str) -> list[str]:
    """A file flag's argument: read while parsing, so an unreadable file is a usage error in every command."""
    from .errors import OptionError

    try:
        return read_lines_file(path)
    except OptionError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


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
    """("bool" | "int" | "float" | "floats" | "str" | "strs", optional) from the field's annotation text."""
    t = str(f.type).replace(" ", "")
    optional = "None" in t.split("|")
    if t.startswith("bool"):
        return "bool", False
    if t.startswith("tuple[str"):  # a list of texts: a repeatable flag (and its file flag, below)
        return "strs", optional
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
        if not value:
            return "none"
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
    is used) and the help states the dataclass default. ``only``/``skip`` select fields by name.
    A ``tuple[str, ...]`` field is a repeatable flag; its ``file_flag`` hint adds a flag (repeatable too)
    naming a text file of more values, one a line with # comments (``--boost``, ``--boost-file``)."""
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
        elif kind == "strs":
            kwargs.update(action="append", type=str)
        else:
            kwargs["type"] = _parse({"int": int, "float": float, "str": str}[kind], optional and kind != "str")
        if "choices" in meta:
            kwargs["choices"] = meta["choices"]
        if "metavar" in meta:
            kwargs["metavar"] = meta["metavar"]
        kwargs["default"] = None if (defaults_none and kind != "bool") or kind == "strs" else default
        target.add_argument(flag_of(f), **kwargs)
        if kind == "strs" and "file_flag" in meta:
            target.add_argument(meta["file_flag"], dest=dest_prefix + f.name + FILE_DEST_SUFFIX, action="append",
                                type=_file_values, metavar="PATH",
                                help=meta.get("file_help", f"read {flag_of(f)} values from a file"))
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
        if _kind(f)[0] == "strs":  # the flag's values, then each file's lines
            files = getattr(args, dest + FILE_DEST_SUFFIX, None) or []
            value = tuple(value or ()) + tuple(v for lines in files for v in lines)
            if given_only and not value:
                continue
        elif isinstance(value, list):  # nargs="+": one value is a scalar, several a ladder
            value = tuple(value) if len(value) > 1 else value[0]
        if given_only and value is None:
            continue
        out[f.name] = value
    return out


def field_kind(f: Field) -> tuple[str, bool]:
    """("bool" | "int" | "float" | "floats" | "str" | "strs", optional): the type rule the flags use, public so other
    front ends (the local server's form and query fields, edge_asr/server/fields.py) derive theirs the same way."""
    return _kind(f)
