"""Tests for TLS, mutual TLS, certificate rotation and bearer tokens on both receivers."""

from __future__ import annotations

import http.client
import ssl
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import trustme
from opentelemetry.proto.collector.logs.v1.logs_service_pb2_grpc import LogsServiceStub

from falco_risk.catalog import load_catalog
from falco_risk.config import Config, load_config
from falco_risk.errors import ConfigError
from falco_risk.server import Server, describe_security
from otlp_builders import attributes
from reliability.conftest import Pki, write_pair
from reliability.peers import CaptureServer, https_post, wait_until
from reliability.records import batch

PROTOBUF = {"Content-Type": "application/x-protobuf"}
TOKEN = "s3cr3t-token-for-tests"


def start(**settings: object) -> Server:
    config = Config(grpc_endpoint="127.0.0.1:0", http_endpoint="127.0.0.1:0", **settings)  # type: ignore[arg-type]
    server = Server(config, load_catalog())
    server.start()
    return server


@pytest.fixture
def tls_server(pki: Pki) -> Iterator[Server]:
    """falco-risk serving TLS (no client certificates) with its console sink."""
    server = start(tls_cert_file=str(pki.server_cert), tls_key_file=str(pki.server_key))
    yield server
    server.stop()


@pytest.fixture
def mtls_server(pki: Pki) -> Iterator[Server]:
    """falco-risk requiring client certificates signed by the test CA."""
    server = start(
        tls_cert_file=str(pki.server_cert),
        tls_key_file=str(pki.server_key),
        tls_client_ca_file=str(pki.ca_file),
    )
    yield server
    server.stop()


def grpc_credentials(
    ca: Path | bytes, pair: tuple[Path, Path] | None = None
) -> grpc.ChannelCredentials:
    roots = ca if isinstance(ca, bytes) else ca.read_bytes()
    if pair is None:
        return grpc.ssl_channel_credentials(root_certificates=roots)
    return grpc.ssl_channel_credentials(
        root_certificates=roots,
        certificate_chain=pair[0].read_bytes(),
        private_key=pair[1].read_bytes(),
    )


def export_over_grpc(
    port: int,
    credentials: grpc.ChannelCredentials | None,
    metadata: tuple[tuple[str, str], ...] = (),
) -> grpc.StatusCode:
    """Send one request on a new channel and return the status code."""
    request, _ = batch("sec", 0, 2)
    address = f"127.0.0.1:{port}"
    channel = (
        grpc.insecure_channel(address)
        if credentials is None
        else grpc.secure_channel(address, credentials)
    )
    with channel:
        try:
            LogsServiceStub(channel).Export(request, timeout=5, metadata=metadata)
        except grpc.RpcError as error:
            return error.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


def client_context(ca: Path, pair: tuple[Path, Path] | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    if pair is not None:
        context.load_cert_chain(str(pair[0]), str(pair[1]))
    return context


def http_export(
    port: int, context: ssl.SSLContext | None, headers: dict[str, str] | None = None
) -> int:
    request, _ = batch("sec", 0, 2)
    status, _, _ = https_post(
        port, request.SerializeToString(), {**PROTOBUF, **(headers or {})}, context
    )
    return status


def test_grpc_tls_server_refuses_plaintext_client(tls_server: Server, pki: Pki) -> None:
    """A plaintext gRPC client cannot talk to a TLS receiver; a TLS client can."""
    plain = export_over_grpc(tls_server.grpc.port, None)

    secure = export_over_grpc(tls_server.grpc.port, grpc_credentials(pki.ca_file))

    assert plain is grpc.StatusCode.UNAVAILABLE
    assert secure is grpc.StatusCode.OK


def test_http_tls_server_refuses_plaintext_client(tls_server: Server, pki: Pki) -> None:
    """A plaintext HTTP request to a TLS receiver gets no answer; an HTTPS one succeeds."""
    with pytest.raises((http.client.HTTPException, OSError)):
        http_export(tls_server.http.port, None)

    status = http_export(tls_server.http.port, client_context(pki.ca_file))

    assert status == 200


def test_grpc_mtls_refuses_missing_and_foreign_client_certificates(
    mtls_server: Server, pki: Pki, tmp_path: Path
) -> None:
    """Without a client certificate, or with one from another CA, the call fails."""
    foreign = write_pair(trustme.CA().issue_cert("intruder.test"), tmp_path, "intruder")

    missing = export_over_grpc(mtls_server.grpc.port, grpc_credentials(pki.ca_file))
    wrong = export_over_grpc(mtls_server.grpc.port, grpc_credentials(pki.ca_file, foreign))
    good = export_over_grpc(
        mtls_server.grpc.port, grpc_credentials(pki.ca_file, (pki.client_cert, pki.client_key))
    )

    assert missing is grpc.StatusCode.UNAVAILABLE
    assert wrong is grpc.StatusCode.UNAVAILABLE
    assert good is grpc.StatusCode.OK


def test_http_mtls_refuses_missing_and_foreign_client_certificates(
    mtls_server: Server, pki: Pki, tmp_path: Path
) -> None:
    """The HTTP receiver closes TLS connections whose client certificate it does not trust."""
    foreign = write_pair(trustme.CA().issue_cert("intruder.test"), tmp_path, "intruder")

    for pair in (None, foreign):
        with pytest.raises((http.client.HTTPException, OSError)):
            http_export(mtls_server.http.port, client_context(pki.ca_file, pair))
    good = http_export(
        mtls_server.http.port, client_context(pki.ca_file, (pki.client_cert, pki.client_key))
    )

    assert good == 200


def test_mtls_end_to_end_reaches_a_tls_next_hop_tagged(pki: Pki, tmp_path: Path) -> None:
    """Client -> falco-risk -> next hop, all mutual TLS, with a token and headers sent onward."""
    hop_cert, hop_key = write_pair(pki.ca.issue_cert("next-hop.falco-risk.test"), tmp_path, "hop")
    hop_credentials = grpc.ssl_server_credentials(
        [(hop_key.read_bytes(), hop_cert.read_bytes())],
        root_certificates=pki.ca_file.read_bytes(),
        require_client_auth=True,
    )
    capture = CaptureServer(credentials=hop_credentials, token="hop-token")
    forward_token = tmp_path / "forward-token"
    forward_token.write_text("hop-token\n")
    server = start(
        tls_cert_file=str(pki.server_cert),
        tls_key_file=str(pki.server_key),
        tls_client_ca_file=str(pki.ca_file),
        forward_endpoint=capture.endpoint,
        forward_tls_ca_file=str(pki.ca_file),
        forward_tls_cert_file=str(pki.client_cert),
        forward_tls_key_file=str(pki.client_key),
        forward_tls_server_name="next-hop.falco-risk.test",
        forward_auth_token_file=str(forward_token),
        forward_headers={"X-Scope-OrgID": "security"},
    )
    request, ids = batch("mtls", 0, 2)
    credentials = grpc_credentials(pki.ca_file, (pki.client_cert, pki.client_key))

    try:
        with grpc.secure_channel(f"127.0.0.1:{server.grpc.port}", credentials) as channel:
            LogsServiceStub(channel).Export(request, timeout=10)
        status = http_export(
            server.http.port, client_context(pki.ca_file, (pki.client_cert, pki.client_key))
        )
    finally:
        server.stop()
        capture.stop()

    assert status == 200
    assert attributes(capture.ledger.records[ids[0]])["risk_score"] == "49"
    assert "risk_score" not in attributes(capture.ledger.records[ids[1]])
    assert capture.ledger.metadata[0]["x-scope-orgid"] == "security"


@pytest.fixture
def token_server(tmp_path: Path) -> Iterator[tuple[Server, Path]]:
    """falco-risk whose receivers require the bearer token held in a file."""
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    server = start(auth_token_file=str(token_file))
    yield server, token_file
    server.stop()


def test_grpc_wrong_or_missing_token_is_unauthenticated(token_server: tuple[Server, Path]) -> None:
    """gRPC calls without the right bearer token get UNAUTHENTICATED."""
    server, _ = token_server

    missing = export_over_grpc(server.grpc.port, None)
    wrong = export_over_grpc(server.grpc.port, None, (("authorization", "Bearer nope"),))
    basic = export_over_grpc(server.grpc.port, None, (("authorization", f"Basic {TOKEN}"),))
    good = export_over_grpc(server.grpc.port, None, (("authorization", f"Bearer {TOKEN}"),))

    assert missing is grpc.StatusCode.UNAUTHENTICATED
    assert wrong is grpc.StatusCode.UNAUTHENTICATED
    assert basic is grpc.StatusCode.UNAUTHENTICATED
    assert good is grpc.StatusCode.OK


def test_http_wrong_or_missing_token_is_401_with_challenge(
    token_server: tuple[Server, Path],
) -> None:
    """HTTP requests without the right bearer token get 401 and WWW-Authenticate: Bearer."""
    server, _ = token_server
    body = batch("sec", 0, 2)[0].SerializeToString()

    missing = https_post(server.http.port, body, PROTOBUF)
    wrong = https_post(server.http.port, body, {**PROTOBUF, "Authorization": "Bearer nope"})
    good = https_post(server.http.port, body, {**PROTOBUF, "Authorization": f"Bearer {TOKEN}"})

    for status, headers, _ in (missing, wrong):
        assert status == 401
        assert headers["WWW-Authenticate"].startswith("Bearer")
    assert good[0] == 200


def test_token_file_change_takes_effect_without_restart(
    token_server: tuple[Server, Path],
) -> None:
    """After the token file is replaced, the new token is accepted and the old one refused."""
    server, token_file = token_server
    replacement = token_file.with_name("token.new")
    replacement.write_text("rotated-token\n")

    replacement.replace(token_file)

    old = export_over_grpc(server.grpc.port, None, (("authorization", f"Bearer {TOKEN}"),))
    new = export_over_grpc(server.grpc.port, None, (("authorization", "Bearer rotated-token"),))
    assert old is grpc.StatusCode.UNAUTHENTICATED
    assert new is grpc.StatusCode.OK


def test_token_from_environment_guards_the_receivers() -> None:
    """FALCO_RISK_AUTH_TOKEN sets the token when no file is given."""
    config = load_config(
        environ={
            "FALCO_RISK_AUTH_TOKEN": TOKEN,
            "FALCO_RISK_GRPC_ENDPOINT": "127.0.0.1:0",
            "FALCO_RISK_HTTP_ENDPOINT": "127.0.0.1:0",
        }
    )
    server = Server(config, load_catalog())
    server.start()

    try:
        missing = export_over_grpc(server.grpc.port, None)
        good = export_over_grpc(server.grpc.port, None, (("authorization", f"Bearer {TOKEN}"),))
    finally:
        server.stop()

    assert missing is grpc.StatusCode.UNAUTHENTICATED
    assert good is grpc.StatusCode.OK
    assert TOKEN not in repr(config)
    assert TOKEN not in describe_security(config)


def test_rotated_certificate_is_served_without_restart(tls_server: Server, pki: Pki) -> None:
    """New connections get the certificate written over the old files; no restart needed."""
    new_ca = trustme.CA()
    old_ca_pem = pki.ca_file.read_bytes()
    new_ca_pem = new_ca.cert_pem.bytes()
    new_ca_file = pki.ca_file.with_name("new-ca.pem")
    new_ca_file.write_bytes(new_ca_pem)
    staged_cert, staged_key = write_pair(
        new_ca.issue_cert("127.0.0.1"), pki.server_cert.parent, "staged"
    )

    staged_key.replace(pki.server_key)
    staged_cert.replace(pki.server_cert)

    port = tls_server.grpc.port
    wait_until(
        lambda: export_over_grpc(port, grpc_credentials(new_ca_pem)) is grpc.StatusCode.OK,
        10,
        "the gRPC receiver to serve the rotated certificate",
    )
    assert export_over_grpc(port, grpc_credentials(old_ca_pem)) is grpc.StatusCode.UNAVAILABLE
    assert http_export(tls_server.http.port, client_context(new_ca_file)) == 200
    with pytest.raises(ssl.SSLError):
        http_export(tls_server.http.port, client_context(pki.ca_file))


def test_mismatched_rotation_keeps_the_previous_certificate(tls_server: Server, pki: Pki) -> None:
    """A key that does not match the new certificate is refused; the old pair keeps serving."""
    other = trustme.CA().issue_cert("127.0.0.1")
    pki.server_key.write_bytes(other.private_key_pem.bytes())

    status = export_over_grpc(tls_server.grpc.port, grpc_credentials(pki.ca_file))

    assert status is grpc.StatusCode.OK
    assert http_export(tls_server.http.port, client_context(pki.ca_file)) == 200


def test_tls_allows_a_non_loopback_listener_without_the_insecure_flag(pki: Pki) -> None:
    """With TLS on, 0.0.0.0 is accepted; without it, the plaintext refusal names the fix."""
    tls = {"tls_cert_file": str(pki.server_cert), "tls_key_file": str(pki.server_key)}

    config = Config(grpc_endpoint="0.0.0.0:4317", **tls)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="tls_cert_file"):
        Config(grpc_endpoint="0.0.0.0:4317")

    assert config.tls


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"tls_cert_file": "a.pem"}, "tls_key_file"),
        ({"tls_client_ca_file": "ca.pem"}, "tls_client_ca_file"),
        ({"forward_tls_key_file": "k.pem"}, "forward_tls_cert_file"),
        ({"auth_token": "x", "auth_token_file": "t"}, "not both"),
    ],
    ids=["cert-without-key", "ca-without-cert", "forward-key-without-cert", "token-twice"],
)
def test_incomplete_security_settings_are_refused(settings: dict[str, str], message: str) -> None:
    """Settings that only work together are refused at start-up with the key named."""
    with pytest.raises(ConfigError, match=message):
        Config(**settings)  # type: ignore[arg-type]


def test_unreadable_certificate_stops_start_up(pki: Pki, tmp_path: Path) -> None:
    """A certificate file that does not load is a configuration error, not a crash later."""
    broken = tmp_path / "broken.pem"
    broken.write_text("not a certificate")
    config = Config(
        grpc_endpoint="127.0.0.1:0",
        http_endpoint="127.0.0.1:0",
        tls_cert_file=str(broken),
        tls_key_file=str(pki.server_key),
    )

    with pytest.raises(ConfigError, match="tls_cert_file"):
        Server(config, load_catalog())


def test_forward_headers_read_from_environment_text() -> None:
    """forward_headers accepts name=value pairs, as OTLP exporters' header variables do."""
    config = load_config(environ={"FALCO_RISK_FORWARD_HEADERS": "X-Tenant=sec, X-Env = prod"})

    assert config.forward_headers == {"x-tenant": "sec", "x-env": "prod"}


def test_forwarder_picks_up_a_rotated_client_certificate(pki: Pki, tmp_path: Path) -> None:
    """A next hop refuses falco-risk's certificate until the files are replaced by a trusted one."""
    hop_credentials = grpc.ssl_server_credentials(
        [(pki.server_key.read_bytes(), pki.server_cert.read_bytes())],
        root_certificates=pki.ca_file.read_bytes(),
        require_client_auth=True,
    )
    capture = CaptureServer(credentials=hop_credentials)
    cert, key = write_pair(trustme.CA().issue_cert("untrusted"), tmp_path, "forward")
    server = start(
        forward_endpoint=capture.endpoint,
        forward_timeout=2.0,
        forward_tls_ca_file=str(pki.ca_file),
        forward_tls_cert_file=str(cert),
        forward_tls_key_file=str(key),
        forward_tls_server_name="127.0.0.1",
    )

    try:
        before = export_over_grpc(server.grpc.port, None)
        staged_cert, staged_key = write_pair(pki.ca.issue_cert("trusted"), tmp_path, "staged")
        staged_key.replace(key)
        staged_cert.replace(cert)
        after = export_over_grpc(server.grpc.port, None)
    finally:
        server.stop()
        capture.stop()

    assert before is grpc.StatusCode.UNAVAILABLE
    assert after is grpc.StatusCode.OK


def test_readme_security_example_is_a_valid_configuration(tmp_path: Path) -> None:
    """The configuration shown in the README's security section loads without error."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Security: TLS and tokens", 1)[1]
    config_file = tmp_path / "falco-risk.yaml"
    config_file.write_text(section.split("<<'YAML'\n", 1)[1].split("\nYAML\n", 1)[0])

    config = load_config(str(config_file), environ={})

    assert config.tls
    assert config.tls_client_ca_file
    assert config.forward_uses_tls
    assert config.forward_headers == {"x-scope-orgid": "security"}
