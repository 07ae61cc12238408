"""Apply the catalog to the records of a decoded request."""

from __future__ import annotations

from dataclasses import dataclass, field

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from falco_risk.catalog import Catalog
from falco_risk.detection import Detection
from falco_risk.enrich import DEFAULT_MAX_VALUE_LENGTH, extract, render
from falco_risk.falco import FalcoAlert, MalformedAlertError, read_alert
from falco_risk.otlp_values import AttributeValue, kvlist_to_dict, set_attributes, to_python

# Room for the framing of a record, its scope and its resource in a request.
_FRAMING = 3 * 6


@dataclass
class TagTally:
    """What tagging one request did."""

    records: int = 0
    tagged: dict[str, int] = field(default_factory=dict)
    malformed: int = 0
    last_error: str = ""
    # Matching records left untagged because the tag would have made them
    # larger than the next hop accepts.
    oversize: int = 0


class Tagger:
    """Finds the records a catalog matches and adds the matching detection's attributes."""

    def __init__(
        self,
        catalog: Catalog,
        max_value_length: int = DEFAULT_MAX_VALUE_LENGTH,
        max_record_size: int | None = None,
    ) -> None:
        self.catalog = catalog
        self.max_value_length = max_value_length
        self.max_record_size = max_record_size
        needles = catalog.needles
        self._needles = None if needles is None else tuple(needles)

    def may_match(self, data: bytes) -> bool:
        """False only when no record in ``data`` can match any detection."""
        if self._needles is None:
            return True
        lowered = data.lower()
        return any(needle in lowered for needle in self._needles)

    def tag(self, request: ExportLogsServiceRequest) -> TagTally:
        """Tag matching records in place and report the counts."""
        tally = TagTally()
        for resource_logs in request.resource_logs:
            resource: dict[str, object] | None = None
            for scope_logs in resource_logs.scope_logs:
                tally.records += len(scope_logs.log_records)
                room = self._room(resource_logs.resource.ByteSize() + scope_logs.scope.ByteSize())
                for record in scope_logs.log_records:
                    if not self.may_match(record.SerializeToString()):
                        continue
                    if resource is None:
                        resource = kvlist_to_dict(resource_logs.resource.attributes)
                    self._tag_record(record, resource, tally, room)
        return tally

    def _room(self, headers: int) -> int | None:
        """Bytes a record may take so that it still travels in a request of its own."""
        if self.max_record_size is None:
            return None
        return self.max_record_size - headers - _FRAMING

    def _tag_record(
        self, record: LogRecord, resource: dict[str, object], tally: TagTally, room: int | None
    ) -> None:
        try:
            alert = read_alert(to_python(record.body), kvlist_to_dict(record.attributes))
        except MalformedAlertError as exc:
            tally.malformed += 1
            tally.last_error = str(exc)
            return
        except Exception as exc:
            tally.malformed += 1
            tally.last_error = f"unexpected {type(exc).__name__}: {exc}"
            return
        if alert is None:
            return

        detection = self.match(alert, resource)
        if detection is None:
            return
        values = render(detection, extract(detection, alert), self.max_value_length)
        if room is not None and _grows_past(record, values, room):
            tally.oversize += 1
            return
        set_attributes(record, values)
        tally.tagged[detection.id] = tally.tagged.get(detection.id, 0) + 1

    def match(self, alert: FalcoAlert, resource: dict[str, object]) -> Detection | None:
        """The first detection in catalog order that matches the alert, if any."""
        if alert.source == "internal":
            return None
        for detection in self.catalog.detections:
            if detection.condition.matches(alert, resource):
                return detection
        return None


def _grows_past(record: LogRecord, values: dict[str, AttributeValue], room: int) -> bool:
    """True when adding ``values`` would take a record that fits ``room`` past it.

    The added size is measured on an empty record, which overstates it when
    a key is replaced rather than added; erring that way keeps the bound.
    """
    size = record.ByteSize()
    if size > room:
        return False
    probe = LogRecord()
    set_attributes(probe, values)
    return size + probe.ByteSize() > room
