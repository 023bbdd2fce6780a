"""`option()`: a dataclass field that carries its own help text (and CLI hints), so option classes are
the single definition that CLI flags, server fields and docs are derived from (cli_options.py)."""

from __future__ import annotations

from dataclasses import field
from typing import Any


def option(default: Any, help: str, **cli: Any) -> Any:
    """A dataclass field with its help text; ``cli`` adds CLI hints: flag (the flag's name when not
    --field-name), group, metavar, choices, cli=False (keep it off the command line)."""
    return field(default=default, metadata={"help": help, **cli})
