"""Tag the records of a serialized export request without decoding the request.

The request is searched for the catalog's needles in any case; only records
that hold a hit are read, and only those that match are rewritten, their new
attributes appended as bytes. The result is the request as received with
those records replaced and the lengths around them adjusted. For a request in
canonical encoding (fields in number order, as protobuf runtimes write them)
these are the very bytes that decoding, tagging and encoding again give;
otherwise the same message in other bytes.

Records are read the cheap way when they have the usual shape (one string
body); any other record is decoded on its own and tagged as the decoded path
does. Framing that cannot be followed, or a candidate record that does not
decode, raises WireError: the caller then decodes the whole request, which
also decides what is wrong with it. Records that hold no needle are not read
at all, so they are forwarded as received even when they would not decode.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import re2  # type: ignore[import-untyped]
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from falco_risk.otlp_values import AttributeValue, kvlist_to_dict, set_attributes, to_python
from falco_risk.tagger import Tagger, TagTally
from falco_risk.wire import (
    LEN,
    AttributeEncoder,
    Span,
    WireError,
    count_records,
    encode_varint,
    fields,
    length_delimited,
    read_varint,
    skip,
)

# Tags of the length-delimited fields on the way to a record:
# ExportLogsServiceRequest.resource_logs (1), ResourceLogs.scope_logs (2),
# ScopeLogs.log_records (2); and LogRecord.body (5) / .attributes (6).
_RESOURCE_LOGS = b"\x0a"
_SCOPE_LOGS = b"\x12"
_LOG_RECORD = b"\x12"
_LOG_RECORD_TAG = 0x12
_RESOURCE_FIELD = 1
_SCOPE_FIELD = 1
_SCOPE_LOGS_FIELD = 2
_BODY_FIELD = 5
_ATTRIBUTES_FIELD = 6
_STRING_VALUE_TAG = 0x0A
_KEY_TAG = 0x0A
# After this many hits, the rest of the request is searched in a lower-cased
# copy, and records are walked one by one rather than guessed: both cheaper
# per hit when most records are alerts.
_DENSE_HITS = 32
# Wrong guesses at record starts tolerated in one ScopeLogs before walking it
# record by record instead; only crafted requests get near it.
_MAX_MISSES = 64

# A view of a part of the request, or new bytes.
Piece = bytes | memoryview
_Message = TypeVar("_Message", bound=Message)


@dataclass(frozen=True, slots=True)
class _Candidate:
    """A record that holds a needle, and the messages around it."""

    resource_logs: Span
    scope_logs: Span
    record: Span


@dataclass(frozen=True, slots=True)
class _Context:
    """What tagging a record needs besides the record: its resource, the time, its room."""

    resource: dict[str, object]
    now: float
    room: int | None

    def fit(self, size: int) -> tuple[int, int] | None:
        """The size check the Tagger applies, for a record of ``size`` bytes."""
        return None if self.room is None else (size, self.room)


@dataclass
class _Walk:
    """What walking a request's framing found."""

    records: int = 0
    candidates: list[_Candidate] = field(default_factory=list)


class WireTagger:
    """Tags serialized requests with a Tagger's catalog; safe to call from many threads."""

    def __init__(self, tagger: Tagger) -> None:
        self.tagger = tagger
        needles = tagger.catalog.needles
        self._needles = None if needles is None else sorted(needles, key=len)
        self._search = None if self._needles is None else _needle_search(self._needles)
        self._encoder = AttributeEncoder()

    def tag(self, raw: bytes) -> tuple[bytes, TagTally] | None:
        """The tagged request and what tagging did; None when no record can match.

        Raises:
            WireError: the request must be decoded to be handled.
        """
        hits = self._hits(raw)
        if hits is not None and len(hits[0]) == 1:
            return None

        # With many hits, most records are candidates: walking every record
        # costs less than a guess and a check per hit.
        guess = hits is not None and len(hits[0]) <= _DENSE_HITS
        try:
            walk = _walk(raw, hits, guess)
        except IndexError:
            raise WireError("request ends inside a field") from None
        tally = TagTally(records=walk.records)
        edits: list[tuple[_Candidate, list[Piece]]] = []
        resources: dict[int, dict[str, object]] = {}
        rooms: dict[int, int | None] = {}
        now = time.time()
        for candidate in walk.candidates:
            resource = resources.get(candidate.resource_logs.header)
            if resource is None:
                resource = _resource(raw, candidate.resource_logs)
                resources[candidate.resource_logs.header] = resource
            room = rooms.get(candidate.scope_logs.header, -1)
            if room == -1:
                room = self._room(raw, candidate)
                rooms[candidate.scope_logs.header] = room
            context = _Context(resource, now, room)
            pieces = self._tag_record(raw, candidate.record, context, tally)
            if pieces is not None:
                edits.append((candidate, pieces))
        if not edits:
            return raw, tally
        return splice(raw, edits), tally

    def _hits(self, raw: bytes) -> tuple[list[int], list[int]] | None:
        """Start and end offsets of needles in the request, any case, by start.

        Every offset where some needle starts is listed, with the end of (at
        least) the shortest needle starting there: a record holds a needle
        exactly when it holds one of these. Each list ends with a sentinel
        past the end of the request. None when the catalog has no needles and
        every record is a candidate.
        """
        if self._search is None:
            return None
        starts: list[int] = []
        ends: list[int] = []
        match = self._search(raw)
        while match is not None:
            starts.append(match.start())
            ends.append(match.end())
            if len(starts) >= _DENSE_HITS:
                self._find_lowered(raw, match.start() + 1, starts, ends)
                break
            match = self._search(raw, match.start() + 1)
        sentinel = len(raw) + 1
        starts.append(sentinel)
        ends.append(sentinel)
        return starts, ends

    def _find_lowered(self, raw: bytes, start: int, starts: list[int], ends: list[int]) -> None:
        """Add the needles from ``start`` on, found in a lower-cased copy.

        One RE2 search per hit costs more than lower-casing the rest of the
        request once when hits are dense (every record an alert).
        """
        assert self._needles is not None
        lowered = raw[start:].lower()
        found: list[tuple[int, int]] = []
        for needle in self._needles:
            at = lowered.find(needle)
            while at >= 0:
                found.append((start + at, start + at + len(needle)))
                at = lowered.find(needle, at + 1)
        found.sort()
        starts.extend(hit for hit, _ in found)
        ends.extend(end for _, end in found)

    def _room(self, raw: bytes, candidate: _Candidate) -> int | None:
        """The Tagger's room for a record under this resource and scope (see Tagger.room)."""
        if self.tagger.max_record_size is None:
            return None
        headers = _field_size(raw, candidate.resource_logs, _RESOURCE_FIELD)
        headers += _field_size(raw, candidate.scope_logs, _SCOPE_FIELD)
        return self.tagger.room(headers)

    def _tag_record(
        self, raw: bytes, record: Span, context: _Context, tally: TagTally
    ) -> list[Piece] | None:
        """The new payload of a record as pieces, or None when it stays as it is."""
        shape = _read_shape(raw, record)
        if shape is None:
            return self._tag_decoded(raw, record, context, tally)
        body, keys, insert = shape

        attributes = _WireAttributes(raw, record)
        values = self.tagger.attributes_for(
            body,
            attributes,
            context.resource,
            tally,
            context.now,
            context.fit(record.end - record.start),
        )
        if attributes.undecodable:
            # The reader swallowed it as a malformed alert; the decoded path
            # refuses such a request, and so must this one.
            raise WireError("a candidate record's attributes do not decode")
        if values is None:
            return None
        if keys and not keys.isdisjoint(values):
            # Keys already present are replaced in place: leave that to protobuf.
            return [_apply(raw, record, values)]
        try:
            added = self._encoder.encode(values)
        except ValueError:
            # Values protobuf writes its own way (or refuses): let it.
            return [_apply(raw, record, values)]
        view = memoryview(raw)
        return [view[record.start : insert], added, view[insert : record.end]]

    def _tag_decoded(
        self, raw: bytes, record: Span, context: _Context, tally: TagTally
    ) -> list[Piece] | None:
        """Tag a record of an unusual shape the way the decoded path does."""
        message = _decode(LogRecord, raw, record)
        values = self.tagger.attributes_for(
            to_python(message.body),
            kvlist_to_dict(message.attributes),
            context.resource,
            tally,
            context.now,
            context.fit(message.ByteSize()),
        )
        if values is None:
            return None
        set_attributes(message, values)
        return [message.SerializeToString()]


def _needle_search(needles: list[bytes]) -> Callable[..., Any]:
    """RE2's search for any of ``needles`` in any ASCII case, shortest first at each start.

    One pass over the request whatever the number of needles, without the
    lower-cased copy. Latin-1 mode reads every byte as one character, so
    bytes that are not UTF-8 cannot hide a needle; its case folding is a
    superset of ASCII's, which can only add candidates, never lose one.
    """
    options = re2.Options()
    options.encoding = re2.Options.Encoding.LATIN1
    options.case_sensitive = False
    options.never_capture = True
    options.log_errors = False
    pattern = b"|".join(re2.escape(needle) for needle in needles)
    return re2.compile(pattern, options=options).search  # type: ignore[no-any-return]


class _WireAttributes(Mapping[str, object]):
    """A record's attributes as Python values, decoded only when first asked for.

    The alert reader looks at attributes only when the body is no alert, so
    for most candidate records they are never decoded.
    """

    __slots__ = ("_decoded", "_raw", "_record", "undecodable")

    def __init__(self, raw: bytes, record: Span) -> None:
        self._raw = raw
        self._record = record
        self._decoded: dict[str, object] | None = None
        self.undecodable = False

    def _values(self) -> dict[str, object]:
        if self._decoded is None:
            try:
                message = _decode(LogRecord, self._raw, self._record)
            except WireError:
                self.undecodable = True
                raise
            self._decoded = kvlist_to_dict(message.attributes)
        return self._decoded

    def __getitem__(self, key: str) -> object:
        return self._values()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values())

    def __len__(self) -> int:
        return len(self._values())

    def __contains__(self, key: object) -> bool:
        return key in self._values()


def _walk(raw: bytes, hits: tuple[list[int], list[int]] | None, guess: bool) -> _Walk:
    """Count the records and find those holding a hit (all of them when ``hits`` is None).

    With ``guess``, record starts are guessed from the hits and checked
    (_locate); otherwise, or when guesses fail, every record is walked.
    """
    walk = _Walk()
    view = memoryview(raw)
    for number, wire_type, header, value in fields(raw, 0, len(raw)):
        if number != 1:
            continue
        if wire_type != LEN:
            raise WireError("resource_logs is not length-delimited")
        resource_logs = _span(raw, header, value)
        for inner, inner_type, inner_header, inner_value in fields(
            raw, resource_logs.start, resource_logs.end
        ):
            if inner != _SCOPE_LOGS_FIELD:
                continue
            if inner_type != LEN:
                raise WireError("scope_logs is not length-delimited")
            scope_logs = _span(raw, inner_header, inner_value)
            if (
                hits is None
                or not guess
                or not _locate(raw, view, resource_logs, scope_logs, hits, walk)
            ):
                _walk_scope(raw, resource_logs, scope_logs, hits, walk)
    return walk


def _locate(
    raw: bytes,
    view: memoryview,
    resource_logs: Span,
    scope_logs: Span,
    hits: tuple[list[int], list[int]],
    walk: _Walk,
) -> bool:
    """Find the records of one ScopeLogs that hold a hit, without a Python loop per record.

    For each hit, the nearest earlier byte 0x12 whose length reaches past
    the hit is a guess at the record's start; the guess is right exactly
    when the fields from the last known record end parse up to it (in C,
    see count_records). The same parses count the records. False when
    guesses keep failing (then the caller walks the scope record by record).
    """
    starts, ends = hits
    index = bisect_left(starts, scope_logs.start)
    known = scope_logs.start
    records = 0
    found: list[_Candidate] = []
    misses = 0
    while starts[index] < scope_logs.end:
        hit_start, hit_end = starts[index], ends[index]
        index += 1
        if hit_start < known or hit_end > scope_logs.end:
            continue
        guess = raw.rfind(_LOG_RECORD, known, hit_start)
        while guess >= known:
            record = _record_at(raw, guess, hit_end, scope_logs.end)
            if record is not None:
                before = count_records(view, known, guess)
                if before is not None:
                    records += before + 1
                    found.append(_Candidate(resource_logs, scope_logs, record))
                    known = record.end
                    break
                misses += 1
                if misses > _MAX_MISSES:
                    return False
            guess = raw.rfind(_LOG_RECORD, known, guess)
    rest = count_records(view, known, scope_logs.end)
    if rest is None:
        raise WireError("scope_logs does not end where its records end")
    walk.records += records + rest
    walk.candidates.extend(found)
    return True


def _record_at(raw: bytes, header: int, reach: int, limit: int) -> Span | None:
    """The log record a 0x12 at ``header`` would frame, if it reaches ``reach`` within ``limit``."""
    try:
        size, start = read_varint(raw, header + 1)
    except WireError:
        return None
    end = start + size
    if end < reach or end > limit:
        return None
    return Span(header, start, end)


def _walk_scope(
    raw: bytes,
    resource_logs: Span,
    scope_logs: Span,
    hits: tuple[list[int], list[int]] | None,
    walk: _Walk,
) -> None:
    """Walk the fields of one ScopeLogs: the loop every record of a request goes through.

    Kept flat and branch-light: a log record's tag is one byte (0x12) and its
    length one to three bytes, so the usual record costs a few operations.
    """
    starts, ends = hits if hits is not None else ([len(raw) + 1], [])
    hit = 0
    next_start = starts[0]
    pos = scope_logs.start
    end = scope_logs.end
    records = 0
    while pos < end:
        header = pos
        if raw[pos] == _LOG_RECORD_TAG:
            size = raw[pos + 1]
            if size < 0x80:
                start = pos + 2
            elif raw[pos + 2] < 0x80:
                size = (size & 0x7F) | (raw[pos + 2] << 7)
                start = pos + 3
            else:
                size, start = read_varint(raw, pos + 1)
            pos = start + size
        else:
            # The scope, schema_url or a field this version does not know.
            tag, pos = read_varint(raw, pos)
            pos = skip(raw, pos, tag & 7, end)
            continue

        records += 1
        if hits is None:
            walk.candidates.append(_Candidate(resource_logs, scope_logs, Span(header, start, pos)))
        elif next_start < pos:
            # A needle starts before this record ends: skip those before it,
            # then look for one that lies wholly inside it.
            while next_start < start:
                hit += 1
                next_start = starts[hit]
            probe = hit
            while starts[probe] < pos:
                if ends[probe] <= pos:
                    record = Span(header, start, pos)
                    walk.candidates.append(_Candidate(resource_logs, scope_logs, record))
                    break
                probe += 1
    if pos != end:
        # Checked once here rather than per record: a record that overruns
        # its scope ends the loop past ``end``.
        raise WireError("scope_logs does not end where its records end")
    walk.records += records


def _span(raw: bytes, header: int, value: int) -> Span:
    span = length_delimited(raw, value)
    return Span(header, span.start, span.end)


def _read_shape(raw: bytes, record: Span) -> tuple[str, set[str], int] | None:
    """Body text, attribute keys and where added attributes go, for a usual record.

    None for any other shape: a body that is not one string, a repeated
    body, an attribute whose key is not its first field.
    """
    body_start = body_end = -1
    keys: set[str] = set()
    insert = after_attributes = end = record.end
    pos = record.start
    while pos < end:
        header = pos
        tag = raw[pos]
        if tag < 0x80:
            pos += 1
        else:
            tag, pos = read_varint(raw, pos)
        number = tag >> 3
        if tag & 7 != LEN:
            if number in (_BODY_FIELD, _ATTRIBUTES_FIELD):
                return None
            if number > _ATTRIBUTES_FIELD and after_attributes == end:
                after_attributes = header
            pos = skip(raw, pos, tag & 7, end)
            continue
        size, pos = read_varint(raw, pos)
        start = pos
        pos += size
        if pos > end:
            raise WireError("field runs past the end of its log record")
        if number == _BODY_FIELD:
            if body_start >= 0:
                return None
            body_start, body_end = start, pos
        elif number == _ATTRIBUTES_FIELD:
            key = _key(raw, start, pos)
            if key is None:
                return None
            keys.add(key)
            insert = pos
        elif number > _ATTRIBUTES_FIELD and after_attributes == end:
            after_attributes = header
    if body_start < 0:
        return None
    text = _string_value(raw, body_start, body_end)
    if text is None:
        return None
    return text, keys, insert if keys else after_attributes


def _string_value(raw: bytes, start: int, end: int) -> str | None:
    """The text of an AnyValue (at ``start:end``) that holds one string_value, else None."""
    if start >= end or raw[start] != _STRING_VALUE_TAG:
        return None
    size, text_start = read_varint(raw, start + 1)
    if text_start + size != end:
        return None
    try:
        return str(raw[text_start:end], "utf-8")
    except UnicodeDecodeError:
        # Not valid protobuf: decoding the request will say so.
        raise WireError("body is not valid UTF-8") from None


def _key(raw: bytes, start: int, end: int) -> str | None:
    """The key of a KeyValue (at ``start:end``) written key first, else None."""
    if start >= end or raw[start] != _KEY_TAG:
        return None
    size, key_start = read_varint(raw, start + 1)
    if key_start + size > end:
        raise WireError("attribute key runs past its attribute")
    try:
        return str(raw[key_start : key_start + size], "utf-8")
    except UnicodeDecodeError:
        raise WireError("attribute key is not valid UTF-8") from None


def _resource(raw: bytes, resource_logs: Span) -> dict[str, object]:
    """The resource attributes of a ResourceLogs, as the decoded path reads them."""
    found = [
        (wire_type, value)
        for number, wire_type, _, value in fields(raw, resource_logs.start, resource_logs.end)
        if number == _RESOURCE_FIELD
    ]
    if not found:
        return {}
    if len(found) == 1 and found[0][0] == LEN:
        return kvlist_to_dict(_decode(Resource, raw, length_delimited(raw, found[0][1])).attributes)
    # A repeated resource is merged by protobuf; let it do that.
    return kvlist_to_dict(_decode(ResourceLogs, raw, resource_logs).resource.attributes)


def _field_size(raw: bytes, message: Span, number: int) -> int:
    """Bytes of the payloads of field ``number`` in a message (a resource, a scope)."""
    return sum(
        length_delimited(raw, value).end - length_delimited(raw, value).start
        for found, wire_type, _, value in fields(raw, message.start, message.end)
        if found == number and wire_type == LEN
    )


def _decode(kind: type[_Message], raw: bytes, span: Span) -> _Message:
    try:
        return kind.FromString(raw[span.start : span.end])
    except DecodeError as exc:
        raise WireError(f"{kind.__name__} does not decode: {exc}") from None


def _apply(raw: bytes, record: Span, values: Mapping[str, AttributeValue]) -> bytes:
    """A record with ``values`` set by protobuf itself, serialized."""
    message = _decode(LogRecord, raw, record)
    set_attributes(message, values)
    return message.SerializeToString()


def splice(raw: bytes, edits: list[tuple[_Candidate, list[Piece]]]) -> bytes:
    """``raw`` with each candidate record's payload replaced by its pieces.

    ``edits`` are in request order. The length prefixes of the changed
    records and of the ScopeLogs and ResourceLogs around them are written
    anew; every other byte is copied once, into the result.
    """
    view = memoryview(raw)
    out: list[Piece] = []
    pos = 0
    index = 0
    while index < len(edits):
        resource_logs = edits[index][0].resource_logs
        resource_pieces: list[Piece] = []
        resource_pos = resource_logs.start
        while index < len(edits) and edits[index][0].resource_logs == resource_logs:
            scope_logs = edits[index][0].scope_logs
            scope_pieces: list[Piece] = []
            scope_pos = scope_logs.start
            while index < len(edits) and edits[index][0].scope_logs == scope_logs:
                candidate, pieces = edits[index]
                scope_pieces.append(view[scope_pos : candidate.record.header])
                scope_pieces.extend(_framed(_LOG_RECORD, pieces))
                scope_pos = candidate.record.end
                index += 1
            scope_pieces.append(view[scope_pos : scope_logs.end])
            resource_pieces.append(view[resource_pos : scope_logs.header])
            resource_pieces.extend(_framed(_SCOPE_LOGS, scope_pieces))
            resource_pos = scope_logs.end
        resource_pieces.append(view[resource_pos : resource_logs.end])
        out.append(view[pos : resource_logs.header])
        out.extend(_framed(_RESOURCE_LOGS, resource_pieces))
        pos = resource_logs.end
    out.append(view[pos:])
    return b"".join(out)


def _framed(tag: bytes, pieces: list[Piece]) -> list[Piece]:
    size = sum(len(piece) for piece in pieces)
    return [tag + encode_varint(size), *pieces]
