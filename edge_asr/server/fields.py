"""Request fields derived from the option dataclasses, as the CLI flags are (edge_asr/cli_options.py).

A field made with ``option(default, help, ...)`` in TranscribeOptions, VadOptions or StreamingOptions is
accepted by name in an upload's form (``beam_size=5``, ``vad_filter=true``, ``hotwords=...``) or a stream's
query string, with its type, choices and default taken from the dataclass, so a new option reaches the
server with no change here. Fields marked ``cli=False`` stay internal here too.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, fields
from typing import Any, Iterable, Mapping

from ..cli_options import field_kind
from ..errors import OptionError, UnknownOptionError

TRUE_WORDS = frozenset({"true", "1", "yes", "on"})
FALSE_WORDS = frozenset({"false", "0", "no", "off"})
NONE_WORDS = frozenset({"none", "null", ""})


@dataclass(frozen=True)
class RequestField:
    """One request field: its name in the request, the dataclass field it sets, and how to read it."""

    name: str
    target: str
    kind: str  # bool | int | float | floats | str | strs
    optional: bool
    default: Any
    help: str
    choices: tuple | None = None

    def parse(self, values: list[str], whole: bool = False) -> Any:
        """The field's value from its text value(s); OptionError naming the field when it does not fit.
        ``whole``: the values came as a list (``name[]``), one item each, never split on commas."""
        if len(values) > 1 and self.kind not in ("floats", "strs"):
            raise OptionError(f"field {self.name!r} was given {len(values)} times; give it once")
        text = values[0].strip() if len(values) == 1 else ""
        if self.optional and self.kind != "str" and len(values) == 1 and text.lower() in NONE_WORDS:
            return None
        try:
            value = self._convert(values, text, whole)
        except ValueError:
            raise OptionError(f"field {self.name!r} expects {self._expects()}, got {', '.join(values)!r}") from None
        if self.choices is not None and value not in self.choices:
            raise OptionError(f"field {self.name!r} must be one of {', '.join(map(str, self.choices))}, "
                              f"got {value!r}")
        return value

    def _convert(self, values: list[str], text: str, whole: bool = False) -> Any:
        if self.kind == "bool":
            if text.lower() in TRUE_WORDS:
                return True
            if text.lower() in FALSE_WORDS:
                return False
            raise ValueError(text)
        if self.kind == "int":
            return int(text)
        if self.kind == "float":
            return _finite(text)
        if self.kind == "floats":  # "0.2", "0,0.2,0.4" or the field repeated
            numbers = [_finite(t) for v in values for t in v.replace(",", " ").split()]
            if not numbers:
                raise ValueError(text)
            return numbers[0] if len(numbers) == 1 else tuple(numbers)
        if self.kind == "strs":  # "a,b", one per line, or the field repeated (or name[]): one item per value
            if whole or len(values) > 1:  # a list's items are kept whole: a term may hold a comma ("Acme, Inc.")
                return tuple(v.strip() for v in values if v.strip())
            return tuple(t.strip() for v in values for t in v.replace("\n", ",").split(",") if t.strip())
        if self.optional and not text:
            return None
        return values[0]

    def _expects(self) -> str:
        kind = {"bool": "true or false", "int": "an integer", "float": "a number",
                "floats": "a number or comma-separated numbers", "str": "text",
                "strs": "comma-separated texts"}[self.kind]
        return kind + (" or none" if self.optional and self.kind != "str" else "")

    def describe(self) -> dict:
        """For listings (the /v1/options endpoint)."""
        d = {"name": self.name, "type": self.kind + (" | null" if self.optional else ""), "help": self.help,
             "default": list(self.default) if isinstance(self.default, tuple) else self.default}
        if self.choices is not None:
            d["choices"] = list(self.choices)
        if isinstance(d["default"], float) and not math.isfinite(d["default"]):
            d["default"] = str(d["default"])
        return d


def _finite(text: str) -> float:
    value = float(text)
    if math.isnan(value):
        raise ValueError(text)
    return value


def request_fields(cls: type, *, prefix: str = "", skip: Iterable[str] = (), only: Iterable[str] | None = None,
                   rename: Mapping[str, str] | None = None) -> dict[str, RequestField]:
    """name -> RequestField for every option() field of ``cls`` that is not ``cli=False``; the request name is
    ``prefix + field name`` unless ``rename`` gives another."""
    skip, only, rename = set(skip), None if only is None else set(only), dict(rename or {})
    out: dict[str, RequestField] = {}
    for f in fields(cls):
        meta = f.metadata
        if "help" not in meta or meta.get("cli") is False or f.name in skip or (only is not None and f.name not in only):
            continue
        kind, optional = field_kind(f)
        name = rename.get(f.name, prefix + f.name)
        default = f.default if f.default is not MISSING else None
        choices = tuple(meta["choices"]) if "choices" in meta else None
        out[name] = RequestField(name, f.name, kind, optional, default, meta["help"], choices)
    return out


def list_name(name: str, specs: Mapping[str, RequestField]) -> str | None:
    """The list field that ``name[]`` stands for (clients such as openai's send a list as repeated
    ``name[]`` parts or query items), or None when ``name`` is not that form of a list field."""
    if name.endswith("[]") and name[:-2] in specs and specs[name[:-2]].kind in ("floats", "strs"):
        return name[:-2]
    return None


def parse_fields(values: Mapping[str, list[str]], specs: Mapping[str, RequestField],
                 whole: Iterable[str] = ()) -> dict[str, Any]:
    """{dataclass field: value} for the ``values`` (request name -> text values) that ``specs`` know;
    UnknownOptionError listing the valid names for any other. ``whole``: the names given in list form
    (``name[]``), whose values are items as they are."""
    unknown = sorted(set(values) - set(specs))
    if unknown:
        raise UnknownOptionError(f"unknown field(s) {', '.join(map(repr, unknown))}; valid: {', '.join(sorted(specs))}")
    whole = set(whole)
    return {specs[name].target: specs[name].parse(texts, name in whole) for name, texts in values.items()}
