"""TLS for the receivers and for the forwarder, with certificate files re-read on rotation.

The receivers' certificate and key (and the client CA, when mutual TLS is on)
are checked when a connection is accepted: when any of the files changed,
they are loaded again and new connections use them, so a rotated certificate
needs no restart. A pair that does not load (a key that does not match its
certificate, a file half written) is refused and the previous pair stays.
"""

from __future__ import annotations

import logging
import ssl
import threading

import grpc

from falco_risk.errors import ConfigError
from falco_risk.watch import WatchedFiles

logger = logging.getLogger(__name__)

MINIMUM_VERSION = ssl.TLSVersion.TLSv1_2


class ServerTls:
    """The receivers' certificate, key and optional client CA, reloaded when the files change."""

    def __init__(self, cert_file: str, key_file: str, client_ca_file: str = "") -> None:
        self.cert_file = cert_file
        self.key_file = key_file
        self.client_ca_file = client_ca_file
        self._files = WatchedFiles(cert_file, key_file, client_ca_file)
        self._lock = threading.Lock()
        # Each reload bumps the generation; gRPC is handed a configuration
        # only when it has not seen the current generation yet.
        self._generation = 0
        self._grpc_generation = 0
        try:
            self._context, self._pem = self._load()
        except (OSError, ValueError, ssl.SSLError) as exc:
            raise ConfigError(f"tls_cert_file / tls_key_file: cannot load: {exc}") from exc

    @property
    def mutual(self) -> bool:
        """True when clients must present a certificate signed by the client CA."""
        return bool(self.client_ca_file)

    def ssl_context(self) -> ssl.SSLContext:
        """The context for a newly accepted HTTP connection."""
        self._refresh()
        return self._context

    def grpc_credentials(self) -> grpc.ServerCredentials:
        """Server credentials whose certificate gRPC fetches again at each new connection."""
        with self._lock:
            initial = self._grpc_configuration()
        return grpc.dynamic_ssl_server_credentials(
            initial,
            self._fetch_for_grpc,  # type: ignore[arg-type]  # None means "unchanged"
            require_client_authentication=self.mutual,
        )

    def _fetch_for_grpc(self) -> grpc.ServerCertificateConfiguration | None:
        # Called by gRPC's core for each handshake; an exception here would
        # fail the handshake, so every problem keeps the current certificate.
        try:
            self._refresh()
            with self._lock:
                if self._grpc_generation == self._generation:
                    return None
                return self._grpc_configuration()
        except Exception:
            logger.exception("cannot hand the reloaded certificate to gRPC")
            return None

    def _grpc_configuration(self) -> grpc.ServerCertificateConfiguration:
        cert, key, ca = self._pem
        self._grpc_generation = self._generation
        return grpc.ssl_server_certificate_configuration(
            [(key, cert)], root_certificates=ca or None
        )

    def _refresh(self) -> None:
        if not self._files.changed():
            return
        with self._lock:
            if not self._files.changed():
                return
            try:
                self._context, self._pem = self._load()
            except (OSError, ValueError, ssl.SSLError) as exc:
                logger.warning(
                    "TLS files changed but cannot be loaded (%s); keeping the current certificate",
                    exc,
                )
                return
            self._generation += 1
        logger.info("TLS certificate reloaded from %s", self.cert_file)

    def _load(self) -> tuple[ssl.SSLContext, tuple[bytes, bytes, bytes]]:
        """Read the files once, check the pair loads, and mark that version as read."""
        contents, stamp = self._files.read()
        cert, key = contents[0], contents[1]
        ca = contents[2] if self.client_ca_file else b""

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = MINIMUM_VERSION
        context.set_alpn_protocols(["http/1.1"])
        context.load_cert_chain(self.cert_file, self.key_file)
        if ca:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(cadata=ca.decode("ascii"))
        if self._files.stamp() != stamp:
            raise ValueError("the files changed while being loaded")

        self._files.mark_read(stamp)
        return context, (cert, key, ca)


class ClientTls:
    """What the forwarder presents and trusts toward the next hop."""

    def __init__(self, ca_file: str = "", cert_file: str = "", key_file: str = "") -> None:
        self._files = WatchedFiles(ca_file, cert_file, key_file)
        self._has_ca = bool(ca_file)
        self._pair = (cert_file, key_file) if cert_file else None
        self._lock = threading.Lock()
        try:
            self._credentials = self._load()
        except (OSError, ValueError, ssl.SSLError) as exc:
            raise ConfigError(f"forward_tls_*_file: cannot load: {exc}") from exc

    def credentials(self) -> grpc.ChannelCredentials:
        """The channel credentials as last loaded."""
        return self._credentials

    def reload_if_changed(self) -> bool:
        """Load the files again when they changed; True when new credentials are in force."""
        if not self._files.changed():
            return False
        with self._lock:
            try:
                self._credentials = self._load()
            except (OSError, ValueError, ssl.SSLError) as exc:
                logger.warning(
                    "forward TLS files changed but cannot be loaded (%s); keeping the current ones",
                    exc,
                )
                return False
        logger.info("forward TLS files reloaded")
        return True

    def _load(self) -> grpc.ChannelCredentials:
        contents, stamp = self._files.read()
        items = iter(contents)
        ca = next(items) if self._has_ca else None
        cert, key = (next(items), next(items)) if self._pair else (None, None)
        if self._pair:
            # Fails here, with a message, rather than at each handshake.
            ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_cert_chain(*self._pair)
        if self._files.stamp() != stamp:
            raise ValueError("the files changed while being loaded")
        self._files.mark_read(stamp)
        # Without a CA file the system's trusted roots are used.
        return grpc.ssl_channel_credentials(
            root_certificates=ca, private_key=key, certificate_chain=cert
        )
