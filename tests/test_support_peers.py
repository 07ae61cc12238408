"""The real-peer harness itself: capture servers, rotel-agent and otelcol-contrib on loopback."""

import signal
import socket
import sys
from pathlib import Path
from typing import Literal

import grpc
import pytest
from google.rpc.error_details_pb2 import RetryInfo

from support.alerts import (
    CONTAINER_LINE_ATTRIBUTES,
    FALCO_SOURCETYPE,
    alerts_request,
    falco_resource,
    k8s_api_alert,
    sensitive_file_alert,
    shell_alert,
    with_uid,
)
from support.capture import PYTHON_RETRY_INFO_KEY, CaptureServer, Reply
from support.http_capture import HttpCaptureServer
from support.otelcol import OtelCol, filelog_to_otlphttp, pod_log_path, validate, write_config
from support.ports import LOOPBACK, free_port, wait_for_port, wait_for_port_closed
from support.process import ChildProcess, PeerError, Processes
from support.rotel import DROPPED_MESSAGE, RETRY_MESSAGE, Retry, Rotel
from support.send import export_grpc, export_with_sdk, post_logs, sdk_records

WAIT_S = 10.0
UNAVAILABLE = Reply(code=grpc.StatusCode.UNAVAILABLE, message="down for a moment")


def test_ports_free_port_is_bindable_and_waited_for() -> None:
    """A free port can be listened on; waiting sees it open, then closed."""
    port = free_port()

    with socket.create_server((LOOPBACK, port)):
        wait_for_port(LOOPBACK, port, WAIT_S)
    wait_for_port_closed(LOOPBACK, port, WAIT_S)

    with pytest.raises(TimeoutError):
        wait_for_port(LOOPBACK, port, 0.1)


def test_child_process_terminate_returns_the_exit_code(peers: Processes) -> None:
    """SIGTERM reaches the child, whose own exit code comes back."""
    code = "import signal, sys, time\n"
    code += "signal.signal(signal.SIGTERM, lambda *_: sys.exit(3))\n"
    code += "print('up', flush=True)\ntime.sleep(60)\n"
    child = peers.start(ChildProcess([sys.executable, "-c", code], name="python"))
    child.wait_for_output("up", WAIT_S)

    exit_code = child.terminate()

    assert exit_code == 3


def test_child_process_deaf_to_sigterm_is_killed(peers: Processes) -> None:
    """A child ignoring SIGTERM is killed once the grace period ends."""
    code = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    code += "print('up', flush=True)\ntime.sleep(60)\n"
    child = peers.start(ChildProcess([sys.executable, "-c", code], name="python"))
    child.wait_for_output("up", WAIT_S)

    exit_code = child.terminate(timeout=0.2)

    assert exit_code == -signal.SIGKILL


def test_child_process_exiting_early_fails_the_wait(peers: Processes) -> None:
    """Waiting on a child that died raises at once with its output."""
    child = peers.start(
        ChildProcess([sys.executable, "-c", "raise SystemExit('no luck')"], name="python")
    )

    with pytest.raises(PeerError, match="no luck"):
        child.wait_for_output("never printed", WAIT_S)


def test_capture_scripted_replies_reach_a_raw_client(capture: CaptureServer) -> None:
    """Queued replies are given in order: RetryInfo on an error, then partial_success."""
    request = alerts_request([shell_alert()])
    capture.queue_replies(
        Reply(code=grpc.StatusCode.UNAVAILABLE, retry_delay_s=1.5),
        Reply(rejected=1, error_message="one bad record"),
    )

    with pytest.raises(grpc.RpcError) as refused:
        export_grpc(capture.endpoint, request)
    partial = export_grpc(capture.endpoint, request)
    full = export_grpc(capture.endpoint, request)

    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    trailers = {item.key: item.value for item in refused.value.trailing_metadata()}
    retry_info = RetryInfo.FromString(trailers[PYTHON_RETRY_INFO_KEY])
    assert retry_info.retry_delay.ToNanoseconds() == 1_500_000_000
    assert partial.partial_success.rejected_log_records == 1
    assert not full.HasField("partial_success")
    assert [a.reply.accepted for a in capture.attempts()] == [False, True, True]
    assert len(capture.records()) == 2


def test_capture_restarts_on_the_same_port_keeping_records(capture: CaptureServer) -> None:
    """After a restart the server listens on its old port and still holds earlier records."""
    request = alerts_request([shell_alert(), k8s_api_alert()])
    export_grpc(capture.endpoint, request)
    port = capture.port

    capture.stop()
    with pytest.raises(grpc.RpcError):
        export_grpc(capture.endpoint, request, timeout=1.0)
    capture.start()
    export_grpc(capture.endpoint, request)

    assert capture.port == port
    assert len(capture.wait_for_records(4, WAIT_S)) == 4


def test_http_capture_decodes_gzip_json_and_maps_errors(http_capture: HttpCaptureServer) -> None:
    """Gzip JSON bodies are decoded; an UNAVAILABLE reply becomes 503 with Retry-After."""
    alert = shell_alert()
    http_capture.queue_replies(Reply(code=grpc.StatusCode.UNAVAILABLE, retry_delay_s=2))

    refused = post_logs(http_capture.logs_url, alerts_request([alert]))
    taken = post_logs(
        http_capture.logs_url, alerts_request([alert]), gzip_body=True, json_body=True
    )

    assert (refused.status, refused.headers["retry-after"]) == (503, "2")
    assert taken.status == 200
    [record] = http_capture.records()
    assert record.body == alert.json()
    assert record.resource == falco_resource()


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_rotel_relays_sdk_records_intact(
    protocol: Literal["grpc", "http"], capture: CaptureServer, peers: Processes
) -> None:
    """Python exporter -> rotel -> capture keeps bodies, attributes and resource."""
    rotel = peers.start(Rotel(capture.endpoint))
    alerts = [shell_alert() for _ in range(10)] + [sensitive_file_alert() for _ in range(10)]
    target = rotel.grpc_endpoint if protocol == "grpc" else rotel.logs_url

    sent = export_with_sdk(target, sdk_records(a.json() for a in alerts), protocol=protocol)
    records = capture.wait_for_records(len(alerts), WAIT_S)

    assert sent
    assert sorted(str(r.body) for r in records) == sorted(a.json() for a in alerts)
    assert all(r.attributes == CONTAINER_LINE_ATTRIBUTES for r in records)
    assert all(r.resource == falco_resource() for r in records)


def test_rotel_acks_at_once_then_retries_unavailable_until_delivered(
    capture: CaptureServer, peers: Processes
) -> None:
    """rotel answers OK while its target refuses, retries, and delivers each record once."""
    capture.queue_replies(UNAVAILABLE, UNAVAILABLE, UNAVAILABLE)
    rotel = peers.start(Rotel(capture.endpoint))
    alerts = [shell_alert() for _ in range(5)]

    sent = export_with_sdk(rotel.grpc_endpoint, sdk_records(a.json() for a in alerts))
    records = capture.wait_for_records(len(alerts), WAIT_S)

    assert sent
    assert all(len(with_uid(records, a.uid)) == 1 for a in alerts)
    assert [a.reply.accepted for a in capture.attempts()] == [False, False, False, True]


def test_rotel_retries_an_unreachable_target_until_it_listens(peers: Processes) -> None:
    """Records sent while the target is down arrive once it listens on its port."""
    target = CaptureServer(port=free_port())
    rotel = peers.start(Rotel(target.endpoint))
    alert = shell_alert()

    sent = export_with_sdk(rotel.grpc_endpoint, sdk_records([alert.json()]))
    rotel.wait_for_output("Connect", WAIT_S)
    with target:
        records = target.wait_for_records(1, WAIT_S)

    assert sent
    assert [r.body for r in records] == [alert.json()]


def test_rotel_drops_a_batch_its_target_calls_invalid(
    capture: CaptureServer, peers: Processes
) -> None:
    """INVALID_ARGUMENT is final for rotel: one attempt, then the batch is dropped."""
    capture.set_reply(Reply(code=grpc.StatusCode.INVALID_ARGUMENT, message="bad record"))
    rotel = peers.start(Rotel(capture.endpoint))

    sent = export_with_sdk(rotel.grpc_endpoint, sdk_records([shell_alert().json()]))
    rotel.wait_for_output(DROPPED_MESSAGE, WAIT_S)

    assert sent
    assert len(capture.attempts()) == 1
    assert capture.records() == []


def test_rotel_gives_up_after_max_elapsed_time(peers: Processes) -> None:
    """A batch whose target stays down is dropped when the retry budget is spent."""
    target = CaptureServer(port=free_port())
    rotel = peers.start(Rotel(target.endpoint, retry=Retry(max_elapsed_time="500ms")))

    sent = export_with_sdk(rotel.grpc_endpoint, sdk_records([shell_alert().json()]))
    rotel.wait_for_output(DROPPED_MESSAGE, WAIT_S)

    assert sent
    assert rotel.count_events(RETRY_MESSAGE) >= 1


def test_rotel_always_compresses_with_gzip(peers: Processes) -> None:
    """Even with compression none, rotel sends gzip, so a server refusing gzip gets nothing."""
    with CaptureServer(accept_gzip=False) as strict:
        args = ("--otlp-exporter-compression=none",)
        rotel = peers.start(Rotel(strict.endpoint, extra_args=args))

        sent = export_with_sdk(rotel.grpc_endpoint, sdk_records([shell_alert().json()]))
        rotel.wait_for_output(DROPPED_MESSAGE, WAIT_S)

        assert sent
        assert "Unimplemented" in rotel.stdout()
        assert strict.attempts() == []


def test_rotel_exits_zero_on_sigterm_when_idle(capture: CaptureServer, peers: Processes) -> None:
    """An idle rotel stops cleanly on SIGTERM."""
    rotel = peers.start(Rotel(capture.endpoint))

    exit_code = rotel.terminate()

    assert exit_code == 0


def test_otelcol_validate_accepts_the_chart_like_config(tmp_path: Path) -> None:
    """The binary accepts the generated config and refuses a component it lacks."""
    config = filelog_to_otlphttp(tmp_path, "http://127.0.0.1:4318/v1/logs")
    good = write_config(config, tmp_path)
    config["service"]["pipelines"]["logs"]["exporters"] = ["otlp"]
    (tmp_path / "bad").mkdir()
    bad = write_config(config, tmp_path / "bad")

    validate(good)
    with pytest.raises(PeerError, match='references exporter "otlp"'):
        validate(bad)


def test_otelcol_tails_falco_pod_log_to_http_capture(
    tmp_path: Path, http_capture: HttpCaptureServer, peers: Processes
) -> None:
    """Falco's CRI log lines reach the capture with the chart's sourcetype and the alert as body."""
    alerts = [shell_alert(), sensitive_file_alert(), k8s_api_alert()]
    log = pod_log_path(tmp_path, "x7k2p", "5b0d3c1e-6f4a-4e8b-9c2d-7a1f0e3b4c5d")
    log.parent.mkdir(parents=True)
    log.write_text("".join(a.cri_line() + "\n" for a in alerts))
    config = write_config(filelog_to_otlphttp(tmp_path, http_capture.logs_url), tmp_path)

    peers.start(OtelCol(config))
    records = http_capture.wait_for_records(len(alerts), WAIT_S)

    assert sorted(str(r.body) for r in records) == sorted(a.json() for a in alerts)
    for record in records:
        assert record.resource["com.splunk.sourcetype"] == FALCO_SOURCETYPE
        assert record.resource["com.splunk.source"] == str(log)
        assert record.resource["k8s.pod.name"] == "falco-x7k2p"
        assert record.attributes == CONTAINER_LINE_ATTRIBUTES
    assert http_capture.attempts()[0].metadata["content-encoding"] == "gzip"
