"""falco-risk's own metrics, recorded through the OpenTelemetry metrics API.

Counts are added once per request, never once per record. They go into plain
totals that the SDK reads through observable counters at each collection: an
SDK counter call costs microseconds, a total costs a dict update under a lock.
Histograms are SDK instruments, recorded once per request (and per send to the
next hop). Names and units follow OpenTelemetry's metric naming conventions;
the README's "Self-monitoring" section describes each one.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Final

from opentelemetry.metrics import (
    CallbackOptions,
    Meter,
    MeterProvider,
    NoOpMeterProvider,
    Observation,
)

from falco_risk import __version__
from falco_risk.catalog import Catalog
from falco_risk.counts import DetectionCounts

METER_NAME: Final = "falco_risk"

# Attribute keys. `transport` is what the collector's own receiver metrics
# call the protocol; the others are OpenTelemetry semantic conventions.
TRANSPORT: Final = "transport"
ERROR_TYPE: Final = "error.type"
RULE_UUID: Final = "security_rule.uuid"
RULE_NAME: Final = "security_rule.name"
SUPPRESSION_RULE: Final = "falco_risk.suppression.rule"
CATALOG_VERSION: Final = "falco_risk.catalog.version"

# Reasons a request is refused, the values of error.type on requests.refused.
REFUSED_SIZE: Final = "size"
REFUSED_OVERLOAD: Final = "overload"
REFUSED_AUTH: Final = "auth"
REFUSED_BAD_DATA: Final = "bad_data"

# Buckets in seconds, from a loopback round trip to the forward timeout.
DURATION_BUCKETS_SECONDS: Final = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
# Buckets in bytes, from one small record to the default 64 MiB request limit.
SIZE_BUCKETS_BYTES: Final = tuple(float(1 << shift) for shift in range(10, 27, 2))


class Total:
    """A monotonic count per attribute set, reported as an OpenTelemetry counter."""

    def __init__(self, meter: Meter, name: str, unit: str, description: str) -> None:
        self._lock = threading.Lock()
        self._totals: dict[tuple[tuple[str, str], ...], int] = {}
        meter.create_observable_counter(
            name, callbacks=[self._observe], unit=unit, description=description
        )

    def add(self, amount: int, attributes: Mapping[str, str] | None = None) -> None:
        """Add ``amount`` to the total of this attribute set."""
        key = tuple(sorted(attributes.items())) if attributes else ()
        with self._lock:
            self._totals[key] = self._totals.get(key, 0) + amount

    def _observe(self, options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            totals = list(self._totals.items())
        return [Observation(value, dict(key)) for key, value in totals]


class Telemetry:
    """The instruments the data path records into."""

    def __init__(self, provider: MeterProvider | None = None) -> None:
        meter = (provider or NoOpMeterProvider()).get_meter(METER_NAME, __version__)
        self._meter = meter
        self.requests_received = Total(
            meter,
            "falco_risk.requests.received",
            unit="{request}",
            description="Export requests received, by transport.",
        )
        self.records_received = Total(
            meter,
            "falco_risk.records.received",
            unit="{record}",
            description="Log records received, by transport.",
        )
        self.records_tagged = Total(
            meter,
            "falco_risk.records.tagged",
            unit="{record}",
            description="Log records tagged, by detection.",
        )
        self.records_suppressed = Total(
            meter,
            "falco_risk.records.suppressed",
            unit="{record}",
            description="Matching records left untagged by a suppression rule, by rule.",
        )
        self.records_malformed = Total(
            meter,
            "falco_risk.records.malformed",
            unit="{record}",
            description="Records that looked like Falco alerts but could not be read.",
        )
        self.records_untagged_oversize = Total(
            meter,
            "falco_risk.records.untagged_oversize",
            unit="{record}",
            description="Matching records forwarded untagged: the tag would exceed the size limit.",
        )
        self.records_forwarded = Total(
            meter,
            "falco_risk.records.forwarded",
            unit="{record}",
            description="Log records the next hop accepted.",
        )
        self.requests_refused = Total(
            meter,
            "falco_risk.requests.refused",
            unit="{request}",
            description="Requests refused before reaching the next hop, by reason.",
        )
        self.downstream_failures = Total(
            meter,
            "falco_risk.downstream.failures",
            unit="{request}",
            description="Sends to the next hop that failed, by gRPC status code.",
        )

        # Detection catalog: per-detection counts (count_by), suppressions
        # and catalog reloads.
        self.detections = DetectionCounts(meter)
        self.catalog_reloads = meter.create_counter(
            "falco_risk.catalog.reloads",
            unit="{reload}",
            description="Catalog reload attempts, by result (loaded, refused).",
        )
        self.request_duration = meter.create_histogram(
            "falco_risk.request.duration",
            unit="s",
            description="Time from receiving an export request to having its answer.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS_SECONDS,
        )
        self.request_size = meter.create_histogram(
            "falco_risk.request.size",
            unit="By",
            description="Size of export requests, uncompressed.",
            explicit_bucket_boundaries_advisory=SIZE_BUCKETS_BYTES,
        )
        self.downstream_duration = meter.create_histogram(
            "falco_risk.downstream.duration",
            unit="s",
            description="Round-trip time of one send to the next hop, failed or not.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS_SECONDS,
        )

    def refused(self, reason: str, transport: str) -> None:
        """Count one request refused for ``reason`` (one of the REFUSED_* values)."""
        self.requests_refused.add(1, {ERROR_TYPE: reason, TRANSPORT: transport})

    def observe(self, in_flight: Callable[[], int], catalog: Callable[[], Catalog]) -> None:
        """Register the gauges read at each collection: requests in flight and the catalog."""

        def active(options: CallbackOptions) -> Iterable[Observation]:
            yield Observation(in_flight())

        def detections(options: CallbackOptions) -> Iterable[Observation]:
            loaded = catalog()
            yield Observation(len(loaded.detections), {CATALOG_VERSION: catalog_version(loaded)})

        self._meter.create_observable_up_down_counter(
            "falco_risk.requests.active",
            callbacks=[active],
            unit="{request}",
            description="Export requests being processed now.",
        )
        self._meter.create_observable_gauge(
            "falco_risk.catalog.detections",
            callbacks=[detections],
            unit="{detection}",
            description="Detections loaded, with the catalog's version.",
        )


def catalog_version(catalog: Catalog) -> str:
    """The catalog's own version (a digest of its files), else a fingerprint of what it holds."""
    if catalog.version:
        return catalog.version
    digest = hashlib.sha256()
    for detection in sorted(catalog.detections, key=lambda d: d.id):
        digest.update(f"{detection.id}@{detection.version}\n".encode())
    return digest.hexdigest()[:12]
