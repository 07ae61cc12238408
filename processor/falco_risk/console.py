"""The embedded default sink: each request, tagged, as one OTLP JSON line on stdout."""

from __future__ import annotations

import sys
import threading
from typing import TextIO

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)

from falco_risk import otlp_json
from falco_risk.outcome import Outcome, invalid, ok

_EMPTY_RESPONSE = ExportLogsServiceResponse().SerializeToString()


class ConsoleSink:
    """Writes requests to a stream, one line each, so ``falco-risk serve`` alone shows its work."""

    endpoint = "stdout"

    def __init__(self, stream: TextIO | None = None) -> None:
        # Resolved at each write, so a redirected sys.stdout is honoured.
        self._stream = stream
        self._lock = threading.Lock()

    def send(self, payload: bytes, timeout: float) -> Outcome:
        try:
            request = ExportLogsServiceRequest.FromString(payload)
        except DecodeError as exc:
            # Requests without a candidate arrive here undecoded; this is where
            # a corrupt one is first read.
            return invalid(f"request is not a valid ExportLogsServiceRequest: {exc}")
        line = otlp_json.dumps(request)
        stream = self._stream or sys.stdout
        with self._lock:
            stream.write(line + "\n")
            stream.flush()
        return ok(_EMPTY_RESPONSE)

    def close(self) -> None:
        with self._lock:
            (self._stream or sys.stdout).flush()
