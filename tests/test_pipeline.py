"""Tests for the request path: fast path, tagging, splitting and answers."""

from __future__ import annotations

import grpc
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)

from falco_risk.catalog import load_catalog
from falco_risk.outcome import Outcome, ok, retry_later
from falco_risk.pipeline import Limits, Pipeline
from falco_risk.tagger import Tagger
from otlp_builders import attributes, falco_json, records, request_with

SHELL = falco_json(
    "10:00:00.0: Notice A shell was spawned in a container with an attached terminal",
    **{"user.name": "root", "container.name": "web"},
)


class RecordingSink:
    """Keeps what it is sent and answers with a queue of prepared outcomes."""

    endpoint = "memory"

    def __init__(self, *answers: Outcome) -> None:
        self.sent: list[bytes] = []
        self.timeouts: list[float] = []
        self._answers = list(answers)

    def send(self, payload: bytes, timeout: float) -> Outcome:
        self.sent.append(payload)
        self.timeouts.append(timeout)
        return self._answers.pop(0) if self._answers else ok(b"")

    def close(self) -> None:
        pass


def make_pipeline(sink: RecordingSink, forward_max: int = 4 << 20) -> Pipeline:
    return Pipeline(load_catalog(), sink, Limits(forward_max, forward_timeout=5.0))


def test_request_without_candidates_is_forwarded_as_the_bytes_received() -> None:
    """No needle in the bytes: the very same bytes go to the next hop."""
    sink = RecordingSink()
    raw = request_with("plain log line", "another").SerializeToString()

    outcome = make_pipeline(sink).export(raw)

    assert outcome.ok
    assert sink.sent == [raw]
    assert sink.sent[0] is raw


def test_candidate_without_match_is_forwarded_unchanged() -> None:
    """A phrase in a non-Falco record leads to decoding but not to a change."""
    sink = RecordingSink()
    raw = request_with("someone wrote: a shell was spawned in a container").SerializeToString()

    make_pipeline(sink).export(raw)

    assert sink.sent == [raw]


def test_matching_request_is_forwarded_tagged() -> None:
    """The forwarded request carries the tags; everything else stays as it came."""
    sink = RecordingSink()
    request = request_with("plain", SHELL)

    make_pipeline(sink).export(request.SerializeToString())

    (sent,) = sink.sent
    forwarded = ExportLogsServiceRequest.FromString(sent)
    plain, shell = records(forwarded)
    assert plain == records(request)[0]
    assert attributes(shell)["risk_message"] == (
        "A shell is spawned in the container web by user root."
    )
    assert shell.body == records(request)[1].body
    assert shell.trace_id == records(request)[1].trace_id
    assert forwarded.resource_logs[0].resource == request.resource_logs[0].resource


def test_empty_request_succeeds_without_forwarding() -> None:
    """An empty export is a success and nothing is sent."""
    sink = RecordingSink()

    outcome = make_pipeline(sink).export(b"")

    assert outcome.ok
    assert sink.sent == []


def test_undecodable_candidate_is_invalid_argument() -> None:
    """Bytes that hold the phrase but are not protobuf get INVALID_ARGUMENT."""
    sink = RecordingSink()

    outcome = make_pipeline(sink).export(b"\xff\xff A shell was spawned in a container")

    assert outcome.code is grpc.StatusCode.INVALID_ARGUMENT
    assert sink.sent == []


def test_retryable_downstream_failure_is_passed_up_as_retry_later() -> None:
    """The next hop's UNAVAILABLE comes back as UNAVAILABLE with a delay."""
    sink = RecordingSink(retry_later("down", 2.0))

    outcome = make_pipeline(sink).export(request_with(SHELL).SerializeToString())

    assert outcome.code is grpc.StatusCode.UNAVAILABLE
    assert outcome.retry_after == 2.0


def test_partial_success_of_a_single_request_is_passed_through() -> None:
    """The next hop's partial_success reaches the upstream unchanged."""
    response = ExportLogsServiceResponse()
    response.partial_success.rejected_log_records = 1
    response.partial_success.error_message = "one too old"
    sink = RecordingSink(ok(response.SerializeToString()))

    outcome = make_pipeline(sink).export(request_with(SHELL).SerializeToString())

    assert ExportLogsServiceResponse.FromString(outcome.response) == response


def test_oversized_request_is_split_and_answered_after_every_piece() -> None:
    """A request over the next hop's limit goes in pieces; rejections are summed."""
    partial = ExportLogsServiceResponse()
    partial.partial_success.rejected_log_records = 2
    partial.partial_success.error_message = "bad"
    sink = RecordingSink(ok(partial.SerializeToString()), ok(b""), ok(partial.SerializeToString()))
    request = request_with(*[SHELL] * 60)

    outcome = make_pipeline(sink, forward_max=16 * 1024).export(request.SerializeToString())

    assert outcome.ok
    assert len(sink.sent) >= 3
    forwarded = [r for p in sink.sent for r in records(ExportLogsServiceRequest.FromString(p))]
    assert len(forwarded) == 60
    assert all("risk_score" in attributes(r) for r in forwarded)
    summary = ExportLogsServiceResponse.FromString(outcome.response).partial_success
    assert summary.rejected_log_records == 4


def test_failure_of_one_piece_fails_the_request() -> None:
    """The upstream hears success only when every piece was accepted."""
    sink = RecordingSink(ok(b""), retry_later("down", 1.0))
    request = request_with(*["x" * 1000] * 40)

    outcome = make_pipeline(sink, forward_max=8 * 1024).export(request.SerializeToString())

    assert outcome.code is grpc.StatusCode.UNAVAILABLE
    assert len(sink.sent) == 2


def test_upstream_deadline_bounds_the_forward_timeout() -> None:
    """The next hop is given no more time than the upstream left us."""
    sink = RecordingSink()

    make_pipeline(sink).export(request_with("x").SerializeToString(), timeout=0.5)

    assert 0 < sink.timeouts[0] <= 0.5


def test_tagged_request_is_the_bytes_decoding_and_encoding_give() -> None:
    """Tagging from the wire forwards exactly what decoding, tagging and encoding produce."""
    sink = RecordingSink()
    request = request_with("plain", SHELL, "GET / 200", SHELL)
    expected = ExportLogsServiceRequest()
    expected.CopyFrom(request)
    Tagger(load_catalog()).tag(expected)

    make_pipeline(sink).export(request.SerializeToString())

    assert sink.sent == [expected.SerializeToString()]


def test_request_that_grows_past_the_limit_when_tagged_is_split() -> None:
    """A request that fits before tagging but not after goes in pieces, every record tagged."""
    sink = RecordingSink()
    raw = request_with(*[SHELL] * 20).SerializeToString()

    make_pipeline(sink, forward_max=len(raw) + 100).export(raw)

    assert len(sink.sent) >= 2
    assert all(len(piece) <= len(raw) + 100 for piece in sink.sent)
    forwarded = [r for p in sink.sent for r in records(ExportLogsServiceRequest.FromString(p))]
    assert len(forwarded) == 20
    assert all("risk_score" in attributes(r) for r in forwarded)


def test_records_without_a_needle_are_forwarded_unread() -> None:
    """A record holding no needle is not read: bytes invalid as protobuf text pass as received."""
    sink = RecordingSink()
    raw = request_with("caf\u00e9 log line", SHELL).SerializeToString()
    broken = raw.replace("caf\u00e9".encode(), b"caf\xff\xfe")

    outcome = make_pipeline(sink).export(broken)

    assert outcome.ok
    (sent,) = sink.sent
    assert b"caf\xff\xfe" in sent
    assert b"risk_score" in sent
