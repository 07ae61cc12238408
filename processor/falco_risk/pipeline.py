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
import threading
import time
from dataclasses import dataclass

import grpc
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)

from falco_risk.catalog import Catalog
from falco_risk.forwarder import Sink
from falco_risk.outcome import Outcome, invalid, ok
from falco_risk.split import split_request, split_serialized
from falco_risk.tagger import Tagger, TagTally
from falco_risk.telemetry import Telemetry
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


class Pipeline:
    """Tags and forwards export requests; safe to call from many threads."""

    def __init__(
        self, catalog: Catalog, sink: Sink, limits: Limits, telemetry: Telemetry | None = None
    ) -> None:
        self.tagger = Tagger(catalog)
        self._wire = WireTagger(self.tagger)
        self.sink = sink
        self.limits = limits
        self.telemetry = telemetry or Telemetry()
        self._malformed_warning = _RateLimitedWarning(_WARN_INTERVAL_SECONDS)

    def export(self, raw: bytes, timeout: float | None = None, protocol: str = "grpc") -> Outcome:
        """Process one serialized ExportLogsServiceRequest and return the upstream's answer."""
        self.telemetry.requests.add(1, {"protocol": protocol})
        if not raw:
            return ok(_EMPTY_RESPONSE)

        tagger = self.tagger
        small = len(raw) <= self.limits.forward_max_request_size
        if small:
            outcome = self._export_wire(raw, timeout, protocol)
            if outcome is not None:
                return outcome

        try:
            request = ExportLogsServiceRequest.FromString(raw)
        except (DecodeError, RecursionError) as exc:
            self.telemetry.requests_refused.add(1, {"reason": "bad_data"})
            return invalid(f"request is not a valid ExportLogsServiceRequest: {exc}")

        try:
            tally = tagger.tag(request)
        except Exception:
            # Tagging is best effort; the records themselves must still go on.
            logger.exception("tagging failed; forwarding the request as received")
            return self._send([raw], timeout, records=None)
        self._count(tally, protocol)
        if tally.tagged or not small:
            pieces = split_request(request, self.limits.forward_max_request_size)
        else:
            pieces = [raw]
        return self._send(pieces, timeout, records=tally.records)

    def _export_wire(self, raw: bytes, timeout: float | None, protocol: str) -> Outcome | None:
        """Tag and forward without decoding the request; None when it must be decoded."""
        try:
            tagged = self._wire.tag(raw)
        except WireError:
            return None
        except Exception:
            logger.exception("tagging failed; forwarding the request as received")
            return self._send([raw], timeout, records=None)
        if tagged is None:
            return self._send([raw], timeout, records=None)

        payload, tally = tagged
        try:
            pieces = split_serialized(payload, self.limits.forward_max_request_size)
        except WireError:
            return None
        self._count(tally, protocol)
        return self._send(pieces, timeout, records=tally.records)

    def _send(self, pieces: list[bytes], timeout: float | None, records: int | None) -> Outcome:
        budget = (
            self.limits.forward_timeout
            if timeout is None
            else min(timeout, self.limits.forward_timeout)
        )
        deadline = time.monotonic() + budget
        rejected = 0
        messages: list[str] = []
        for piece in pieces:
            outcome = self.sink.send(piece, max(deadline - time.monotonic(), 0.001))
            if not outcome.ok:
                self.telemetry.downstream_failures.add(1, {"code": outcome.code.name})
                return outcome
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

    def _count(self, tally: TagTally, protocol: str) -> None:
        self.telemetry.records_received.add(tally.records, {"protocol": protocol})
        for detection_id, count in tally.tagged.items():
            self.telemetry.records_tagged.add(count, {"detection": detection_id})
        if tally.malformed:
            self.telemetry.records_malformed.add(tally.malformed)
            self._malformed_warning.add(tally.malformed, tally.last_error)


class _RateLimitedWarning:
    """Summarises per-record problems in at most one log line per interval."""

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._lock = threading.Lock()
        self._pending = 0
        self._next = 0.0

    def add(self, count: int, example: str) -> None:
        with self._lock:
            self._pending += count
            now = time.monotonic()
            if now < self._next:
                return
            pending, self._pending, self._next = self._pending, 0, now + self._interval
        logger.warning(
            "%d records looked like Falco alerts but could not be read; "
            "they were forwarded untouched (last problem: %s)",
            pending,
            example,
        )
