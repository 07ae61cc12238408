"""Tests for configuration loading and precedence."""

from pathlib import Path

import pytest

from falco_risk.config import Config, load_config, split_endpoint
from falco_risk.errors import ConfigError


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "falco-risk.yaml"
    path.write_text(text)
    return str(path)


def test_defaults_listen_on_loopback_and_print_to_stdout() -> None:
    """With nothing set, both receivers bind loopback and there is no next hop."""
    config = load_config(environ={})

    assert config.grpc_endpoint == "127.0.0.1:4317"
    assert config.http_endpoint == "127.0.0.1:4318"
    assert config.forward_endpoint == ""
    assert config.max_request_size == 64 * 1024 * 1024
    assert config.forward_max_request_size == 4 * 1024 * 1024


def test_precedence_flag_over_environment_over_file(tmp_path: Path) -> None:
    """A flag beats the environment, which beats the file, which beats the default."""
    path = write(
        tmp_path,
        "forward_endpoint: file:1\nhttp_endpoint: 127.0.0.1:9000\nmax_in_flight: 7\n",
    )
    environ = {
        "FALCO_RISK_FORWARD_ENDPOINT": "env:2",
        "FALCO_RISK_HTTP_ENDPOINT": "127.0.0.1:9001",
    }

    config = load_config(path, environ, flags={"forward_endpoint": "flag:3", "grpc_endpoint": None})

    assert config.forward_endpoint == "flag:3"
    assert config.http_endpoint == "127.0.0.1:9001"
    assert config.max_in_flight == 7
    assert config.grpc_endpoint == "127.0.0.1:4317"


def test_config_file_path_from_environment(tmp_path: Path) -> None:
    """FALCO_RISK_CONFIG names the file when --config is not given."""
    path = write(tmp_path, "forward_timeout: 2.5\n")

    config = load_config(None, {"FALCO_RISK_CONFIG": path})

    assert config.forward_timeout == 2.5


def test_environment_values_are_converted_to_the_key_type() -> None:
    """Numbers, booleans and path lists are read from their string form."""
    environ = {
        "FALCO_RISK_MAX_IN_FLIGHT": "12",
        "FALCO_RISK_ALLOW_INSECURE_LISTEN": "true",
        "FALCO_RISK_GRPC_ENDPOINT": "0.0.0.0:4317",
        "FALCO_RISK_CATALOG": "/a.yaml:/b",
    }

    config = load_config(environ=environ)

    assert config.max_in_flight == 12
    assert config.allow_insecure_listen is True
    assert config.catalog == ("/a.yaml", "/b")


def test_unknown_file_key_is_named(tmp_path: Path) -> None:
    """A misspelt key stops loading with a message naming it."""
    path = write(tmp_path, "forward_endpont: x:1\n")

    with pytest.raises(ConfigError, match="unknown key 'forward_endpont'"):
        load_config(path, {})


def test_wrong_type_is_named_with_its_source() -> None:
    """A value that cannot be converted names the variable and the value."""
    with pytest.raises(ConfigError, match="FALCO_RISK_MAX_IN_FLIGHT: expected int, got 'many'"):
        load_config(environ={"FALCO_RISK_MAX_IN_FLIGHT": "many"})


def test_non_loopback_plaintext_listener_is_refused() -> None:
    """Listening on all interfaces without TLS needs an explicit opt-in."""
    with pytest.raises(ConfigError, match="allow_insecure_listen"):
        Config(grpc_endpoint="0.0.0.0:4317")


@pytest.mark.parametrize(
    ("key", "value"),
    [("max_in_flight", 0), ("forward_timeout", -1.0), ("log_level", "loud")],
)
def test_out_of_range_values_are_refused(key: str, value: object) -> None:
    """Values outside their range stop the start with the key named."""
    with pytest.raises(ConfigError, match=key):
        Config(**{key: value})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        ("127.0.0.1:4317", ("127.0.0.1", 4317)),
        ("[::1]:80", ("::1", 80)),
        ("collector:4319", ("collector", 4319)),
    ],
)
def test_split_endpoint_reads_host_and_port(endpoint: str, expected: tuple[str, int]) -> None:
    """IPv4, bracketed IPv6 and names all split at the last colon."""
    assert split_endpoint(endpoint) == expected


def test_split_endpoint_rejects_missing_port() -> None:
    """An address without a port is a configuration error."""
    with pytest.raises(ConfigError, match="HOST:PORT"):
        split_endpoint("collector")
