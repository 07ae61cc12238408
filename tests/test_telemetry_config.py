"""Tests for the self-monitoring configuration keys and their validation."""

from __future__ import annotations

import pytest

from falco_risk.config import Config, load_config
from falco_risk.errors import ConfigError


@pytest.mark.parametrize(
    ("listen", "target"),
    [
        ("127.0.0.1:4317", "127.0.0.1:4317"),
        ("127.0.0.1:4317", "localhost:4317"),
        ("0.0.0.0:4317", "127.0.0.1:4317"),
        ("[::1]:4317", "127.0.0.1:4317"),
    ],
)
def test_metrics_endpoint_reaching_our_own_receiver_is_refused(listen: str, target: str) -> None:
    """Metrics sent to falco-risk's own gRPC listener would loop, so the key is refused."""
    with pytest.raises(ConfigError, match=r"metrics_otlp_endpoint .* own grpc_endpoint"):
        Config(grpc_endpoint=listen, metrics_otlp_endpoint=target, allow_insecure_listen=True)


def test_metrics_endpoint_on_our_http_port_is_refused_too() -> None:
    """The OTLP/HTTP listener is falco-risk's own as well."""
    with pytest.raises(ConfigError, match="own http_endpoint"):
        Config(metrics_otlp_endpoint="127.0.0.1:4318", metrics_otlp_protocol="http")


@pytest.mark.parametrize("target", ["collector.monitoring:4317", "10.1.2.3:4317", "127.0.0.1:4319"])
def test_metrics_endpoint_elsewhere_is_accepted(target: str) -> None:
    """Another host on the same port, or another local port, is a different process."""
    config = Config(
        grpc_endpoint="0.0.0.0:4317", metrics_otlp_endpoint=target, allow_insecure_listen=True
    )

    assert config.metrics_otlp_endpoint == target


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"metrics_otlp_protocol": "udp"}, "metrics_otlp_protocol must be one of grpc, http"),
        ({"metrics_interval": 0.0}, "metrics_interval must be greater than 0"),
        ({"metrics_prometheus_endpoint": "9464"}, "is not HOST:PORT"),
        ({"metrics_otlp_endpoint": "collector"}, "is not HOST:PORT"),
    ],
)
def test_bad_metrics_settings_name_the_key(settings: dict[str, object], message: str) -> None:
    """Each invalid self-monitoring value is refused with a message naming it."""
    with pytest.raises(ConfigError, match=message):
        Config(**settings)  # type: ignore[arg-type]


def test_metrics_keys_come_from_the_environment() -> None:
    """The self-monitoring keys follow the FALCO_RISK_* naming like every other key."""
    environ = {
        "FALCO_RISK_METRICS_PROMETHEUS_ENDPOINT": "0.0.0.0:9464",
        "FALCO_RISK_METRICS_INTERVAL": "15",
        "FALCO_RISK_READY_REQUIRES_FORWARD": "false",
    }

    config = load_config(environ=environ)

    assert config.metrics_prometheus_endpoint == "0.0.0.0:9464"
    assert config.metrics_interval == 15.0
    assert config.ready_requires_forward is False
