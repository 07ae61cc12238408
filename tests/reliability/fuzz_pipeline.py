"""Coverage-guided fuzzing (atheris) of falco-risk's request path, run as its own process.

Usage: python -m reliability.fuzz_pipeline [libFuzzer flags, e.g. -runs=20000]

The first byte of an input picks one reader: the request pipeline (protobuf bytes,
with the seed detection's phrase planted so the decoding path runs), the OTLP
JSON reader, or the Falco alert reader. Anything but the documented outcomes
(a status from the pipeline, OtlpJsonError, MalformedAlertError) is a crash
that libFuzzer reports with the input that caused it.
"""

from __future__ import annotations

import contextlib
import io
import sys

import atheris

with atheris.instrument_imports(include=["falco_risk"]):
    import grpc
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    from falco_risk import otlp_json
    from falco_risk.catalog import load_catalog
    from falco_risk.console import ConsoleSink
    from falco_risk.falco import MalformedAlertError, read_alert
    from falco_risk.pipeline import Limits, Pipeline

NEEDLE = b"A shell was spawned in a container"
ANSWERS = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT}
PIPELINE = Pipeline(load_catalog(), ConsoleSink(io.StringIO()), Limits(1 << 16, 5.0))


def one_input(data: bytes) -> None:
    """Feed one fuzzer input to the reader it selects."""
    if not data:
        return
    reader, payload = data[0] % 3, data[1:]
    if reader == 0:
        outcome = PIPELINE.export(payload + NEEDLE, 5.0)
        if outcome.code not in ANSWERS:
            raise AssertionError(f"unexpected status {outcome.code}")
    elif reader == 1:
        with contextlib.suppress(otlp_json.OtlpJsonError):
            otlp_json.parse(payload, ExportLogsServiceRequest())
    else:
        text = payload.decode("utf-8", "replace")
        with contextlib.suppress(MalformedAlertError):
            read_alert(text, {"falco.rule": text[:20]})


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
