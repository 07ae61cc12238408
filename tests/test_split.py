"""Tests for splitting requests to the next hop's size limit."""

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from falco_risk.split import split_request, split_serialized
from otlp_builders import records, request_with


def test_small_request_is_one_piece() -> None:
    """A request under the limit is sent as it is."""
    request = request_with("a", "b")

    assert split_request(request, 1 << 20) == [request.SerializeToString()]


def test_large_request_splits_into_pieces_under_the_limit_in_order() -> None:
    """Every piece fits, records keep their order, resource and scope travel with them."""
    request = request_with(*[f"record-{i:03d} " + "x" * 200 for i in range(300)])
    second = request_with(*[f"other-{i:03d} " + "y" * 200 for i in range(50)])
    second.resource_logs[0].resource.attributes[0].value.string_value = "kube:container:other"
    request.resource_logs.extend(second.resource_logs)
    limit = 8 * 1024

    pieces = [ExportLogsServiceRequest.FromString(p) for p in split_request(request, limit)]

    assert len(pieces) > 1
    assert all(piece.ByteSize() <= limit for piece in pieces)
    bodies = [r.body.string_value for piece in pieces for r in records(piece)]
    assert bodies == [r.body.string_value for r in records(request)]
    for piece in pieces:
        for resource_logs in piece.resource_logs:
            original = next(
                rl for rl in request.resource_logs if rl.resource == resource_logs.resource
            )
            assert resource_logs.schema_url == original.schema_url
            assert resource_logs.scope_logs[0].scope.name == "filelog"


def test_oversized_single_record_travels_alone() -> None:
    """A record larger than the limit is not lost: it goes in a piece of its own."""
    request = request_with("small", "z" * 5000, "small again")

    pieces = [ExportLogsServiceRequest.FromString(p) for p in split_request(request, 2000)]

    assert [len(records(p)) for p in pieces] == [1, 1, 1]
    assert records(pieces[1])[0].body.string_value == "z" * 5000


def flattened(pieces: list[bytes]) -> list[tuple[bytes, bytes, bytes]]:
    """(resource, scope, record) of every record of every piece, serialized, in order."""
    return [
        (rl.resource.SerializeToString(), sl.scope.SerializeToString(), r.SerializeToString())
        for piece in pieces
        for rl in ExportLogsServiceRequest.FromString(piece).resource_logs
        for sl in rl.scope_logs
        for r in sl.log_records
    ]


def mixed_request() -> ExportLogsServiceRequest:
    """Two resources (the first repeated), scopes with schema URLs, records of varied size."""
    request = request_with(*[f"record-{i:03d} " + "x" * (50 + i * 7 % 400) for i in range(120)])
    again = request_with(*[f"again-{i:03d}" for i in range(30)])
    other = request_with(*[f"other-{i:03d} " + "y" * 300 for i in range(40)])
    other.resource_logs[0].resource.attributes[0].value.string_value = "kube:container:other"
    other.resource_logs[0].scope_logs.add(schema_url="https://example.test/s2").scope.name = "s2"
    other.resource_logs[0].scope_logs[1].log_records.extend(records(request)[:5])
    request.resource_logs.extend([*again.resource_logs, *other.resource_logs])
    return request


@pytest.mark.parametrize("limit", [700, 4 * 1024, 9 * 1024, 30 * 1024])
def test_split_serialized_gives_the_pieces_split_request_gives(limit: int) -> None:
    """Split on the wire: byte for byte the pieces of splitting the decoded request."""
    request = mixed_request()
    raw = request.SerializeToString()

    pieces = split_serialized(raw, limit)

    assert pieces == split_request(request, limit)
    assert len(pieces) > 1


def test_split_serialized_leaves_a_small_request_alone() -> None:
    """Under the limit, the bytes go as they are."""
    raw = mixed_request().SerializeToString()

    assert split_serialized(raw, len(raw)) == [raw]


def test_split_serialized_keeps_records_of_unusual_framing() -> None:
    """Unknown fields around the records are dropped, as split_request drops them."""
    request = mixed_request()
    raw = request.SerializeToString()
    # An unknown varint field (number 9) at the end of the request.
    raw += b"\x48\x01"

    pieces = split_serialized(raw, 4 * 1024)

    assert flattened(pieces) == flattened(split_request(request, 4 * 1024))
