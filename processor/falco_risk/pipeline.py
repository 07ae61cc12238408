"""One export request, from the bytes received to the answer owed upstream.

The steps: search the raw bytes for the catalog's needles; when none is there,
forward the bytes as received. Otherwise read and tag only the records that
hold a needle, straight from the bytes (wire_tagger), split to the next hop's
limit, forward, and answer only after the next hop has answered. Requests
whose framing that cannot follow, and requests larger than the next hop's
limit, are decoded once, tagged, encoded once and split instead.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import grpc
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)

from falco_risk.catalog import Catalog
from falco_risk.enrich import DEFAULT_MAX_VALUE_LENGTH
from falco_risk.forwarder import Sink
from falco_risk.outcome import RETRYABLE_CODES, Outcome, invalid, ok
from falco_risk.rate_limited import RateLimitedWarning
from falco_risk.record_count import count_records
from falco_risk.split import split_request, split_serialized
from falco_risk.tagger import Tagger, TagTally
from falco_risk.telemetry import (
    ERROR_TYPE,
    REFUSED_BAD_DATA,
    RULE_NAME,
    RULE_UUID,
    SUPPRESSION_RULE,
    TRANSPORT,
    Telemetry,
)
from falco_risk.wire import WireError
from falco_risk.wire_tagger import WireTagger

logger = logging.getLogger(__name__)

_EMPTY_RESPONSE = ExportLogsServiceResponse().SerializeToString()
_WARN_INTERVAL_SECONDS = 60.0


@dataclass(frozen=True)
class Limits:
    """Sizes and deadlines of the path toward the next hop."""

    forward_max_request_size: int
    forward_timeout: float
    max_attribute_length: int = DEFAULT_MAX_VALUE_LENGTH


class Pipeline:
    """Tags and forwards export requests; safe to call from many threads."""

    def __init__(
        self, catalog: Catalog, sink: Sink, limits: Limits, telemetry: Telemetry | None = None
    ) -> None:
        self.limits = limits
        self.use_catalog(catalog)
        self.sink = sink
        self.telemetry = telemetry or Telemetry()
        self._malformed_warning = RateLimitedWarning(
            logger,
            "records looked like Falco alerts but could not be read; they were forwarded untouched",
            _WARN_INTERVAL_SECONDS,
        )
        self.downstream_warning = RateLimitedWarning(
            logger,
            "requests failed at the next hop",
            _WARN_INTERVAL_SECONDS,
        )
        self._rules: tuple[Catalog | None, dict[str, dict[str, str]]] = (None, {})

    def use_catalog(self, catalog: Catalog) -> None:
        """Serve the next requests with ``catalog``; those in flight keep their tagger.

        One attribute assignment, so a request sees either the old tagger or
        the new one, never a mix.
        """
        tagger = Tagger(
            catalog, self.limits.max_attribute_length, self.limits.forward_max_request_size
        )
        self._wire = WireTagger(tagger)

    @property
    def tagger(self) -> Tagger:
        """The tagger serving new requests."""
        return self._wire.tagger

    def export(self, raw: bytes, timeout: float | None = None, protocol: str = "grpc") -> Outcome:
        """Process one serialized ExportLogsServiceRequest and return the upstream's answer."""
        started = time.perf_counter()
        transport = {TRANSPORT: protocol}
        self.telemetry.requests_received.add(1, transport)
        self.telemetry.request_size.record(len(raw), transport)

        outcome = self._export(raw, timeout, transport)

        self.telemetry.request_duration.record(time.perf_counter() - started, transport)
        return outcome

    def _export(self, raw: bytes, timeout: float | None, transport: dict[str, str]) -> Outcome:
        if not raw:
            return ok(_EMPTY_RESPONSE)

        # One read of the attribute: a catalog reload cannot change it mid-request.
        wire = self._wire
        tagger = wire.tagger
        small = len(raw) <= self.limits.forward_max_request_size
        if small:
            outcome = self._export_wire(wire, raw, timeout, transport)
            if outcome is not None:
                return outcome

        try:
            request = ExportLogsServiceRequest.FromString(raw)
        except (DecodeError, RecursionError) as exc:
            self.telemetry.refused(REFUSED_BAD_DATA, transport[TRANSPORT])
            return invalid(f"request is not a valid ExportLogsServiceRequest: {exc}")

        try:
            tally = tagger.tag(request)
        except Exception:
            # Tagging is best effort; the records themselves must still go on.
            logger.exception("tagging failed; forwarding the request as received")
            return self._send([raw], timeout, records=None)
        self._count(tally, transport)
        if tally.tagged or not small:
            pieces = split_request(request, self.limits.forward_max_request_size)
        else:
            pieces = [raw]
        return self._send(pieces, timeout, records=tally.records)

    def _export_wire(
        self, wire: WireTagger, raw: bytes, timeout: float | None, transport: dict[str, str]
    ) -> Outcome | None:
        """Tag and forward without decoding the request; None when it must be decoded."""
        try:
            tagged = wire.tag(raw)
        except WireError:
            return None
        except Exception:
            # Tagging is best effort; the records themselves must still go on.
            logger.exception("tagging failed; forwarding the request as received")
            return self._send([raw], timeout, records=None, undecoded=True)
        if tagged is None:
            records = count_records(raw)
            if records is not None:
                self.telemetry.records_received.add(records, transport)
            return self._send([raw], timeout, records=records, undecoded=True)

        payload, tally = tagged
        try:
            pieces = split_serialized(payload, self.limits.forward_max_request_size)
        except WireError:
            return None
        self._count(tally, transport)
        return self._send(pieces, timeout, records=tally.records, undecoded=True)

    def _send(
        self,
        pieces: list[bytes],
        timeout: float | None,
        records: int | None,
        undecoded: bool = False,
    ) -> Outcome:
        budget = (
            self.limits.forward_timeout
            if timeout is None
            else min(timeout, self.limits.forward_timeout)
        )
        deadline = time.monotonic() + budget
        rejected = 0
        messages: list[str] = []
        for piece in pieces:
            started = time.perf_counter()
            outcome = self.sink.send(piece, max(deadline - time.monotonic(), 0.001))
            elapsed = time.perf_counter() - started
            if not outcome.ok:
                failure = {ERROR_TYPE: outcome.code.name}
                self.telemetry.downstream_duration.record(elapsed, failure)
                self.telemetry.downstream_failures.add(1, failure)
                self.downstream_warning.add(1, outcome.message, outcome.code.name)
                if undecoded and outcome.code not in RETRYABLE_CODES:
                    return _blame_undecodable(piece, outcome)
                return outcome
            self.telemetry.downstream_duration.record(elapsed)
            partial = ExportLogsServiceResponse.FromString(outcome.response).partial_success
            rejected += partial.rejected_log_records
            if partial.error_message:
                messages.append(partial.error_message)

        if records is not None:
            self.telemetry.records_forwarded.add(records - rejected)
        if len(pieces) == 1:
            return outcome
        response = ExportLogsServiceResponse()
        if rejected or messages:
            response.partial_success.rejected_log_records = rejected
            response.partial_success.error_message = "; ".join(messages)
        return Outcome(grpc.StatusCode.OK, response=response.SerializeToString())

    def flush_warnings(self) -> None:
        """Log the per-record problems counted since the last warning."""
        self._malformed_warning.flush()
        self.downstream_warning.flush()

    def _count(self, tally: TagTally, transport: dict[str, str]) -> None:
        self.telemetry.records_received.add(tally.records, transport)
        for detection_id, count in tally.tagged.items():
            self.telemetry.records_tagged.add(count, self._rule_attributes(detection_id))
        for (detection_id, rule), count in tally.suppressed.items():
            attributes = {**self._rule_attributes(detection_id), SUPPRESSION_RULE: rule}
            self.telemetry.records_suppressed.add(count, attributes)
        self.telemetry.detections.record(tally)
        if tally.oversize:
            self.telemetry.records_untagged_oversize.add(tally.oversize)
        if tally.malformed:
            self.telemetry.records_malformed.add(tally.malformed)
            self._malformed_warning.add(tally.malformed, tally.last_error)

    def _rule_attributes(self, detection_id: str) -> dict[str, str]:
        """The metric attributes naming a detection, rebuilt when the catalog changes."""
        catalog, rules = self._rules
        if catalog is not self.tagger.catalog:
            catalog = self.tagger.catalog
            rules = {d.id: {RULE_UUID: d.id, RULE_NAME: d.name} for d in catalog.detections}
            self._rules = (catalog, rules)
        return rules.get(detection_id) or {RULE_UUID: detection_id}


def _blame_undecodable(raw: bytes, outcome: Outcome) -> Outcome:
    """INVALID_ARGUMENT when the next hop refused bytes that are not a request at all.

    Requests without a candidate record are forwarded without being decoded;
    a next hop that cannot decode them may answer INTERNAL or UNKNOWN, which
    would misstate the fault. Decoding happens only here, on that failure.
    """
    try:
        ExportLogsServiceRequest.FromString(raw)
    except (DecodeError, RecursionError) as exc:
        return invalid(f"request is not a valid ExportLogsServiceRequest: {exc}")
    return outcome
