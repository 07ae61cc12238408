"""Check that the tagging pipelines add exactly the attributes falco-risk's reference path adds.

One request of mixed records is sent to each pipeline; what reaches the sink
is compared, record by record (matched by body), with decoding the request
and tagging it with falco_risk.tagger.Tagger in this process.
"""

from __future__ import annotations

import time

import grpc
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from bench.pipelines import EXPORT, Process, start
from bench.sink import read_last, read_stats
from bench.workload import Mix, build_requests
from falco_risk.catalog import load_catalog
from falco_risk.otlp_values import kvlist_to_dict, to_python
from falco_risk.tagger import Tagger

TAGGING = ("rotel+python", "falco-risk")
_MIX = Mix("verify", 0.5)
_RECORDS = 40
_ARRIVAL_TIMEOUT_SECONDS = 30.0

Tagged = dict[str, dict[str, object]]


def check(sink: Process, sink_channel: grpc.Channel, pipelines: tuple[str, ...]) -> dict[str, str]:
    """For each tagging pipeline: "identical", or what differed from the reference."""
    raw = build_requests(_MIX, _RECORDS, count=1)[0]
    reference = ExportLogsServiceRequest.FromString(raw)
    Tagger(load_catalog()).tag(reference)
    expected = by_body(reference)

    verdicts = {}
    for name in pipelines:
        if name not in TAGGING:
            continue
        forwarded = _through(name, raw, sink, sink_channel)
        verdicts[name] = _compare(expected, by_body(forwarded))
    return verdicts


def by_body(request: ExportLogsServiceRequest) -> Tagged:
    """Each record's attributes, keyed by its body text."""
    return {
        str(to_python(record.body)): kvlist_to_dict(record.attributes)
        for resource_logs in request.resource_logs
        for scope_logs in resource_logs.scope_logs
        for record in scope_logs.log_records
    }


def _through(
    name: str, raw: bytes, sink: Process, sink_channel: grpc.Channel
) -> ExportLogsServiceRequest:
    before = read_stats(sink_channel)["records"]
    process = start(name, sink.endpoint)
    try:
        with grpc.insecure_channel(process.endpoint) as channel:
            channel.unary_unary(EXPORT)(raw, timeout=30)
        deadline = time.monotonic() + _ARRIVAL_TIMEOUT_SECONDS
        while read_stats(sink_channel)["records"] < before + _RECORDS:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not deliver the verification request")
            time.sleep(0.05)
        return ExportLogsServiceRequest.FromString(read_last(sink_channel))
    finally:
        process.stop()


def _compare(expected: Tagged, actual: Tagged) -> str:
    if actual.keys() != expected.keys():
        return f"records differ: {len(actual)} forwarded, {len(expected)} sent"
    for body, attributes in expected.items():
        if actual[body] != attributes:
            missing = sorted(set(attributes) - set(actual[body]))
            extra = sorted(set(actual[body]) - set(attributes))
            changed = sorted(
                k for k in set(attributes) & set(actual[body]) if attributes[k] != actual[body][k]
            )
            return f"attributes differ (missing {missing}, extra {extra}, changed {changed})"
    return "identical"
