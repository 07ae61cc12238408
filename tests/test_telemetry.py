"""Tests for the metrics the request path records, read back through the real SDK."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)

from falco_risk.catalog import load_catalog
from falco_risk.outcome import Outcome, ok, retry_later
from falco_risk.pipeline import Limits, Pipeline
from falco_risk.rate_limited import RateLimitedWarning
from falco_risk.record_count import count_records
from falco_risk.telemetry import catalog_version
from metric_reading import Recorded, attrs, recorded
from otlp_builders import falco_json, request_with

SHELL = falco_json(
    "10:00:00.0: Notice A shell was spawned in a container with an attached terminal",
    **{"user.name": "root", "container.name": "web"},
)
BROKEN = SHELL[:-30]
SEED_UUID = "d2feef92-d54a-4a19-8306-b47c6ceba5b2"
SEED_NAME = "Kubernetes Falco Shell Spawned"
README = Path(__file__).parent.parent / "README.md"


class QueueSink:
    """Answers sends with prepared outcomes, then with OK."""

    endpoint = "memory"

    def __init__(self, *answers: Outcome) -> None:
        self.sent: list[bytes] = []
        self._answers = list(answers)

    def send(self, payload: bytes, timeout: float) -> Outcome:
        self.sent.append(payload)
        return self._answers.pop(0) if self._answers else ok(b"")

    def close(self) -> None:
        pass


def pipeline_with(metrics: Recorded, sink: QueueSink, forward_max: int = 4 << 20) -> Pipeline:
    return Pipeline(load_catalog(), sink, Limits(forward_max, 5.0), metrics.telemetry)


def test_tagged_request_counts_records_by_transport_and_detection() -> None:
    """A request with one alert and one plain record counts 2 received, 1 tagged, 2 forwarded."""
    metrics = recorded()
    raw = request_with(SHELL, "plain").SerializeToString()

    pipeline_with(metrics, QueueSink()).export(raw, protocol="http")

    assert metrics.points("falco_risk.requests.received") == {attrs(transport="http"): 1}
    assert metrics.points("falco_risk.records.received") == {attrs(transport="http"): 2}
    assert metrics.points("falco_risk.records.tagged") == {
        attrs(security_rule__uuid=SEED_UUID, security_rule__name=SEED_NAME): 1
    }
    assert metrics.points("falco_risk.records.forwarded") == {attrs(): 2}
    (size,) = metrics.histogram("falco_risk.request.size").values()
    assert (size.count, size.sum) == (1, len(raw))
    (duration,) = metrics.histogram("falco_risk.request.duration").values()
    assert duration.count == 1
    (round_trip,) = metrics.histogram("falco_risk.downstream.duration").values()
    assert round_trip.count == 1


def test_request_without_candidates_still_counts_its_records() -> None:
    """The fast path, which never decodes, counts received and forwarded records."""
    metrics = recorded()
    sink = QueueSink()
    raw = request_with(*[f"line {i}" for i in range(7)]).SerializeToString()

    pipeline_with(metrics, sink).export(raw)

    assert sink.sent[0] is raw
    assert metrics.points("falco_risk.records.received") == {attrs(transport="grpc"): 7}
    assert metrics.points("falco_risk.records.forwarded") == {attrs(): 7}
    assert "falco_risk.records.tagged" not in metrics.units()


def test_downstream_failure_is_counted_by_code_and_nothing_forwarded() -> None:
    """A failed send counts one failure with its code and no forwarded record."""
    metrics = recorded()
    sink = QueueSink(retry_later("next hop down", 1.0))

    pipeline_with(metrics, sink).export(request_with(SHELL).SerializeToString())

    assert metrics.points("falco_risk.downstream.failures") == {attrs(error__type="UNAVAILABLE"): 1}
    assert "falco_risk.records.forwarded" not in metrics.units()
    (round_trip,) = metrics.histogram("falco_risk.downstream.duration")
    assert round_trip == attrs(error__type="UNAVAILABLE")


def test_partial_success_counts_only_accepted_records() -> None:
    """Records the next hop rejected in partial_success are not counted as forwarded."""
    metrics = recorded()
    answer = ExportLogsServiceResponse()
    answer.partial_success.rejected_log_records = 2
    sink = QueueSink(ok(answer.SerializeToString()))

    pipeline_with(metrics, sink).export(request_with(SHELL, "a", "b").SerializeToString())

    assert metrics.points("falco_risk.records.forwarded") == {attrs(): 1}


def test_unreadable_alerts_are_counted_as_malformed() -> None:
    """A candidate record that is not a readable alert counts as malformed, not tagged."""
    metrics = recorded()

    pipeline_with(metrics, QueueSink()).export(request_with(BROKEN, SHELL).SerializeToString())

    assert metrics.points("falco_risk.records.malformed") == {attrs(): 1}
    assert sum(metrics.points("falco_risk.records.tagged").values()) == 1


def test_undecodable_request_is_refused_as_bad_data() -> None:
    """Bytes with a needle that are not a request count as refused with error.type bad_data."""
    metrics = recorded()

    outcome = pipeline_with(metrics, QueueSink()).export(
        b"\xff\xff A shell was spawned in a container", protocol="http"
    )

    assert outcome.code is grpc.StatusCode.INVALID_ARGUMENT
    assert metrics.points("falco_risk.requests.refused") == {
        attrs(error__type="bad_data", transport="http"): 1
    }


def test_observed_gauges_report_in_flight_and_catalog() -> None:
    """The gauges read requests in flight and the catalog's size and version at collection."""
    metrics = recorded()
    catalog = load_catalog()
    in_flight = [3]
    metrics.telemetry.observe(lambda: in_flight[0], lambda: catalog)

    first = metrics.points("falco_risk.requests.active")
    in_flight[0] = 0
    second = metrics.points("falco_risk.requests.active")

    assert first == {attrs(): 3}
    assert second == {attrs(): 0}
    assert metrics.points("falco_risk.catalog.detections") == {
        attrs(falco_risk__catalog__version=catalog_version(catalog)): 1
    }


def test_catalog_version_changes_with_the_detections() -> None:
    """The version fingerprint is stable for one catalog and differs for another."""
    seed = load_catalog()
    empty = type(seed)(())

    assert catalog_version(seed) == catalog_version(load_catalog())
    assert catalog_version(seed) != catalog_version(empty)


@pytest.mark.parametrize("shape", [(1, 1, 0), (1, 1, 5), (3, 2, 4), (2, 0, 0)])
def test_count_records_matches_a_full_decode(shape: tuple[int, int, int]) -> None:
    """The skeleton count equals the number of records protobuf decodes."""
    resources, scopes, per_scope = shape
    request = ExportLogsServiceRequest()
    for _ in range(resources):
        resource_logs = request.resource_logs.add()
        resource_logs.resource.attributes.add(key="k").value.string_value = "v"
        for _ in range(scopes):
            scope_logs = resource_logs.scope_logs.add()
            for index in range(per_scope):
                scope_logs.log_records.add().body.string_value = f"record {index}"

    counted = count_records(request.SerializeToString())

    assert counted == resources * scopes * per_scope


def test_count_records_of_garbage_is_none() -> None:
    """Bytes that are not protobuf give no count instead of an error."""
    assert count_records(b"\xff\xff\xff") is None


def test_rate_limited_warning_summarises_by_kind_once_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The first problem is logged; the rest wait for the interval and come as one line."""
    now = [100.0]
    warning = RateLimitedWarning(
        logging.getLogger("test"), "requests failed", 60.0, clock=lambda: now[0]
    )
    caplog.set_level(logging.WARNING)

    warning.add(1, "first", "UNAVAILABLE")
    for _ in range(5):
        warning.add(1, "again", "UNAVAILABLE")
    warning.add(1, "slow", "DEADLINE_EXCEEDED")
    lines_before_interval = len(caplog.records)
    now[0] += 61
    warning.add(1, "later", "UNAVAILABLE")

    messages = [record.getMessage() for record in caplog.records]
    assert lines_before_interval == 1
    assert messages == [
        "requests failed: 1 (UNAVAILABLE=1); last: first",
        "requests failed: 7 (DEADLINE_EXCEEDED=1, UNAVAILABLE=6); last: later",
    ]


def test_rate_limited_warning_flush_reports_what_is_pending(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Problems counted since the last line are reported on flush, and only once."""
    warning = RateLimitedWarning(logging.getLogger("test"), "records unreadable", 60.0)
    caplog.set_level(logging.WARNING)
    warning.add(2, "first")
    warning.add(3, "second")

    warning.flush()
    warning.flush()

    assert [r.getMessage() for r in caplog.records] == [
        "records unreadable: 2; last: first",
        "records unreadable: 3; last: second",
    ]


def test_readme_documents_every_metric_with_its_unit() -> None:
    """Each metric the SDK reports appears in the README's Self-monitoring table with its unit."""
    metrics = recorded()
    catalog = load_catalog()
    metrics.telemetry.observe(lambda: 0, lambda: catalog)
    sink = QueueSink(retry_later("down", 1.0))
    pipeline = pipeline_with(metrics, sink)
    pipeline.export(request_with(SHELL).SerializeToString())
    pipeline.export(request_with(SHELL, BROKEN).SerializeToString())
    pipeline.export(b"\xff\xff A shell was spawned in a container")
    metrics.telemetry.records_suppressed.add(1, {"falco_risk.suppression.rule": "r"})
    metrics.telemetry.catalog_reloads.add(1, {"result": "loaded"})

    section = README.read_text(encoding="utf-8").split("## Self-monitoring", 1)[1]
    section = section.split("\n## ", 1)[0]
    row = r"^\| `(falco_risk\.[a-z_.]+)` \| [a-z -]+ \| `([^`]+)` \|"
    documented = dict(re.findall(row, section, re.MULTILINE))

    assert metrics.units() == documented
