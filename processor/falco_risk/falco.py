"""Recognise Falco alerts in log records and read them, whatever the body shape.

Four shapes are read, first match wins: a string body holding Falco's JSON
alert ("json", also behind a CRI or syslog prefix), a map body the
collector parsed from that JSON ("map"), alert keys in the record
attributes ("attributes": `output` with `rule` or `priority`, or `rule` and
a Falco `priority` with the output text in the body, as falcosidekick's
OTLP logs output sends it), and a string body holding a text alert
("text": a Falco time and priority near the start of the line).

Not an alert (None): a record with neither such a header nor such keys:
Falco's own log lines (including a syscall drop logged, not alerted),
other programs' logs, empty bodies.  A JSON alert wrapped in another JSON
object (docker's json-file `{"log": ...}`) is not unwrapped.

Malformed (MalformedAlertError): a record that names itself an alert but
cannot be read: a `{...}` string that is not valid JSON yet holds two of
the keys `output`, `rule`, `priority`, `output_fields` or an `output` that
starts with a Falco header; an alert mapping whose `output` is not a
string, whose `output_fields` is not a mapping, whose `rule`, `priority`,
`source`, `hostname` or `time` is a list or a mapping, whose `tags` is
neither a list nor a string, or that holds a number too long to write
out.  A text alert whose field list cannot be read is not malformed: it
comes back with the fields that could be read.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import MappingProxyType

from falco_risk.kv_text import OutputSplit, OutputText, read_output, split_output


class MalformedAlertError(ValueError):
    """A record looks like a Falco alert but cannot be read."""


@dataclasses.dataclass(frozen=True, slots=True)
class FieldValue:
    """One field value and where in the record it was found."""

    value: str
    origin: str


_NO_ORIGINS: Mapping[str, str] = MappingProxyType({})


def _no_origins() -> Mapping[str, str]:
    """Share one empty, read-only origins mapping between alerts."""
    return _NO_ORIGINS


@dataclasses.dataclass(frozen=True, slots=True)
class FalcoAlert:
    """One Falco alert as read from a log record."""

    text: str
    message: str
    rule: str | None
    priority: str | None
    source: str | None
    tags: tuple[str, ...]
    hostname: str | None
    time: str | None
    shape: str
    output_fields: Mapping[str, str]
    text_fields: Mapping[str, str]
    # Origins that differ from `output_fields[k]` and `output text (k=)`.
    output_field_origins: Mapping[str, str] = dataclasses.field(
        default_factory=_no_origins, repr=False, compare=False
    )
    text_field_origins: Mapping[str, str] = dataclasses.field(
        default_factory=_no_origins, repr=False, compare=False
    )

    def field(self, keys: Sequence[str]) -> FieldValue | None:
        """Return the first of `keys` in output_fields, else in text_fields."""
        for key in keys:
            value = self.output_fields.get(key)
            if value is not None:
                origin = self.output_field_origins.get(key) or f"output_fields[{key}]"
                return FieldValue(value, origin)

        for key in keys:
            value = self.text_fields.get(key)
            if value is not None:
                origin = self.text_field_origins.get(key) or f"output text ({key}=)"
                return FieldValue(value, origin)
        return None


_PRIORITIES = (
    "Emergency", "Alert", "Critical", "Error", "Warning", "Notice",
    "Informational", "Info", "Debug",
)  # fmt: skip
_PRIORITY_NAMES = frozenset(p.lower() for p in _PRIORITIES)

# `HH:MM:SS.nnnnnnnnn: Priority ` or, with time_format_iso_8601,
# `2016-08-04T16:17:57.881781397+0000: Priority `.
_TIME = (
    r"\d{2}:\d{2}:\d{2}\.\d{9}"
    r"|\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{9}(?:Z|[+-]\d{2}:?\d{2})"
)
_HEADER = rf"({_TIME}): ({'|'.join(_PRIORITIES)})(?: |$)"
_HEADER_RE = re.compile(_HEADER)
# Unknown prefixes (docker-compose, kubectl --prefix) are skipped by
# looking this far into the line for the seconds and nanoseconds of a Falco
# time, a cheap search, then for a header that starts a word around them.
_HEADER_SEARCH_LIMIT = 512
_SECONDS_RE = re.compile(r":\d{2}\.\d{9}\b")
_CLOCK_WIDTH = len("HH:MM")
_ISO_CLOCK_WIDTH = len("YYYY-MM-DDTHH:MM")

_RFC3339 = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)"
_PREFIX_RE = re.compile(
    # CRI container log line: time, stream, full or partial flag.
    rf"{_RFC3339} (?:stdout|stderr) [FP] "
    # RFC 5424 syslog: version, time, host, app, procid, msgid, data.
    rf"|<\d{{1,3}}>1 \S+ (?P<host5424>\S+) \S+ \S+ \S+ (?:-|(?:\[(?:[^\]\\]|\\.)*\])+) "
    # RFC 3164 syslog and journald short, short-precise and short-iso.
    r"|(?:<\d{1,3}>)?(?:[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d(?:\.\d+)?"
    rf"|{_RFC3339}|\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?)"
    r" (?P<host>\S+) [^\s\[\]:]+(?:\[\d+\])?: "
)

# A truncated Falco JSON alert: its `output` starts with a Falco header.
_JSON_OUTPUT_RE = re.compile(r'"output"\s*:\s*"')
_JSON_KEYS_RE = re.compile(r'"(output|rule|priority|output_fields)"\s*:')

_ABSENT = frozenset({"", "<NA>"})
_INTERNAL = "internal"
_INTERNAL_PREFIXES = ("Falco internal:", "Falco metrics snapshot")
_OUTPUT_FIELDS = "output_fields"
_FLAT_PREFIX = "output_fields."

# First parts of Falco field names accepted as attribute keys holding
# output fields, as left by the collector's flatten operator.
_FIELD_CLASSES = frozenset(
    {"proc", "thread", "evt", "fd", "fdlist", "user", "group", "container", "k8s", "ka"}
)


def read_alert(body: object, attributes: Mapping[str, object]) -> FalcoAlert | None:
    """Read the Falco alert in a record, or return None when it holds none.

    Raises:
        MalformedAlertError: the record looks like a Falco alert but cannot
            be read.
    """
    line: str | None = None
    host: str | None = None
    if isinstance(body, bytes):
        body = _decode(body)

    if isinstance(body, str):
        line = body.strip()
        prefix = _PREFIX_RE.match(line)
        if prefix is not None:
            host = prefix.group("host") or prefix.group("host5424")
            line = line[prefix.end() :]
        if line.startswith("{"):
            alert = _read_json(line, host)
            if alert is not None:
                return alert
            line = None
    elif isinstance(body, Mapping) and _is_alert_mapping(body, None):
        return _from_mapping(body, "map", None)

    header = _find_header(line) if line else None
    if isinstance(attributes, Mapping) and _is_alert_mapping(attributes, header):
        return _from_attributes(attributes, line, header, host)
    if line is not None and header is not None:
        return _from_text(line, header, host)
    return None


def _decode(body: bytes) -> str | None:
    """Return a bytes body as text, or None when it is not UTF-8."""
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _find_header(line: str) -> re.Match[str] | None:
    """Find Falco's time-and-priority header at or near the start of `line`."""
    header = _HEADER_RE.match(line)
    seconds = None if header else _SECONDS_RE.search(line, 0, _HEADER_SEARCH_LIMIT)
    while seconds is not None:
        for width in (_ISO_CLOCK_WIDTH, _CLOCK_WIDTH):
            start = seconds.start() - width
            if start > 0 and line[start - 1] == " ":
                header = _HEADER_RE.match(line, start)
                if header is not None:
                    return header
        seconds = _SECONDS_RE.search(line, seconds.end(), _HEADER_SEARCH_LIMIT)
    return header


def _is_alert_mapping(fields: Mapping[str, object], header: re.Match[str] | None) -> bool:
    """Tell whether a map body or the attributes carry Falco's alert keys."""
    if "output" in fields:
        return "rule" in fields or "priority" in fields or _OUTPUT_FIELDS in fields
    if "rule" not in fields or "priority" not in fields:
        return False

    # Without `output` (falcosidekick's OTLP logs, json_include_output_property
    # off), a Falco priority or a Falco header in the body must back it up.
    priority = fields["priority"]
    named = isinstance(priority, str) and priority.lower() in _PRIORITY_NAMES
    return named or header is not None


def _read_json(line: str, host: str | None) -> FalcoAlert | None:
    """Read a JSON alert string, or None when the JSON is no alert."""
    if '"output"' not in line and '"rule"' not in line:
        return None
    try:
        parsed = json.loads(line)
    except (ValueError, RecursionError):
        if _names_itself_alert(line):
            raise MalformedAlertError("Falco JSON alert is not valid JSON") from None
        return None

    if not isinstance(parsed, dict) or not _is_alert_mapping(parsed, None):
        return None
    return _from_mapping(parsed, "json", host)


def _names_itself_alert(line: str) -> bool:
    """Tell whether invalid JSON still reads as a Falco alert."""
    output = _JSON_OUTPUT_RE.search(line)
    if output is not None and _HEADER_RE.match(line, output.end()):
        return True
    return len(set(_JSON_KEYS_RE.findall(line))) >= 2


def _from_mapping(fields: Mapping[str, object], shape: str, host: str | None) -> FalcoAlert:
    """Build an alert from Falco's JSON keys (a parsed body)."""
    text = _output(fields)
    header = _HEADER_RE.match(text)
    parsed = _LazyOutput(_split_output(text, header))
    rule = _optional_text(fields, "rule")
    source = _source(_optional_text(fields, "source"), rule, parsed.message)
    return FalcoAlert(
        text=text,
        message=parsed.message,
        rule=rule,
        priority=_optional_text(fields, "priority") or _group(header, 2),
        source=source,
        tags=_tags(fields.get("tags")),
        hostname=_optional_text(fields, "hostname") or host,
        time=_optional_text(fields, "time") or _group(header, 1),
        shape=shape,
        output_fields=_output_fields(fields.get(_OUTPUT_FIELDS)),
        text_fields=_Deferred(lambda: _text_fields(parsed.read(), source)),
        text_field_origins=_Deferred(lambda: _text_origins(parsed.read())),
    )


def _from_attributes(
    attributes: Mapping[str, object],
    line: str | None,
    header: re.Match[str] | None,
    host: str | None,
) -> FalcoAlert:
    """Build an alert from attributes, the output text in `output` or the body."""
    if "output" in attributes:
        text = _output(attributes)
        header = _HEADER_RE.match(text)
    elif line is not None and header is not None:
        text = line[header.start() :]
        header = _HEADER_RE.match(text)
    else:
        text = line or ""

    parsed = _LazyOutput(_split_output(text, header))
    rule = _optional_text(attributes, "rule")
    source = _source(_optional_text(attributes, "source"), rule, parsed.message)
    output_fields, origins = _attribute_fields(attributes)
    return FalcoAlert(
        text=text,
        message=parsed.message,
        rule=rule,
        priority=_optional_text(attributes, "priority") or _group(header, 2),
        source=source,
        tags=_tags(attributes.get("tags")),
        hostname=_optional_text(attributes, "hostname") or host,
        time=(
            _optional_text(attributes, "time")
            or _optional_text(attributes, "timestamp")
            or _group(header, 1)
        ),
        shape="attributes",
        output_fields=output_fields,
        text_fields=_Deferred(lambda: _text_fields(parsed.read(), source)),
        output_field_origins=origins,
        text_field_origins=_Deferred(lambda: _text_origins(parsed.read())),
    )


def _from_text(line: str, header: re.Match[str], host: str | None) -> FalcoAlert:
    """Build an alert from a text line whose Falco header is `header`."""
    parsed = read_output(line[header.end() :])
    source = _source(None, None, parsed.message)
    return FalcoAlert(
        text=line[header.start() :],
        message=parsed.message,
        rule=None,
        priority=header.group(2),
        source=source,
        tags=(),
        hostname=host,
        time=header.group(1),
        shape="text",
        output_fields={},
        text_fields=_text_fields(parsed, source),
        text_field_origins=_text_origins(parsed),
    )


def _split_output(text: str, header: re.Match[str] | None) -> OutputSplit:
    """Find the message of an output text, after its header if any."""
    return split_output(text[header.end() :] if header is not None else text)


class _LazyOutput:
    """An output text whose fields are read once, when first needed."""

    __slots__ = ("_read", "_split", "message")

    def __init__(self, split: OutputSplit) -> None:
        self.message = split.message
        self._split = split
        self._read: OutputText | None = None

    def read(self) -> OutputText:
        if self._read is None:
            self._read = self._split.read()
        return self._read


class _Deferred(Mapping[str, str]):
    """A mapping built on first use.

    Reading the output text's fields costs more than the rest of an alert,
    and alerts with output_fields rarely need them: field() looks there
    first. So an alert's text fields (and their origins) wait until asked.
    """

    __slots__ = ("_build", "_built")

    def __init__(self, build: Callable[[], Mapping[str, str]]) -> None:
        self._build = build
        self._built: Mapping[str, str] | None = None

    def _mapping(self) -> Mapping[str, str]:
        if self._built is None:
            self._built = self._build()
        return self._built

    def __getitem__(self, key: str) -> str:
        return self._mapping()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._mapping())

    def __len__(self) -> int:
        return len(self._mapping())

    def __contains__(self, key: object) -> bool:
        return key in self._mapping()

    def get(self, key: str, default: str | None = None) -> str | None:  # type: ignore[override]
        return self._mapping().get(key, default)

    def __repr__(self) -> str:
        return repr(dict(self._mapping()))


def _group(match: re.Match[str] | None, group: int) -> str | None:
    """Return a group of an optional match."""
    return match.group(group) if match is not None else None


def _output(fields: Mapping[str, object]) -> str:
    """Return the `output` text; Falco leaves it out when told to."""
    output = fields.get("output", "")
    if not isinstance(output, str):
        raise MalformedAlertError(f"Falco alert output is a {type(output).__name__}")
    return output


def _optional_text(fields: Mapping[str, object], key: str) -> str | None:
    """Return a scalar value as text, None when absent or empty."""
    value = fields.get(key)
    if isinstance(value, (list, tuple, Mapping)):
        raise MalformedAlertError(f"Falco alert {key} is a {type(value).__name__}")
    return _scalar(value)


def _source(source: str | None, rule: str | None, message: str) -> str | None:
    """Return the event source; internal events before 0.3x carry none."""
    if source is not None:
        return source
    if (rule or message).startswith(_INTERNAL_PREFIXES):
        return _INTERNAL
    return None


def _tags(value: object) -> tuple[str, ...]:
    """Return tags from a list, or from falcosidekick's comma-joined string."""
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(tag for tag in (t.strip() for t in value.split(",")) if tag)
    if isinstance(value, (list, tuple)):
        return tuple(tag for tag in (_scalar(t) for t in value) if tag is not None)
    raise MalformedAlertError(f"Falco alert tags is a {type(value).__name__}")


def _output_fields(value: object) -> dict[str, str]:
    """Return output_fields as text, leaving out absent values."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise MalformedAlertError(f"Falco alert output_fields is a {type(value).__name__}")

    fields: dict[str, str] = {}
    for key, raw in value.items():
        # Most values are strings; spare them the general conversion.
        if type(raw) is str:
            text: str | None = None if raw in _ABSENT or raw.isspace() else raw
        else:
            text = _scalar(raw)
        if text is not None and isinstance(key, str):
            fields[key] = text
    return fields


def _attribute_fields(
    attributes: Mapping[str, object],
) -> tuple[dict[str, str], dict[str, str]]:
    """Collect output fields from attributes: nested, flattened or top-level."""
    fields = _output_fields(attributes.get(_OUTPUT_FIELDS))
    origins = {key: f"attributes[{_OUTPUT_FIELDS}][{key}]" for key in fields}
    for key, raw in attributes.items():
        if not isinstance(key, str) or "." not in key:
            continue
        if key.startswith(_FLAT_PREFIX):
            name = key[len(_FLAT_PREFIX) :]
        elif key.partition(".")[0] in _FIELD_CLASSES:
            name = key
        else:
            continue
        text = _scalar(raw)
        if text is not None and name and name not in fields:
            fields[name] = text
            origins[name] = f"attributes[{key}]"
    return fields, origins


def _scalar(value: object) -> str | None:
    """Write a field value as text; None for null, empty and `<NA>`."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int):
        text = _int_text(value)
    elif isinstance(value, float):
        text = _float_text(value)
    elif isinstance(value, bytes):
        text = value.decode("utf-8", "replace")
    else:
        text = _json_text(value)
    if text in _ABSENT or text.isspace():
        return None
    return text


def _int_text(value: int) -> str:
    """Write an integer; Python refuses ones with thousands of digits."""
    try:
        return str(value)
    except ValueError:
        raise MalformedAlertError("Falco alert holds a number too long to write") from None


def _float_text(value: float) -> str:
    """Write a float, integral ones (from double-typed attributes) as integers."""
    if value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(value)


def _json_text(value: object) -> str:
    """Write a list or mapping value as compact JSON."""
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=repr)
    except (ValueError, TypeError, RecursionError):
        raise MalformedAlertError("Falco alert holds a value that cannot be written") from None


def _text_fields(parsed: OutputText, source: str | None) -> dict[str, str]:
    """Return the text fields, without the JSON quotes of internal events' values."""
    if source != _INTERNAL:
        return parsed.fields

    unquoted: dict[str, str] = {}
    for key, value in parsed.fields.items():
        if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
            try:
                decoded = json.loads(value)
            except ValueError:
                decoded = value
            value = decoded if isinstance(decoded, str) and decoded else value
        unquoted[key] = value
    return unquoted


def _text_origins(parsed: OutputText) -> Mapping[str, str]:
    """Name the origin of text fields that came from `%container.info`."""
    if not parsed.from_container_info:
        return _NO_ORIGINS
    return dict.fromkeys(parsed.from_container_info, "output text (container.info)")
