"""Match conditions: whether a Falco alert is one a detection is about.

A condition answers three questions: does this alert match, if not which
part failed (for ``falco-risk explain``), and which byte strings must a
request contain for any record in it to match (the needles the pipeline
searches for before it decodes anything). The needles are a promise: a
record the condition matches always contains one of them, lower-cased.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from falco_risk.falco import FalcoAlert
from falco_risk.regex import Regex

Needles = frozenset[bytes] | None

# Falco's priorities, highest first; "info" is how some outputs spell
# "informational".
PRIORITIES = (
    "emergency", "alert", "critical", "error", "warning", "notice", "informational", "debug",
)  # fmt: skip
_PRIORITY_ALIASES = {"info": "informational"}

# Characters a JSON encoder may escape (quotes, backslash, solidus, and the
# HTML-safe escapes of Go's encoder), so their raw bytes may be absent from a
# record that holds the value inside a JSON string.
_UNSAFE_RUN = re.compile(r'[^\x20-\x7e]|["\\/<>&]')
MIN_NEEDLE_LENGTH = 3
# Texts a typed attribute (int, double, bool) may hold in binary, not as text.
_TYPED = re.compile(r"[+-]?(\d[\d_]*(\.\d*)?|\.\d+)([eE][+-]?\d+)?|true|false|nan|inf", re.I)


class Condition(Protocol):
    """A test on one alert and the resource that carried it."""

    def matches(self, alert: FalcoAlert, resource: Mapping[str, object]) -> bool:
        """True when the alert satisfies the condition."""
        ...

    def failure(self, alert: FalcoAlert, resource: Mapping[str, object]) -> str | None:
        """None when the alert matches, else the part that failed, in words."""
        ...

    def needles(self) -> Needles:
        """Lower-case byte strings one of which a matching record must contain.

        None when the condition cannot promise any, so every request must be
        decoded.
        """
        ...


def priority_rank(name: str) -> int | None:
    """Position of a Falco priority in PRIORITIES (0 is the highest), or None."""
    key = name.strip().lower()
    key = _PRIORITY_ALIASES.get(key, key)
    return PRIORITIES.index(key) if key in PRIORITIES else None


def literal_needle(text: str) -> bytes | None:
    """The lower-case bytes a record holding ``text`` surely contains, or None.

    A JSON encoder may escape some characters, so only the longest run of
    plain printable ASCII is promised; runs shorter than MIN_NEEDLE_LENGTH
    would find a candidate in nearly every request and are not worth it.
    """
    runs = _UNSAFE_RUN.split(text)
    longest = max(runs, key=len)
    if len(longest) < MIN_NEEDLE_LENGTH:
        return None
    return longest.lower().encode()


def _all_needles(texts: Sequence[str], typed: bool = False) -> Needles:
    found: set[bytes] = set()
    for text in texts:
        needle = literal_needle(text)
        if needle is None or (typed and _TYPED.fullmatch(text)):
            return None
        found.add(needle)
    return frozenset(found)


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

    def failure(self, alert: FalcoAlert, resource: Mapping[str, object]) -> str | None:
        if self.matches(alert, resource):
            return None
        return f"the alert text does not contain the phrase {self.text!r}"

    def needles(self) -> Needles:
        return _all_needles([self.text])


@dataclass(frozen=True)
class RuleIs:
    """The Falco rule name equals one of the given names (case-sensitive, as Falco names rules)."""

    names: tuple[str, ...]

    def matches(self, alert: FalcoAlert, resource: Mapping[str, object]) -> bool:
        return alert.rule in self.names

    def failure(self, alert: FalcoAlert, resource: Mapping[str, object]) -> str | None:
        if self.matches(alert, resource):
            return None
        found = "no rule name" if alert.rule is None else f"rule {alert.rule!r}"
        return f"the alert has {found}, not {_one_of(self.names)}"

    def needles(self) -> Needles:
        return _all_needles(self.names)


@dataclass(frozen=True)
class PriorityAtLeast:
    """The alert's priority is the given one or higher."""

    level: str

    def matches(self, alert: FalcoAlert, resource: Mapping[str, object]) -> bool:
        rank = priority_rank(alert.priority or "")
        limit = priority_rank(self.level)
        return rank is not None and limit is not None and rank <= limit

    def failure(self, alert: FalcoAlert, resource: Mapping[str, object]) -> str | None:
        if self.matches(alert, resource):
            return None
        return f"priority {alert.priority or 'none'} is below {self.level}"

    def needles(self) -> Needles:
        limit = priority_rank(self.level)
        names = list(PRIORITIES[: (limit or 0) + 1])
        names += [alias for alias, name in _PRIORITY_ALIASES.items() if name in names]
        return _all_needles(names)


@dataclass(frozen=True)
class Tags:
    """The alert carries any (or all) of the given Falco tags."""

    tags: tuple[str, ...]
    require_all: bool

    def matches(self, alert: FalcoAlert, resource: Mapping[str, object]) -> bool:
        present = set(alert.tags)
        if self.require_all:
            return all(tag in present for tag in self.tags)
        return any(tag in present for tag in self.tags)

    def failure(self, alert: FalcoAlert, resource: Mapping[str, object]) -> str | None:
        if self.matches(alert, resource):
            return None
        which = "all" if self.require_all else "any"
        return f"tags {list(alert.tags)} do not include {which} of {list(self.tags)}"

    def needles(self) -> Needles:
        if not self.require_all:
            return _all_needles(self.tags)
        # Every tag must be present, so any single one is a valid needle; the
        # longest is the rarest guess.
        longest = max(self.tags, key=len)
        return _all_needles([longest])


@dataclass(frozen=True)
class ValueTest:
    """How one value is compared: equals, in, contains or regex."""

    op: str
    values: tuple[str, ...] = ()
    regex: Regex | None = None

    def check(self, value: str | None) -> bool:
        if value is None:
            return False
        if self.op == "regex":
            assert self.regex is not None
            return self.regex.search(value)
        if self.op == "contains":
            return self.values[0] in value
        return value in self.values

    def describe(self) -> str:
        if self.op == "regex":
            assert self.regex is not None
            return f"match /{self.regex.pattern}/"
        if self.op == "contains":
            return f"contain {self.values[0]!r}"
        return f"be {_one_of(self.values)}"

    def needles(self) -> Needles:
        if self.op == "regex":
            return None
        return _all_needles(self.values, typed=True)


@dataclass(frozen=True)
class FieldIs:
    """A field of the alert (read from the keys given) passes a value test."""

    name: str
    keys: tuple[str, ...]
    test: ValueTest

    def matches(self, alert: FalcoAlert, resource: Mapping[str, object]) -> bool:
        found = alert.field(self.keys)
        return self.test.check(None if found is None else found.value)

    def failure(self, alert: FalcoAlert, resource: Mapping[str, object]) -> str | None:
        found = alert.field(self.keys)
        if self.test.check(None if found is None else found.value):
            return None
        seen = "is absent" if found is None else f"is {found.value!r}"
        return f"field {self.name} {seen}; it should {self.test.describe()}"

    def needles(self) -> Needles:
        return self.test.needles()


@dataclass(frozen=True)
class ResourceIs:
    """A resource attribute passes a value test."""

    key: str
    test: ValueTest

    def matches(self, alert: FalcoAlert, resource: Mapping[str, object]) -> bool:
        return self.test.check(_text(resource.get(self.key)))

    def failure(self, alert: FalcoAlert, resource: Mapping[str, object]) -> str | None:
        value = _text(resource.get(self.key))
        if self.test.check(value):
            return None
        seen = "is absent" if value is None else f"is {value!r}"
        return f"resource attribute {self.key} {seen}; it should {self.test.describe()}"

    def needles(self) -> Needles:
        # Resource attributes are not part of the record whose bytes are searched.
        return None


@dataclass(frozen=True)
class AllOf:
    """Every part matches."""

    parts: tuple[Condition, ...]

    def matches(self, alert: FalcoAlert, resource: Mapping[str, object]) -> bool:
        return all(part.matches(alert, resource) for part in self.parts)

    def failure(self, alert: FalcoAlert, resource: Mapping[str, object]) -> str | None:
        for part in self.parts:
            reason = part.failure(alert, resource)
            if reason is not None:
                return reason
        return None

    def needles(self) -> Needles:
        # A match satisfies every part, so any one part's needles will do;
        # the smallest set keeps the byte search cheap.
        sets = [n for n in (part.needles() for part in self.parts) if n is not None]
        return min(sets, key=len) if sets else None


@dataclass(frozen=True)
class AnyOf:
    """At least one part matches."""

    parts: tuple[Condition, ...]

    def matches(self, alert: FalcoAlert, resource: Mapping[str, object]) -> bool:
        return any(part.matches(alert, resource) for part in self.parts)

    def failure(self, alert: FalcoAlert, resource: Mapping[str, object]) -> str | None:
        reasons = [part.failure(alert, resource) for part in self.parts]
        if any(reason is None for reason in reasons):
            return None
        return "none of the alternatives matched: " + "; ".join(str(r) for r in reasons)

    def needles(self) -> Needles:
        found: set[bytes] = set()
        for part in self.parts:
            needles = part.needles()
            if needles is None:
                return None
            found |= needles
        return frozenset(found)


@dataclass(frozen=True)
class Not:
    """The inner condition does not match."""

    part: Condition

    def matches(self, alert: FalcoAlert, resource: Mapping[str, object]) -> bool:
        return not self.part.matches(alert, resource)

    def failure(self, alert: FalcoAlert, resource: Mapping[str, object]) -> str | None:
        if self.matches(alert, resource):
            return None
        return "a condition under 'not' matched"

    def needles(self) -> Needles:
        return None


def _one_of(names: Sequence[str]) -> str:
    if len(names) == 1:
        return repr(names[0])
    return "one of " + ", ".join(repr(name) for name in names)


def _text(value: object) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
