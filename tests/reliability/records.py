"""Requests whose records carry a unique id, and the figures a reliability scenario reports."""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from otlp_builders import falco_json, request_with
from reliability.peers import ID_KEY

SHELL_ALERT = falco_json(
    "10:00:00.0: Notice A shell was spawned in a container with an attached terminal",
    **{"user.name": "root", "container.name": "web", "proc.name": "bash"},
)
# Where each scenario's figures are appended, one JSON object per line.
REPORT_FILE = Path(
    os.environ.get("FALCO_RISK_RELIABILITY_REPORT")
    or Path(tempfile.gettempdir()) / "falco-risk-reliability.jsonl"
)
REPORTED: list[Figures] = []


def batch(prefix: str, index: int, size: int) -> tuple[ExportLogsServiceRequest, list[str]]:
    """A request of ``size`` records, every other one a Falco alert, each with its own id."""
    ids = [f"{prefix}-{index}-{n}" for n in range(size)]
    bodies = [SHELL_ALERT if n % 2 == 0 else f"plain log line {n}" for n in range(size)]
    request = request_with(*bodies)
    for record, record_id in zip(
        request.resource_logs[0].scope_logs[0].log_records, ids, strict=True
    ):
        record.attributes.add(key=ID_KEY).value.string_value = record_id
    return request, ids


@dataclass
class Figures:
    """What one scenario sent, what arrived, and the sidecar's peak memory."""

    scenario: str
    sent: int
    delivered: int
    duplicates: int
    lost: int
    max_rss_kib: int = 0
    note: str = ""

    @classmethod
    def count(
        cls, scenario: str, sent: list[str], received: Counter[str], max_rss_kib: int = 0
    ) -> Figures:
        delivered = sum(1 for i in sent if received[i])
        duplicates = sum(received[i] - 1 for i in sent if received[i] > 1)
        return cls(scenario, len(sent), delivered, duplicates, len(sent) - delivered, max_rss_kib)

    def report(self) -> None:
        """Print the figures (visible with -s) and append them to the report file."""
        print(
            f"\n[reliability] {self.scenario}: sent={self.sent} delivered={self.delivered} "
            f"duplicates={self.duplicates} lost={self.lost} max_rss={self.max_rss_kib} KiB"
            + (f" ({self.note})" if self.note else "")
        )
        REPORTED.append(self)
        with REPORT_FILE.open("a") as out:
            out.write(json.dumps(asdict(self)) + "\n")
