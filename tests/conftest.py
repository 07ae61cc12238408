"""Shared fixtures: real peers on loopback, always stopped when the test ends."""

from collections.abc import Iterator

import pytest

from support.capture import CaptureServer
from support.http_capture import HttpCaptureServer
from support.process import Processes


@pytest.fixture
def capture() -> Iterator[CaptureServer]:
    """A running OTLP/gRPC capture server on a free loopback port."""
    with CaptureServer() as server:
        yield server


@pytest.fixture
def http_capture() -> Iterator[HttpCaptureServer]:
    """A running OTLP/HTTP capture server on a free loopback port."""
    with HttpCaptureServer() as server:
        yield server


@pytest.fixture
def peers(request: pytest.FixtureRequest) -> Iterator[Processes]:
    """Starts child processes (rotel, otelcol, falco-risk) that are killed after the test.

    Their output is attached to the report of a failing test.
    """
    processes = Processes()
    yield processes

    try:
        for name, text in processes.reports():
            request.node.add_report_section("teardown", name, text)
    finally:
        processes.close()
