"""User-written regular expressions on a linear-time engine (RE2).

A catalog is configuration, and a backtracking engine lets one careless
pattern such as ``(a+)+$`` stall every request; RE2 runs in time linear in
the input whatever the pattern, and refuses the few constructs (look-around,
back-references) that would need backtracking.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import re2  # type: ignore[import-untyped]

# RE2's own memory budget per compiled pattern; a larger pattern is refused
# at load time rather than allowed to grow without bound.
MAX_PROGRAM_MEMORY_BYTES = 8 << 20


class RegexError(ValueError):
    """A pattern is not a valid RE2 regular expression."""


def _options() -> Any:
    options = re2.Options()
    options.log_errors = False  # the error is reported once, by the catalog loader
    options.max_mem = MAX_PROGRAM_MEMORY_BYTES
    return options


@dataclass(frozen=True)
class Regex:
    """A compiled pattern that searches anywhere in a value, as Splunk's ``regex`` does."""

    pattern: str
    _compiled: Any = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            compiled = re2.compile(self.pattern, options=_options())
        except re2.error as exc:
            detail = exc.args[0] if exc.args else exc
            if isinstance(detail, bytes):
                detail = detail.decode("utf-8", "replace")
            raise RegexError(f"invalid regular expression {self.pattern!r}: {detail}") from None
        object.__setattr__(self, "_compiled", compiled)

    def search(self, text: str) -> bool:
        """True when the pattern matches somewhere in ``text``."""
        return self._compiled.search(text) is not None
