"""Splunk's ``stats count by`` as a metric: tagged records counted by the detection's fields.

One counter, ``falco_risk.detection.matches``, gets one series per detection
and combination of its ``count_by`` values. The number of distinct series is
capped: past the cap, records are counted in a single overflow series with
the attribute ``otel.metric.overflow=true``, as OpenTelemetry SDKs mark
overflow, so a burst of unique command lines cannot exhaust memory.
"""

from __future__ import annotations

import threading
from typing import Final

from opentelemetry.metrics import Counter, Meter
from opentelemetry.util.types import Attributes

from falco_risk import attributes as attr
from falco_risk.tagger import CountKey, TagTally

DEFAULT_SERIES_LIMIT: Final = 1000
MATCHES_METRIC: Final = "falco_risk.detection.matches"
OVERFLOW_ATTRIBUTE: Final = "otel.metric.overflow"


class DetectionCounts:
    """Records the per-detection counts of each request into one counter.

    Suppressions are counted by the pipeline's own telemetry
    (``falco_risk.records.suppressed``).
    """

    def __init__(self, meter: Meter, series_limit: int = DEFAULT_SERIES_LIMIT) -> None:
        self.series_limit = series_limit
        self.matches: Counter = meter.create_counter(
            MATCHES_METRIC,
            unit="{record}",
            description="Tagged records by detection and the values of its count_by fields.",
        )
        self._series: set[CountKey] = set()
        self._lock = threading.Lock()

    def record(self, tally: TagTally) -> None:
        """Add one request's counts, one call per distinct series."""
        overflow = 0
        for key, count in tally.counts.items():
            if self._admit(key):
                self.matches.add(count, _attributes(key))
            else:
                overflow += count
        if overflow:
            self.matches.add(overflow, {OVERFLOW_ATTRIBUTE: True})

    def _admit(self, key: CountKey) -> bool:
        if key in self._series:
            return True
        with self._lock:
            if len(self._series) >= self.series_limit:
                return False
            self._series.add(key)
            return True


def _attributes(key: CountKey) -> Attributes:
    detection_id, name, pairs = key
    values: dict[str, str] = {attr.SECURITY_RULE_UUID: detection_id, attr.SECURITY_RULE_NAME: name}
    values.update(pairs)
    return values
