"""The counting sink every pipeline under test forwards to.

It accepts OTLP/gRPC log exports, counts the records and the tagged records
that arrived, and answers ``/bench.Sink/Stats`` with those counts as JSON and
``/bench.Sink/Last`` with the last request it received.

Run: ``python -m bench.sink --listen 127.0.0.1:PORT``
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
import time
from concurrent import futures

import grpc
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)

LOGS_SERVICE = "opentelemetry.proto.collector.logs.v1.LogsService"
STATS_SERVICE = "bench.Sink"
# A tagged record carries the attribute key "risk_score": KeyValue field 1
# (tag 0x0a), length 10, then the key.
TAGGED_MARK = b"\x0a\x0arisk_score"
_EMPTY = ExportLogsServiceResponse().SerializeToString()


class Counts:
    """Records and requests received so far, and when the last one arrived."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = 0
        self.records = 0
        self.tagged = 0
        self.last_arrival = 0.0
        self.last_request = b""

    def add(self, raw: bytes, records: int, tagged: int) -> None:
        now = time.monotonic()
        with self._lock:
            self.last_request = raw
            self.requests += 1
            self.records += records
            self.tagged += tagged
            self.last_arrival = now

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            return {
                "requests": self.requests,
                "records": self.records,
                "tagged": self.tagged,
                "last_arrival": self.last_arrival,
            }


def count_records(raw: bytes) -> int:
    """Log records in a serialized ExportLogsServiceRequest."""
    request = ExportLogsServiceRequest.FromString(raw)
    return sum(
        len(scope_logs.log_records)
        for resource_logs in request.resource_logs
        for scope_logs in resource_logs.scope_logs
    )


def build_server(listen: str, counts: Counts) -> tuple[grpc.Server, int]:
    """A gRPC server with the Export and Stats methods; not yet started."""

    def export(raw: bytes, context: grpc.ServicerContext) -> bytes:
        counts.add(raw, count_records(raw), raw.count(TAGGED_MARK))
        return _EMPTY

    def stats(raw: bytes, context: grpc.ServicerContext) -> bytes:
        return json.dumps(counts.snapshot()).encode()

    def last(raw: bytes, context: grpc.ServicerContext) -> bytes:
        return counts.last_request

    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=16),
        options=[
            ("grpc.max_receive_message_length", 256 << 20),
            ("grpc.max_send_message_length", 256 << 20),
            ("grpc.so_reuseport", 0),
        ],
    )
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                LOGS_SERVICE, {"Export": grpc.unary_unary_rpc_method_handler(export)}
            ),
            grpc.method_handlers_generic_handler(
                STATS_SERVICE,
                {
                    "Stats": grpc.unary_unary_rpc_method_handler(stats),
                    "Last": grpc.unary_unary_rpc_method_handler(last),
                },
            ),
        )
    )
    port = server.add_insecure_port(listen)
    return server, port


def read_stats(channel: grpc.Channel) -> dict[str, float]:
    """The sink's counts, through a channel to it."""
    call = channel.unary_unary(f"/{STATS_SERVICE}/Stats")
    result: dict[str, float] = json.loads(call(b"", timeout=10))
    return result


def read_last(channel: grpc.Channel) -> bytes:
    """The last request the sink received (empty before the first)."""
    call = channel.unary_unary(f"/{STATS_SERVICE}/Last")
    last: bytes = call(b"", timeout=10)
    return last


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--listen", required=True, metavar="HOST:PORT")
    args = parser.parse_args()

    server, _ = build_server(args.listen, Counts())
    server.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.stop(1).wait(2)


if __name__ == "__main__":
    main()
