"""Tests for hot reload: atomic swaps, refusals and change detection."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from falco_risk.catalog import load_catalog
from falco_risk.falco import FalcoAlert, read_alert
from falco_risk.pipeline import Limits, Pipeline
from falco_risk.reload import CatalogReloader
from otlp_builders import attributes, falco_json, records, request_with
from test_pipeline import RecordingSink

SEED_ID = "d2feef92-d54a-4a19-8306-b47c6ceba5b2"
SHELL = falco_json(
    "10:00:00.0: Notice A shell was spawned in a container with an attached terminal",
    **{"user.name": "root", "container.name": "web"},
)


def catalog_text(score: int) -> str:
    return f"""
detections:
  - id: {SEED_ID}
    name: Shell v{score}
    version: {score}
    type: Anomaly
    match: {{phrase: A shell was spawned in a container}}
    fields: {{user: [user.name]}}
    risk:
      objects: [{{field: user, type: user, score: {score}}}]
      message: Shell by $user$.
"""


def make(tmp_path: Path, interval: float = 0.0) -> tuple[Path, Pipeline, CatalogReloader]:
    path = tmp_path / "catalog.yaml"
    path.write_text(catalog_text(10))
    pipeline = Pipeline(load_catalog([str(path)]), RecordingSink(), Limits(4 << 20, 5.0))
    return path, pipeline, CatalogReloader([str(path)], pipeline, interval)


def test_reload_swaps_in_the_new_catalog(tmp_path: Path) -> None:
    """After a reload new requests are tagged by the new catalog and the version moves on."""
    path, pipeline, reloader = make(tmp_path)
    old = reloader.version
    path.write_text(catalog_text(20))

    assert reloader.reload()

    assert reloader.version != old
    assert reloader.generation == 2
    assert pipeline.tagger.match(read(SHELL), {}).risk_score == 20  # type: ignore[union-attr]


def test_invalid_catalog_is_refused_and_the_old_keeps_serving(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A broken catalog file does not replace the one in force; one error line says why."""
    path, pipeline, reloader = make(tmp_path)
    before = pipeline.tagger
    path.write_text(catalog_text(20).replace("score: 20", "score: 500"))

    with caplog.at_level(logging.ERROR, logger="falco_risk.reload"):
        assert not reloader.reload()

    assert pipeline.tagger is before
    (line,) = [r.getMessage() for r in caplog.records]
    assert "catalog reload refused" in line
    assert "500 is out of range" in line


def test_polling_notices_a_changed_file(tmp_path: Path) -> None:
    """The watcher thread reloads when a catalog file changes."""
    path, pipeline, reloader = make(tmp_path, interval=0.05)
    reloader.start()
    try:
        path.write_text(catalog_text(30))
        deadline = time.monotonic() + 10
        while reloader.generation == 1 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        reloader.stop()

    assert reloader.generation == 2
    assert pipeline.tagger.catalog.detections[0].risk_score == 30


def test_no_request_is_half_tagged_during_reloads(tmp_path: Path) -> None:
    """Requests exported while catalogs switch are tagged wholly by one catalog each."""
    path, pipeline, reloader = make(tmp_path)
    sink = pipeline.sink
    assert isinstance(sink, RecordingSink)
    raw = request_with(*[SHELL] * 50).SerializeToString()
    stop = threading.Event()

    def export_loop() -> None:
        while not stop.is_set():
            pipeline.export(raw)

    workers = [threading.Thread(target=export_loop) for _ in range(3)]
    for worker in workers:
        worker.start()
    for score in range(11, 31):
        path.write_text(catalog_text(score))
        reloader.reload()
        seen = len(sink.sent)
        deadline = time.monotonic() + 10
        while len(sink.sent) < seen + 2 and time.monotonic() < deadline:
            time.sleep(0.001)
    stop.set()
    for worker in workers:
        worker.join()

    scores_per_request = [
        {attributes(r)["risk_score"] for r in records(ExportLogsServiceRequest.FromString(sent))}
        for sent in sink.sent
    ]
    assert len(scores_per_request) > 20
    assert all(len(scores) == 1 for scores in scores_per_request)
    assert len(set().union(*scores_per_request)) > 1


def read(body: str) -> FalcoAlert:
    found = read_alert(body, {})
    assert found is not None
    return found
