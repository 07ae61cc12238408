"""Malformed Falco alerts go on untouched or tagged with what could be read; none is dropped."""

from __future__ import annotations

import io
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from falco_risk import otlp_json
from falco_risk.catalog import load_catalog
from falco_risk.config import Config
from falco_risk.console import ConsoleSink
from falco_risk.pipeline import Limits, Pipeline
from falco_risk.server import Server
from otlp_builders import attributes, body, falco_json, records, request_with
from reliability.peers import ID_KEY, CaptureServer, wait_until
from reliability.records import Figures

SHELL = "10:00:00.000000000: Notice A shell was spawned in a container with an attached terminal"
MEGABYTE_COMMAND = "bash -c " + "A" * (1 << 20)
MALFORMED = {
    "truncated-json": falco_json(SHELL, **{"user.name": "root"})[:60],
    "fields-wrong-types": json.dumps(
        {
            "output": SHELL,
            "rule": "Terminal shell in container",
            "priority": "Notice",
            "output_fields": {"user.name": ["root"], "proc.name": {"x": 1}, "container.name": 7},
        }
    ),
    "fields-not-a-mapping": json.dumps({"output": SHELL, "output_fields": ["a", "b"]}),
    "output-not-a-string": json.dumps({"output": 42, "rule": "Terminal shell", "priority": 3}),
    "output-without-tail": falco_json(SHELL),
    "text-without-tail": SHELL,
    "megabyte-command-line": falco_json(SHELL, **{"proc.cmdline": MEGABYTE_COMMAND}),
    "non-ascii": falco_json(
        SHELL + " | user=rôöt container_name=wéb-容器",
        **{"user.name": "rôöt", "container.name": "wéb-容器", "proc.name": "баш"},
    ),
    "na-everywhere": falco_json(
        SHELL + " | user=<NA> container_name=<NA> process=<NA>",
        **{"user.name": "<NA>", "container.name": "<NA>", "proc.name": "<NA>"},
    ),
}
MAX_ATTRIBUTE_LENGTH = 256


def tagged_request() -> ExportLogsServiceRequest:
    request = request_with(*MALFORMED.values())
    for record, name in zip(records(request), MALFORMED, strict=True):
        record.attributes.add(key=ID_KEY).value.string_value = name
    return request


def test_malformed_alerts_all_arrive_with_bodies_untouched() -> None:
    """Every malformed alert reaches the next hop with its body unchanged; none is dropped."""
    capture = CaptureServer()
    config = Config(
        grpc_endpoint="127.0.0.1:0",
        http_endpoint="127.0.0.1:0",
        forward_endpoint=capture.endpoint,
        max_attribute_length=MAX_ATTRIBUTE_LENGTH,
    )
    server = Server(config, load_catalog())
    server.start()
    request = tagged_request()

    try:
        outcome = server.pipeline.export(request.SerializeToString(), 10.0)
        wait_until(lambda: capture.ledger.has_all(MALFORMED), 10, "the malformed alerts")
    finally:
        server.stop()
        capture.stop()

    received = capture.ledger.records
    Figures.count("malformed Falco alerts", list(MALFORMED), capture.ledger.counts).report()
    assert outcome.ok
    for name, text in MALFORMED.items():
        assert body(received[name]) == text, name
        for key, value in attributes(received[name]).items():
            if key != ID_KEY and isinstance(value, str):
                assert len(value) <= MAX_ATTRIBUTE_LENGTH, (name, key)
    assert attributes(received["megabyte-command-line"])["command"] == "bash -c " + "A" * (
        MAX_ATTRIBUTE_LENGTH - len("bash -c ")
    )
    assert attributes(received["non-ascii"])["user"] == "rôöt"
    assert "user" not in attributes(received["na-everywhere"])
    assert "risk_score" not in attributes(received["truncated-json"])


alert_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=40),
    st.just("<NA>"),
    st.lists(st.text(max_size=5), max_size=3),
    st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
)
alert_documents = st.fixed_dictionaries(
    {"output": st.one_of(st.just(SHELL), st.text(max_size=60).map(lambda t: SHELL + t))},
    optional={
        "rule": alert_values,
        "priority": alert_values,
        "source": alert_values,
        "hostname": alert_values,
        "time": alert_values,
        "tags": alert_values,
        "output_fields": st.one_of(
            alert_values,
            st.dictionaries(
                st.sampled_from(["user.name", "proc.name", "container.name", "proc.cmdline"]),
                alert_values,
            ),
        ),
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    document=alert_documents,
    cut=st.one_of(st.none(), st.integers(1, 200)),
    as_map=st.booleans(),
)
def test_any_alert_shape_is_forwarded_and_never_raises(
    document: dict[str, object], cut: int | None, as_map: bool
) -> None:
    """Whatever an alert holds, the request succeeds and every record leaves with its body."""
    text = json.dumps(document, default=str)
    if cut is not None:
        text = text[:cut]
    request = request_with(text, "plain line")
    if as_map and cut is None:
        record = records(request)[0]
        record.body.kvlist_value.SetInParent()
        for key, value in document.items():
            record.body.kvlist_value.values.add(key=key).value.string_value = str(value)
    sink = io.StringIO()
    pipeline = Pipeline(load_catalog(), ConsoleSink(sink), Limits(1 << 20, 5.0))
    sent = [body(r) for r in records(request)]

    outcome = pipeline.export(request.SerializeToString(), 5.0)

    assert outcome.ok
    # Split on newlines only: a body may hold U+0085 or U+2028, which
    # str.splitlines() would also split on.
    (line,) = sink.getvalue().rstrip("\n").split("\n")
    forwarded = otlp_json.parse(line, ExportLogsServiceRequest())
    assert [body(r) for r in records(forwarded)] == sent
