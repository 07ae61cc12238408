"""Apply the catalog to the records of a decoded request."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from falco_risk.catalog import Catalog
from falco_risk.detection import Detection
from falco_risk.enrich import extract, render
from falco_risk.falco import FalcoAlert, MalformedAlertError, read_alert
from falco_risk.otlp_values import AttributeValue, kvlist_to_dict, set_attributes, to_python


@dataclass
class TagTally:
    """What tagging one request did."""

    records: int = 0
    tagged: dict[str, int] = field(default_factory=dict)
    malformed: int = 0
    last_error: str = ""


class Tagger:
    """Finds the records a catalog matches and adds the matching detection's attributes."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
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
                for record in scope_logs.log_records:
                    if not self.may_match(record.SerializeToString()):
                        continue
                    if resource is None:
                        resource = kvlist_to_dict(resource_logs.resource.attributes)
                    self._tag_record(record, resource, tally)
        return tally

    def _tag_record(self, record: LogRecord, resource: dict[str, object], tally: TagTally) -> None:
        values = self.attributes_for(
            to_python(record.body), kvlist_to_dict(record.attributes), resource, tally
        )
        if values is not None:
            set_attributes(record, values)

    def attributes_for(
        self,
        body: object,
        attributes: Mapping[str, object],
        resource: dict[str, object],
        tally: TagTally,
    ) -> dict[str, AttributeValue] | None:
        """The attributes a record with this body and these attributes gets, or None.

        Counts the record in ``tally`` (tagged or malformed); it does not
        change the record, so a decoded record and one read from the wire
        get the very same values.
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

        detection = self.match(alert, resource)
        if detection is None:
            return None
        tally.tagged[detection.id] = tally.tagged.get(detection.id, 0) + 1
        return render(detection, extract(detection, alert))

    def match(self, alert: FalcoAlert, resource: dict[str, object]) -> Detection | None:
        """The first detection in catalog order that matches the alert, if any."""
        if alert.source == "internal":
            return None
        for detection in self.catalog.detections:
            if detection.condition.matches(alert, resource):
                return detection
        return None
