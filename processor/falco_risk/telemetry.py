"""falco-risk's own metrics, recorded through the OpenTelemetry metrics API.

Counts are added once per request, never once per record, so the data path
pays a handful of calls per request whatever its size.
"""

from __future__ import annotations

from opentelemetry.metrics import MeterProvider, NoOpMeterProvider

from falco_risk import __version__

METER_NAME = "falco_risk"


class Telemetry:
    """The instruments the data path records into."""

    def __init__(self, provider: MeterProvider | None = None) -> None:
        meter = (provider or NoOpMeterProvider()).get_meter(METER_NAME, __version__)
        self.requests = meter.create_counter(
            "falco_risk.requests", unit="{request}", description="Export requests received."
        )
        self.records_received = meter.create_counter(
            "falco_risk.records.received", unit="{record}", description="Log records received."
        )
        self.records_tagged = meter.create_counter(
            "falco_risk.records.tagged",
            unit="{record}",
            description="Log records tagged, by detection.",
        )
        self.records_malformed = meter.create_counter(
            "falco_risk.records.malformed",
            unit="{record}",
            description="Records that looked like Falco alerts but could not be read.",
        )
        self.records_untagged_oversize = meter.create_counter(
            "falco_risk.records.untagged_oversize",
            unit="{record}",
            description="Matching records forwarded untagged: the tag would exceed the size limit.",
        )
        self.records_forwarded = meter.create_counter(
            "falco_risk.records.forwarded",
            unit="{record}",
            description="Log records the next hop accepted.",
        )
        self.requests_refused = meter.create_counter(
            "falco_risk.requests.refused",
            unit="{request}",
            description="Requests answered with an error, by reason.",
        )
        self.downstream_failures = meter.create_counter(
            "falco_risk.downstream.failures",
            unit="{request}",
            description="Failed sends to the next hop, by gRPC status code.",
        )
