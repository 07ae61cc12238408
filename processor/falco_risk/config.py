"""One configuration object, from a YAML file, the environment and CLI flags.

Precedence, highest first: command-line flag, ``FALCO_RISK_*`` environment
variable, configuration file, built-in default. Every key is flat and spelled
the same way everywhere: ``forward_endpoint`` in the file,
``--forward-endpoint`` on the command line, ``FALCO_RISK_FORWARD_ENDPOINT`` in
the environment.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from falco_risk.errors import ConfigError

ENV_PREFIX = "FALCO_RISK_"

DEFAULT_GRPC_ENDPOINT = "127.0.0.1:4317"
DEFAULT_HTTP_ENDPOINT = "127.0.0.1:4318"
DEFAULT_MAX_REQUEST_SIZE = 64 * 1024 * 1024
DEFAULT_FORWARD_MAX_REQUEST_SIZE = 4 * 1024 * 1024
DEFAULT_FORWARD_TIMEOUT_SECONDS = 10.0
DEFAULT_MAX_IN_FLIGHT = 64
DEFAULT_RETRY_AFTER_SECONDS = 1.0
DEFAULT_DRAIN_SECONDS = 30.0
DEFAULT_MAX_ATTRIBUTE_LENGTH = 4096

LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("auto", "json", "text")
COMPRESSIONS = ("none", "gzip")
DEFAULT_METRICS_INTERVAL_SECONDS = 60.0
METRICS_PROTOCOLS = ("grpc", "http")


@dataclass(frozen=True)
class Config:
    """Everything ``falco-risk serve`` needs; validated on creation."""

    grpc_endpoint: str = DEFAULT_GRPC_ENDPOINT
    http_endpoint: str = DEFAULT_HTTP_ENDPOINT
    forward_endpoint: str = ""
    forward_timeout: float = DEFAULT_FORWARD_TIMEOUT_SECONDS
    forward_max_request_size: int = DEFAULT_FORWARD_MAX_REQUEST_SIZE
    forward_compression: str = "none"
    max_request_size: int = DEFAULT_MAX_REQUEST_SIZE
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    retry_after: float = DEFAULT_RETRY_AFTER_SECONDS
    drain_timeout: float = DEFAULT_DRAIN_SECONDS
    catalog: tuple[str, ...] = field(default_factory=tuple)
    allow_insecure_listen: bool = False
    log_level: str = "info"
    log_format: str = "auto"
    # Detection catalog: seconds between checks of the catalog files for
    # changes (0: reload on SIGHUP only), and the cap on distinct series of
    # the falco_risk.detection.matches counter.
    catalog_reload_interval: float = 5.0
    count_series_limit: int = 1000
    # Self-monitoring: where falco-risk's own metrics go, and what /readyz requires.
    metrics_otlp_endpoint: str = ""
    metrics_otlp_protocol: str = "grpc"
    metrics_interval: float = DEFAULT_METRICS_INTERVAL_SECONDS
    metrics_prometheus_endpoint: str = ""
    ready_requires_forward: bool = True
    # Reliability and security: TLS, bearer tokens, bounds on added attributes.
    tls_cert_file: str = ""
    tls_key_file: str = ""
    tls_client_ca_file: str = ""
    auth_token_file: str = ""
    auth_token: str = field(default="", repr=False)
    forward_tls: bool = False
    forward_tls_ca_file: str = ""
    forward_tls_cert_file: str = ""
    forward_tls_key_file: str = ""
    forward_tls_server_name: str = ""
    forward_headers: dict[str, str] = field(default_factory=dict)
    forward_auth_token_file: str = ""
    max_attribute_length: int = DEFAULT_MAX_ATTRIBUTE_LENGTH

    @property
    def tls(self) -> bool:
        """True when both receivers serve TLS."""
        return bool(self.tls_cert_file)

    @property
    def forward_uses_tls(self) -> bool:
        """True when the connection to the next hop uses TLS."""
        return self.forward_tls or any(
            (
                self.forward_tls_ca_file,
                self.forward_tls_cert_file,
                self.forward_tls_key_file,
                self.forward_tls_server_name,
            )
        )

    def __post_init__(self) -> None:
        _validate(self)


KEYS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Config))
_TYPES: dict[str, Any] = {
    f.name: type(f.default) if f.default is not dataclasses.MISSING else type(f.default_factory())  # type: ignore[operator]
    for f in dataclasses.fields(Config)
}


def load_config(
    path: str | None = None,
    environ: Mapping[str, str] | None = None,
    flags: Mapping[str, object] | None = None,
) -> Config:
    """Merge file, environment and flags (in rising precedence) into a Config."""
    environ = os.environ if environ is None else environ
    values: dict[str, object] = {}

    path = path or environ.get(ENV_PREFIX + "CONFIG") or None
    if path:
        values.update(_from_file(Path(path)))
    values.update(_from_environ(environ))
    values.update({k: v for k, v in (flags or {}).items() if v is not None})

    return Config(**values)  # type: ignore[arg-type]


def _from_file(path: Path) -> dict[str, object]:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read configuration: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc

    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: the configuration must be a mapping of keys")

    unknown = sorted(set(document) - set(KEYS))
    if unknown:
        raise ConfigError(f"{path}: unknown key {unknown[0]!r}; known keys: {', '.join(KEYS)}")
    return {key: _coerce(key, value, f"{path}: {key}") for key, value in document.items()}


def _from_environ(environ: Mapping[str, str]) -> dict[str, object]:
    values: dict[str, object] = {}
    for key in KEYS:
        name = ENV_PREFIX + key.upper()
        if name in environ:
            values[key] = _coerce(key, environ[name], name)
    return values


def _coerce(key: str, value: object, where: str) -> object:
    """Turn a file or environment value into the key's type, or say why not."""
    kind = _TYPES[key]
    try:
        if kind is tuple:
            return _as_paths(value)
        if kind is dict:
            return _as_headers(value)
        if kind is bool:
            return _as_bool(value)
        if kind is int and not isinstance(value, bool):
            return int(value)  # type: ignore[call-overload]
        if kind is float and not isinstance(value, bool):
            return float(value)  # type: ignore[arg-type]
        if kind is str and isinstance(value, str | int | float):
            return str(value)
    except (TypeError, ValueError):
        pass
    raise ConfigError(f"{where}: expected {kind.__name__}, got {value!r}")


def _as_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(text)


def _as_paths(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(p for p in value.split(os.pathsep) if p)
    if isinstance(value, list | tuple) and all(isinstance(p, str) for p in value):
        return tuple(value)
    raise ValueError(value)


def _as_headers(value: object) -> dict[str, str]:
    """A mapping of header names to values, or ``name=value,name=value`` text."""
    if isinstance(value, str):
        pairs = [item.partition("=") for item in value.split(",") if item.strip()]
        if any(not sep for _, sep, _ in pairs):
            raise ValueError(value)
        value = {name.strip(): text.strip() for name, _, text in pairs}
    if not isinstance(value, dict):
        raise ValueError(value)
    headers = {str(name).strip().lower(): str(text) for name, text in value.items()}
    if any(not name or text != text.strip() or "\n" in text for name, text in headers.items()):
        raise ValueError(value)
    return headers


def split_endpoint(endpoint: str) -> tuple[str, int]:
    """Split ``host:port`` (``[::1]:port`` for IPv6) into host and port."""
    host, sep, port = endpoint.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"endpoint {endpoint!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


def is_loopback(host: str) -> bool:
    """True when ``host`` names only this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _validate(config: Config) -> None:
    _validate_security(config)
    for key in ("grpc_endpoint", "http_endpoint"):
        host, _ = split_endpoint(getattr(config, key))
        if not is_loopback(host) and not config.tls and not config.allow_insecure_listen:
            raise ConfigError(
                f"{key} {getattr(config, key)!r} listens beyond loopback without TLS; "
                "set tls_cert_file and tls_key_file, or allow_insecure_listen: true "
                "to accept plaintext on the network"
            )
    if config.forward_endpoint:
        split_endpoint(config.forward_endpoint)

    positive = ("forward_timeout", "forward_max_request_size", "max_request_size")
    counts = ("max_in_flight", "max_attribute_length")
    for key in (*positive, *counts, "retry_after", "drain_timeout"):
        if getattr(config, key) <= 0:
            raise ConfigError(f"{key} must be greater than 0, got {getattr(config, key)!r}")

    choices = {
        "forward_compression": COMPRESSIONS,
        "log_level": LOG_LEVELS,
        "log_format": LOG_FORMATS,
        "metrics_otlp_protocol": METRICS_PROTOCOLS,
    }
    for key, allowed in choices.items():
        if getattr(config, key) not in allowed:
            raise ConfigError(
                f"{key} must be one of {', '.join(allowed)}, got {getattr(config, key)!r}"
            )

    if config.catalog_reload_interval < 0:
        raise ConfigError(
            f"catalog_reload_interval must be 0 or more, got {config.catalog_reload_interval!r}"
        )
    if config.count_series_limit <= 0:
        raise ConfigError(
            f"count_series_limit must be greater than 0, got {config.count_series_limit!r}"
        )
    _validate_metrics(config)


def _validate_metrics(config: Config) -> None:
    """Check the self-monitoring keys; a metrics push to our own receiver would loop."""
    if config.metrics_interval <= 0:
        raise ConfigError(
            f"metrics_interval must be greater than 0, got {config.metrics_interval!r}"
        )
    if config.metrics_prometheus_endpoint:
        split_endpoint(config.metrics_prometheus_endpoint)
    if not config.metrics_otlp_endpoint:
        return

    target = split_endpoint(config.metrics_otlp_endpoint)
    for key in ("grpc_endpoint", "http_endpoint"):
        if _reaches(target, split_endpoint(getattr(config, key))):
            raise ConfigError(
                f"metrics_otlp_endpoint {config.metrics_otlp_endpoint!r} is falco-risk's own "
                f"{key}; send metrics to a collector, not back into falco-risk"
            )


def _reaches(target: tuple[str, int], listen: tuple[str, int]) -> bool:
    """True when connecting to ``target`` would reach a listener bound to ``listen``."""
    (target_host, target_port), (listen_host, listen_port) = target, listen
    if target_port != listen_port or listen_port == 0:
        return False
    if target_host == listen_host:
        return True
    # A wildcard listener is reached through loopback too; another host on the
    # same port (the collector's own 4317) is a different process.
    wildcard = ("0.0.0.0", "::")
    own = is_loopback(target_host) or target_host in wildcard
    return own and (is_loopback(listen_host) or listen_host in wildcard)


def _validate_security(config: Config) -> None:
    """Keys that only make sense together, and secrets given twice."""
    pairs = (
        ("tls_cert_file", "tls_key_file"),
        ("forward_tls_cert_file", "forward_tls_key_file"),
    )
    for first, second in pairs:
        if bool(getattr(config, first)) != bool(getattr(config, second)):
            raise ConfigError(f"{first} and {second} must be set together")
    if config.tls_client_ca_file and not config.tls:
        raise ConfigError("tls_client_ca_file needs tls_cert_file and tls_key_file")
    if config.auth_token_file and config.auth_token:
        raise ConfigError("set auth_token_file or auth_token (FALCO_RISK_AUTH_TOKEN), not both")
    if config.auth_token and config.auth_token != config.auth_token.strip():
        raise ConfigError("auth_token must not start or end with white space")
    if "authorization" in config.forward_headers and config.forward_auth_token_file:
        raise ConfigError(
            "forward_headers sets authorization and forward_auth_token_file is set; keep one"
        )
