"""Every record shape and Falco generation, tagged end to end through the pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from falco_risk.catalog import load_catalog
from falco_risk.pipeline import Limits, Pipeline
from otlp_builders import attributes, records, request_with
from test_pipeline import RecordingSink
from test_tagger import EXPECTED_SEED_ATTRIBUTES

CASES = yaml.safe_load((Path(__file__).parent / "testdata" / "shapes.yaml").read_text())["cases"]
FIELD_KEYS = {
    "container_image",
    "container_image_tag",
    "container_name",
    "parent",
    "proc_exepath",
    "process",
    "user",
    "command",
    "container_id",
    "k8s_ns",
    "k8s_pod_name",
}
STATIC = {k: v for k, v in EXPECTED_SEED_ATTRIBUTES.items() if k not in FIELD_KEYS}


def fill(slot: AnyValue, value: Any) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            fill(slot.kvlist_value.values.add(key=key).value, item)
    elif isinstance(value, list):
        for item in value:
            fill(slot.array_value.values.add(), item)
    elif isinstance(value, bool):
        slot.bool_value = value
    elif isinstance(value, int):
        slot.int_value = value
    else:
        slot.string_value = str(value)


def build(case: dict[str, Any]) -> ExportLogsServiceRequest:
    request = request_with("placeholder", "an unrelated line")
    record = records(request)[0]
    fill(record.body, case["body"])
    for key, value in (case.get("attributes") or {}).items():
        fill(record.attributes.add(key=key).value, value)
    return request


def run(request: ExportLogsServiceRequest) -> ExportLogsServiceRequest:
    sink = RecordingSink()
    Pipeline(load_catalog(), sink, Limits(4 << 20, 5.0)).export(request.SerializeToString())
    return ExportLogsServiceRequest.FromString(sink.sent[0])


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_shape_is_tagged_with_exact_values(case: dict[str, Any]) -> None:
    """Each shape yields exactly the expected attributes, and nothing else changes."""
    request = build(case)
    original = records(request)[0]

    forwarded = run(request)

    record, other = records(forwarded)
    assert other == records(request)[1]
    assert record.body == original.body
    added = {k: v for k, v in attributes(record).items() if k not in attributes(original)}
    if case["expect"] is None:
        assert record == original
        return
    expect = dict(case["expect"])
    user = expect.get("user", "unknown")
    assert added == {**STATIC, **expect, "risk_object": user}
