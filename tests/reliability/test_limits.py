"""Bounds on what tagging adds: attribute length, and never past the next hop's size limit."""

from __future__ import annotations

from falco_risk.catalog import load_catalog
from falco_risk.config import Config, load_config
from falco_risk.server import Server
from falco_risk.tagger import Tagger
from otlp_builders import attributes, falco_json, records, request_with
from reliability.peers import ID_KEY, CaptureServer, wait_until

SHELL = "10:00:00.0: Notice A shell was spawned in a container with an attached terminal"
LIMIT = 64 * 1024


def alert_of_size(size: int) -> str:
    """A shell alert whose JSON text is about ``size`` bytes, padded in the command line."""
    base = falco_json(SHELL, **{"user.name": "root", "proc.cmdline": ""})
    return falco_json(SHELL, **{"user.name": "root", "proc.cmdline": "x" * (size - len(base))})


def test_max_attribute_length_is_read_from_the_environment() -> None:
    """max_attribute_length is a configuration key like the others."""
    config = load_config(environ={"FALCO_RISK_MAX_ATTRIBUTE_LENGTH": "512"})

    assert config.max_attribute_length == 512


def test_tag_that_would_cross_the_size_limit_is_left_off_and_counted() -> None:
    """A record that fits the limit untagged but not tagged goes on untagged; the tally says so."""
    request = request_with(alert_of_size(LIMIT - 1000), alert_of_size(1000))
    tagger = Tagger(load_catalog(), max_value_length=4096, max_record_size=LIMIT)

    tally = tagger.tag(request)

    big, small = records(request)
    assert tally.oversize == 1
    assert "risk_score" not in attributes(big)
    assert attributes(small)["risk_score"] == "49"
    assert big.ByteSize() < LIMIT


def test_records_reaching_the_next_hop_fit_its_limit() -> None:
    """End to end, a near-limit alert arrives untagged and within forward_max_request_size."""
    capture = CaptureServer()
    server = Server(
        Config(
            grpc_endpoint="127.0.0.1:0",
            http_endpoint="127.0.0.1:0",
            forward_endpoint=capture.endpoint,
            forward_max_request_size=LIMIT,
        ),
        load_catalog(),
    )
    server.start()
    request = request_with(alert_of_size(LIMIT - 1000), alert_of_size(1000))
    for record, name in zip(records(request), ("big", "small"), strict=True):
        record.attributes.add(key=ID_KEY).value.string_value = name

    try:
        outcome = server.pipeline.export(request.SerializeToString(), 10.0)
        wait_until(lambda: capture.ledger.has_all(["big", "small"]), 10, "both records")
    finally:
        server.stop()
        capture.stop()

    assert outcome.ok
    assert "risk_score" not in attributes(capture.ledger.records["big"])
    assert attributes(capture.ledger.records["small"])["risk_score"] == "49"
    assert capture.ledger.records["big"].ByteSize() < LIMIT
