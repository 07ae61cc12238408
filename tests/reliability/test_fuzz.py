"""A fuzz campaign on both endpoints of a running falco-risk, with good records mixed in.

Every answer must be a proper status (never INTERNAL, UNKNOWN or a dropped
connection), the process must stay up, and the well-formed records sent
between the hostile ones must reach the next hop tagged.
"""

from __future__ import annotations

import gzip
import http.client
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otlp_builders import attributes
from reliability.hostile import (
    NEEDLE,
    gzip_bomb,
    invalid_utf8_body,
    many_attributes,
    nested_body,
    request_with_body,
    truncated,
)
from reliability.peers import EXPORT, CaptureServer, FalcoRisk, wait_until
from reliability.records import Figures, batch

pytestmark = pytest.mark.timeout(300)

MAX_REQUEST_SIZE = 1 << 20
GRPC_ANSWERS = {"OK", "INVALID_ARGUMENT", "RESOURCE_EXHAUSTED"}
HTTP_ANSWERS = {200, 400, 413, 415}
EXAMPLES = 150


@dataclass
class Campaign:
    """A running falco-risk, its next hop, and the tally of what was tried."""

    falco_risk: FalcoRisk
    capture: CaptureServer
    channel: grpc.Channel
    tried: Counter[str] = field(default_factory=Counter)
    answers: Counter[str] = field(default_factory=Counter)
    good_ids: list[str] = field(default_factory=list)
    since_good: int = 0

    def grpc(self, payload: bytes, kind: str) -> str:
        export = self.channel.unary_unary(EXPORT)
        self.tried[f"grpc {kind}"] += 1
        try:
            export(payload, timeout=10)
            code = "OK"
        except grpc.RpcError as error:
            code = error.code().name
        self.answers[f"grpc {code}"] += 1
        self._interleave_good()
        return code

    def http(self, payload: bytes, kind: str, headers: dict[str, str]) -> int:
        self.tried[f"http {kind}"] += 1
        connection = http.client.HTTPConnection("127.0.0.1", self.falco_risk.http_port, timeout=10)
        try:
            connection.request("POST", "/v1/logs", body=payload, headers=headers)
            status = connection.getresponse().status
        finally:
            connection.close()
        self.answers[f"http {status}"] += 1
        self._interleave_good()
        return status

    def _interleave_good(self) -> None:
        # One well-formed request with a Falco alert after every tenth hostile one.
        self.since_good += 1
        if self.since_good < 10:
            return
        self.since_good = 0
        request, ids = batch("good", len(self.good_ids), 2)
        self.channel.unary_unary(EXPORT)(request.SerializeToString(), timeout=10)
        self.good_ids.extend(ids)


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Campaign]:
    capture = CaptureServer()
    workdir: Path = tmp_path_factory.mktemp("fuzz")
    falco_risk = FalcoRisk(
        workdir,
        forward_endpoint=capture.endpoint,
        max_request_size=MAX_REQUEST_SIZE,
        forward_max_request_size=MAX_REQUEST_SIZE // 4,
    ).start()
    channel = grpc.insecure_channel(
        falco_risk.grpc_endpoint, options=[("grpc.max_send_message_length", 8 << 20)]
    )
    state = Campaign(falco_risk, capture, channel)
    yield state
    channel.close()
    falco_risk.stop()
    capture.stop()


def protobuf_headers(encoding: str = "") -> dict[str, str]:
    headers = {"Content-Type": "application/x-protobuf"}
    if encoding:
        headers["Content-Encoding"] = encoding
    return headers


fuzz_settings = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)


@fuzz_settings
@given(payload=st.binary(max_size=4096), with_needle=st.booleans())
def test_random_bytes_get_a_proper_status(
    campaign: Campaign, payload: bytes, with_needle: bool
) -> None:
    """Random bytes are answered OK or INVALID_ARGUMENT (400), never INTERNAL."""
    if with_needle:
        payload = payload[: len(payload) // 2] + NEEDLE + payload[len(payload) // 2 :]

    code = campaign.grpc(payload, "random bytes")
    status = campaign.http(payload, "random bytes", protobuf_headers())

    assert code in GRPC_ANSWERS
    assert status in HTTP_ANSWERS


@fuzz_settings
@given(keep=st.floats(0.0, 1.0), size=st.integers(1, 40))
def test_truncated_requests_get_a_proper_status(campaign: Campaign, keep: float, size: int) -> None:
    """A valid request cut short is refused as invalid or, when still whole, accepted."""
    payload = truncated(batch("cut", size, size)[0], keep)

    code = campaign.grpc(payload, "truncated")
    status = campaign.http(payload, "truncated", protobuf_headers())

    assert code in {"OK", "INVALID_ARGUMENT"}
    assert status in {200, 400}


@settings(fuzz_settings, max_examples=30)
@given(depth=st.integers(1, 5000))
def test_deeply_nested_values_get_a_proper_status(campaign: Campaign, depth: int) -> None:
    """AnyValues nested past protobuf's recursion limit are INVALID_ARGUMENT, not a crash."""
    payload = request_with_body(nested_body(depth))

    code = campaign.grpc(payload, "nested AnyValue")
    status = campaign.http(payload, "nested AnyValue", protobuf_headers())

    assert code in {"OK", "INVALID_ARGUMENT"}
    assert status in {200, 400}
    if depth > 100:
        assert code == "INVALID_ARGUMENT"


@settings(fuzz_settings, max_examples=20)
@given(with_needle=st.booleans(), garbage=st.binary(min_size=1, max_size=8))
def test_invalid_utf8_strings_are_invalid_argument(
    campaign: Campaign, with_needle: bool, garbage: bytes
) -> None:
    """A string field that is not UTF-8 makes the request INVALID_ARGUMENT on both protocols."""
    payload = invalid_utf8_body(NEEDLE if with_needle else b"plain line")

    code = campaign.grpc(payload, "invalid UTF-8")
    status = campaign.http(payload, "invalid UTF-8", protobuf_headers())

    assert code == "INVALID_ARGUMENT"
    assert status == 400


@pytest.mark.parametrize(
    ("count", "code", "status"),
    [
        (10_000, "OK", 200),
        # One record of ~0.9 MiB: received, but larger than the next hop takes.
        (60_000, "RESOURCE_EXHAUSTED", 413),
        # Over max_request_size: refused on arrival.
        (100_000, "RESOURCE_EXHAUSTED", 413),
    ],
)
def test_huge_attribute_counts_get_a_proper_status(
    campaign: Campaign, count: int, code: str, status: int
) -> None:
    """A record with tens of thousands of attributes is processed, or refused by size."""
    payload = many_attributes(count)

    grpc_code = campaign.grpc(payload, "huge attribute count")
    http_status = campaign.http(payload, "huge attribute count", protobuf_headers())

    assert grpc_code == code
    assert http_status == status


@settings(fuzz_settings, max_examples=10)
@given(size=st.integers(MAX_REQUEST_SIZE + 1, 4 * MAX_REQUEST_SIZE))
def test_oversized_and_gzip_bomb_requests_are_refused_by_size(
    campaign: Campaign, size: int
) -> None:
    """Bodies over max_request_size, plain or after gzip inflation, get RESOURCE_EXHAUSTED / 413."""
    plain = b"\0" * size

    code = campaign.grpc(plain, "oversized")
    plain_status = campaign.http(plain, "oversized", protobuf_headers())
    bomb_status = campaign.http(gzip_bomb(size), "gzip bomb", protobuf_headers("gzip"))

    assert code == "RESOURCE_EXHAUSTED"
    assert plain_status == 413
    assert bomb_status == 413


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
otlp_keys = st.sampled_from(
    [
        "resourceLogs",
        "scopeLogs",
        "logRecords",
        "body",
        "stringValue",
        "attributes",
        "timeUnixNano",
        "traceId",
        "severityNumber",
        "kvlistValue",
        "values",
        "key",
        "value",
    ]
)


@fuzz_settings
@given(document=st.dictionaries(otlp_keys, json_values, max_size=4))
def test_otlp_json_with_wrong_types_gets_a_proper_status(
    campaign: Campaign, document: dict[str, object]
) -> None:
    """JSON whose OTLP keys hold values of the wrong type is accepted or refused with 400."""
    body = json.dumps({"resourceLogs": [{"scopeLogs": [{"logRecords": [document]}]}]}).encode()

    status = campaign.http(body, "OTLP JSON wrong types", {"Content-Type": "application/json"})

    assert status in {200, 400}


@fuzz_settings
@given(
    content_type=st.sampled_from(
        [
            "text/plain",
            "application/json",
            "application/x-protobuf",
            "application/grpc",
            "",
            "application/x-protobuf; charset=utf-8",
            "multipart/form-data",
        ]
    ),
    encoding=st.sampled_from(["", "gzip", "br", "deflate", "identity"]),
    payload=st.binary(max_size=512),
    compress=st.booleans(),
)
def test_content_types_and_encodings_get_a_proper_status(
    campaign: Campaign, content_type: str, encoding: str, payload: bytes, compress: bool
) -> None:
    """Any content type and encoding, matching the body or not, gets a 2xx or 4xx answer."""
    body = gzip.compress(payload) if compress else payload
    headers = {"Content-Type": content_type} if content_type else {}
    if encoding:
        headers["Content-Encoding"] = encoding

    status = campaign.http(body, "content type / encoding", headers)

    assert status in HTTP_ANSWERS


def test_zz_campaign_left_the_server_up_and_good_records_tagged(campaign: Campaign) -> None:
    """After the campaign the process still runs and every good record arrived tagged."""
    request, ids = batch("final", 0, 2)
    campaign.channel.unary_unary(EXPORT)(request.SerializeToString(), timeout=10)
    good = [*campaign.good_ids, *ids]

    wait_until(lambda: campaign.capture.ledger.has_all(good), 30, "the good records")

    assert campaign.falco_risk.proc is not None
    assert campaign.falco_risk.proc.poll() is None
    alerts = [i for i in good if i.endswith("-0")]
    assert all(attributes(campaign.capture.ledger.records[i])["risk_score"] == "49" for i in alerts)
    tried = sum(campaign.tried.values())
    figures = Figures.count("fuzz campaign: good records", good, campaign.capture.ledger.counts)
    figures.max_rss_kib = campaign.falco_risk.memory_kib()[1]
    figures.note = (
        f"{tried} hostile inputs tried: {dict(campaign.tried)}; answers {dict(campaign.answers)}"
    )
    figures.report()
    assert figures.lost == 0
    assert not any(key.endswith(("INTERNAL", "UNKNOWN")) for key in campaign.answers)
