"""Senders that play the upstream collector: a status-recording retrier and the OTLP exporter."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable

import grpc
from opentelemetry._logs import LogRecord as ApiLogRecord
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2_grpc import LogsServiceStub
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk.resources import Resource

from falco_risk.outcome import RETRYABLE_CODES
from reliability.peers import ID_KEY
from reliability.records import SHELL_ALERT, batch


class RetryingSender:
    """Sends batches to an OTLP/gRPC endpoint as a collector would, noting every status.

    A retryable status (OTLP's list) is retried after a short pause; any
    other failure gives the batch up, which the figures then show as lost.
    """

    def __init__(self, endpoint: str, deadline: float = 10.0) -> None:
        self._channel = grpc.insecure_channel(endpoint)
        self._stub = LogsServiceStub(self._channel)
        self.deadline = deadline
        self.statuses: Counter[grpc.StatusCode] = Counter()
        self.acknowledged: list[str] = []
        self._lock = threading.Lock()

    def send(self, request: ExportLogsServiceRequest, ids: list[str], give_up: float) -> bool:
        """True once the endpoint accepted the batch; False when refused for good or out of time.

        At least one attempt is made, whatever ``give_up`` says.
        """
        while True:
            try:
                self._stub.Export(request, timeout=self.deadline)
            except grpc.RpcError as error:
                code = error.code()
                self._note(code)
                if code not in RETRYABLE_CODES or time.monotonic() >= give_up:
                    return False
                time.sleep(0.1)
                continue
            self._note(grpc.StatusCode.OK)
            with self._lock:
                self.acknowledged.extend(ids)
            return True

    def _note(self, code: grpc.StatusCode) -> None:
        with self._lock:
            self.statuses[code] += 1

    def close(self) -> None:
        self._channel.close()


def run_stream(
    prefix: str,
    batches: int,
    size: int,
    send: Callable[[ExportLogsServiceRequest, list[str]], object],
    pause: float = 0.02,
) -> tuple[threading.Thread, list[str]]:
    """Send ``batches`` batches on a thread; returns the thread and every id it will send."""
    planned = [batch(prefix, index, size) for index in range(batches)]
    ids = [record_id for _, batch_ids in planned for record_id in batch_ids]

    def loop() -> None:
        for request, batch_ids in planned:
            send(request, batch_ids)
            time.sleep(pause)

    thread = threading.Thread(target=loop, name=f"stream-{prefix}", daemon=True)
    thread.start()
    return thread, ids


class ExporterStream:
    """The OpenTelemetry Python OTLP/gRPC log exporter, which retries within its timeout."""

    def __init__(self, endpoint: str, timeout: float = 30.0) -> None:
        self._exporter = OTLPLogExporter(endpoint=endpoint, insecure=True, timeout=timeout)
        self._resource = Resource.create({"service.name": "falco"})
        self.failed: list[str] = []

    def send(self, request: ExportLogsServiceRequest, ids: list[str]) -> None:
        records = [
            ReadableLogRecord(
                ApiLogRecord(
                    body=SHELL_ALERT if n % 2 == 0 else f"plain log line {n}",
                    attributes={ID_KEY: record_id},
                ),
                self._resource,
            )
            for n, record_id in enumerate(ids)
        ]
        if self._exporter.export(records).name != "SUCCESS":
            self.failed.extend(ids)

    def close(self) -> None:
        self._exporter.shutdown()
