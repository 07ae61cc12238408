"""Match conditions: whether a Falco alert is one a detection is about.

A condition answers two questions: does this alert match, and which byte
strings must a request contain for any record in it to match (the needles the
pipeline searches for before it decodes anything).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from falco_risk.falco import FalcoAlert


class Condition(Protocol):
    """A test on one alert and the resource that carried it."""

    def matches(self, alert: FalcoAlert, resource: Mapping[str, object]) -> bool:
        """True when the alert satisfies the condition."""
        ...

    def needles(self) -> frozenset[bytes] | None:
        """Lower-case byte strings one of which a matching record must contain.

        None when the condition cannot promise any, so every request must be
        decoded.
        """
        ...


@dataclass(frozen=True)
class Phrase:
    """The alert text contains a phrase, compared as Splunk compares a quoted search term.

    Splunk matches a quoted phrase regardless of case. The comparison here
    folds ASCII letters only, the same folding the byte search before decoding
    applies, so the two can never disagree.
    """

    text: str
    _pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        pattern = re.compile(re.escape(self.text), re.IGNORECASE | re.ASCII)
        object.__setattr__(self, "_pattern", pattern)

    def matches(self, alert: FalcoAlert, resource: Mapping[str, object]) -> bool:
        return self._pattern.search(alert.text) is not None

    def needles(self) -> frozenset[bytes] | None:
        if not self.text.isascii():
            # bytes.lower() folds ASCII only; a non-ASCII phrase may appear in
            # another case that the byte search would miss.
            return None
        return frozenset({self.text.lower().encode()})
