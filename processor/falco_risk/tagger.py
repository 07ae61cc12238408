"""Apply the catalog to the records of a decoded request.

Every enabled detection is tried on each Falco alert. A match that one of its
detection's suppressions covers is set aside (and counted); of the matches
left, the record gets the attributes of the one with the highest risk score,
the earliest in the catalog among equals. When more than one matched, the
record also lists all their names. Records nothing matches keep their bytes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from falco_risk import attributes as attr
from falco_risk.catalog import Catalog
from falco_risk.detection import Detection
from falco_risk.enrich import DEFAULT_MAX_VALUE_LENGTH, MISSING, extract, render
from falco_risk.falco import FalcoAlert, FieldValue, MalformedAlertError, read_alert
from falco_risk.otlp_values import AttributeValue, kvlist_to_dict, set_attributes, to_python
from falco_risk.suppress import Suppression

logger = logging.getLogger(__name__)

# Values of count_by fields are cut to this many characters before they
# become metric attributes.
MAX_COUNT_VALUE_LENGTH = 256

CountKey = tuple[str, str, tuple[tuple[str, str], ...]]

# Room for the framing of a record, its scope and its resource in a request.
_FRAMING = 3 * 6
# A field's tag and the longest length prefix (1 + 5 bytes).
_FIELD_FRAMING = 6


@dataclass
class TagTally:
    """What tagging one request did."""

    records: int = 0
    tagged: dict[str, int] = field(default_factory=dict)
    malformed: int = 0
    last_error: str = ""
    # (detection id, suppression name) -> records the suppression kept untagged.
    suppressed: dict[tuple[str, str], int] = field(default_factory=dict)
    # (detection id, detection name, count_by pairs) -> tagged records.
    counts: dict[CountKey, int] = field(default_factory=dict)
    # Matching records left untagged because the tag would have made them
    # larger than the next hop accepts.
    oversize: int = 0


@dataclass(frozen=True)
class Verdict:
    """What the catalog makes of one alert."""

    matched: tuple[Detection, ...] = ()
    suppressed: tuple[tuple[Detection, Suppression], ...] = ()

    @property
    def winner(self) -> Detection | None:
        """The detection whose attributes the record gets."""
        best: Detection | None = None
        for detection in self.matched:
            if best is None or detection.risk_score > best.risk_score:
                best = detection
        return best


class Tagger:
    """Finds the records a catalog matches and adds the winning detection's attributes."""

    def __init__(
        self,
        catalog: Catalog,
        max_value_length: int = DEFAULT_MAX_VALUE_LENGTH,
        max_record_size: int | None = None,
    ) -> None:
        self.catalog = catalog
        self.max_value_length = max_value_length
        self.max_record_size = max_record_size
        self._detections = catalog.enabled
        needles = catalog.needles
        self._needles = None if needles is None else tuple(needles)
        # Suppressions already expired were reported by the catalog loader.
        now = time.time()
        self._expired_noticed = {
            (d.id, s.name) for d in self._detections for s in d.suppressions if s.expired(now)
        }

    def may_match(self, data: bytes) -> bool:
        """False only when no record in ``data`` can match any detection."""
        if self._needles is None:
            return True
        lowered = data.lower()
        return any(needle in lowered for needle in self._needles)

    def tag(self, request: ExportLogsServiceRequest) -> TagTally:
        """Tag matching records in place and report the counts."""
        tally = TagTally()
        now = time.time()
        for resource_logs in request.resource_logs:
            resource: dict[str, object] | None = None
            for scope_logs in resource_logs.scope_logs:
                tally.records += len(scope_logs.log_records)
                room = self.room(resource_logs.resource.ByteSize() + scope_logs.scope.ByteSize())
                for record in scope_logs.log_records:
                    if not self.may_match(record.SerializeToString()):
                        continue
                    if resource is None:
                        resource = kvlist_to_dict(resource_logs.resource.attributes)
                    self._tag_record(record, resource, tally, now, room)
        return tally

    def room(self, headers: int) -> int | None:
        """Bytes a record may take so that it still travels in a request of its own."""
        if self.max_record_size is None:
            return None
        return self.max_record_size - headers - _FRAMING

    def _tag_record(
        self,
        record: LogRecord,
        resource: dict[str, object],
        tally: TagTally,
        now: float,
        room: int | None,
    ) -> None:
        values = self.attributes_for(
            to_python(record.body),
            kvlist_to_dict(record.attributes),
            resource,
            tally,
            now,
            None if room is None else (record.ByteSize(), room),
        )
        if values is not None:
            set_attributes(record, values)

    def attributes_for(
        self,
        body: object,
        attributes: Mapping[str, object],
        resource: Mapping[str, object],
        tally: TagTally,
        now: float | None = None,
        fit: tuple[int, int] | None = None,
    ) -> dict[str, AttributeValue] | None:
        """The attributes a record with this body and these attributes gets, or None.

        Counts the record in ``tally`` (tagged, suppressed, malformed, left
        untagged for size) but does not change it, so a decoded record and
        one read from the wire get the very same values. ``fit`` is the
        record's size and the room it must fit in after tagging.
        """
        try:
            alert = read_alert(body, attributes)
        except MalformedAlertError as exc:
            tally.malformed += 1
            tally.last_error = str(exc)
            return None
        except Exception as exc:
            tally.malformed += 1
            tally.last_error = f"unexpected {type(exc).__name__}: {exc}"
            return None
        if alert is None:
            return None

        verdict = self.judge(alert, resource, now)
        for detection, suppression in verdict.suppressed:
            pair = (detection.id, suppression.name)
            tally.suppressed[pair] = tally.suppressed.get(pair, 0) + 1
        winner = verdict.winner
        if winner is None:
            return None

        fields = extract(winner, alert)
        values = render(winner, fields, self.max_value_length)
        if len(verdict.matched) > 1:
            values[attr.MATCHED_DETECTIONS] = [d.name for d in verdict.matched]
        if fit is not None and _grows_past(*fit, values):
            tally.oversize += 1
            return None
        tally.tagged[winner.id] = tally.tagged.get(winner.id, 0) + 1
        if winner.count_by:
            key = (winner.id, winner.name, _count_pairs(winner, fields))
            tally.counts[key] = tally.counts.get(key, 0) + 1
        return values

    def judge(
        self, alert: FalcoAlert, resource: Mapping[str, object], now: float | None = None
    ) -> Verdict:
        """Which enabled detections match the alert, and which of those are suppressed."""
        if alert.source == "internal":
            return Verdict()
        now = time.time() if now is None else now
        matched: list[Detection] = []
        suppressed: list[tuple[Detection, Suppression]] = []
        for detection in self._detections:
            if not detection.condition.matches(alert, resource):
                continue
            suppression = self._suppression(detection, alert, resource, now)
            if suppression is None:
                matched.append(detection)
            else:
                suppressed.append((detection, suppression))
        return Verdict(tuple(matched), tuple(suppressed))

    def match(self, alert: FalcoAlert, resource: Mapping[str, object]) -> Detection | None:
        """The detection whose attributes the alert would get, if any."""
        return self.judge(alert, resource).winner

    def _suppression(
        self,
        detection: Detection,
        alert: FalcoAlert,
        resource: Mapping[str, object],
        now: float,
    ) -> Suppression | None:
        for suppression in detection.suppressions:
            if suppression.expired(now):
                self._notice_expiry(detection, suppression)
                continue
            if suppression.condition.matches(alert, resource):
                return suppression
        return None

    def _notice_expiry(self, detection: Detection, suppression: Suppression) -> None:
        key = (detection.id, suppression.name)
        if key in self._expired_noticed:
            return
        self._expired_noticed.add(key)
        logger.warning(
            "suppression %r of detection %r expired on %s and no longer applies",
            suppression.name,
            detection.id,
            suppression.expires,
        )


def _count_pairs(
    detection: Detection, fields: Mapping[str, FieldValue]
) -> tuple[tuple[str, str], ...]:
    pairs = []
    for name in detection.count_by:
        found = fields.get(name)
        value = MISSING if found is None else found.value[:MAX_COUNT_VALUE_LENGTH]
        pairs.append((name, value))
    return tuple(pairs)


def _grows_past(size: int, room: int, values: dict[str, AttributeValue]) -> bool:
    """True when adding ``values`` would take a record of ``size`` that fits ``room`` past it.

    A cheap upper bound settles nearly every record without encoding
    anything; only a record close to the limit is measured exactly, on an
    empty record, which overstates the growth when a key is replaced rather
    than added. Erring that way keeps the bound.
    """
    if size > room:
        return False
    if size + _size_bound(values) <= room:
        return False
    probe = LogRecord()
    set_attributes(probe, values)
    return size + probe.ByteSize() > room


def _size_bound(values: dict[str, AttributeValue]) -> int:
    """At least the bytes ``values`` take as attributes: 4 bytes per character at most in
    UTF-8, and a tag and a 5-byte length for every nested message and string."""
    total = 0
    for key, value in values.items():
        total += 4 * len(key) + 4 * _FIELD_FRAMING
        if isinstance(value, str):
            total += 4 * len(value) + _FIELD_FRAMING
        else:
            total += 2 * _FIELD_FRAMING
            total += sum(4 * len(item) + 2 * _FIELD_FRAMING for item in value)
    return total
