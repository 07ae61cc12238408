"""Tests for splitting requests to the next hop's size limit."""

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from falco_risk.split import split_request
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
