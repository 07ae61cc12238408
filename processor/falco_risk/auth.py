"""Bearer tokens: the check on the receivers and the token sent to the next hop."""

from __future__ import annotations

import hmac
import logging
import threading

from falco_risk.errors import ConfigError
from falco_risk.watch import WatchedFiles

logger = logging.getLogger(__name__)

SCHEME = "bearer"


class TokenSource:
    """A secret given as a value, or read from a file and read again when the file changes."""

    def __init__(self, path: str = "", value: str = "", name: str = "token") -> None:
        self.name = name
        self._files = WatchedFiles(path) if path else None
        self._lock = threading.Lock()
        self._value = value
        if self._files is not None:
            try:
                self._reload()
            except (OSError, ValueError) as exc:
                raise ConfigError(f"{name} file {path}: cannot read a token: {exc}") from exc

    def current(self) -> str:
        """The token in force; a file that became unreadable or empty keeps the last one."""
        if self._files is not None and self._files.changed():
            with self._lock:
                try:
                    self._reload()
                    logger.info("%s file changed; the new token is in force", self.name)
                except (OSError, ValueError) as exc:
                    logger.warning(
                        "%s file cannot be read (%s); keeping the last token", self.name, exc
                    )
        return self._value

    def _reload(self) -> None:
        assert self._files is not None
        (data,), stamp = self._files.read()
        token = data.decode("utf-8").strip()
        if not token or any(c.isspace() for c in token):
            raise ValueError("the file must hold one token without spaces")
        self._value = token
        self._files.mark_read(stamp)


class BearerCheck:
    """Accepts requests whose ``Authorization`` header carries the expected bearer token."""

    def __init__(self, source: TokenSource) -> None:
        self._source = source

    def allows(self, authorization: str | None) -> bool:
        """True when ``authorization`` is ``Bearer <token>`` with the token in force."""
        if not authorization:
            return False
        scheme, _, presented = authorization.strip().partition(" ")
        if scheme.lower() != SCHEME:
            return False
        # Compared in constant time so the answer's timing leaks nothing of the token.
        expected = self._source.current().encode()
        return hmac.compare_digest(presented.strip().encode(), expected)


def bearer_check(path: str, value: str) -> BearerCheck | None:
    """The receivers' check, or None when no token is configured."""
    if not path and not value:
        return None
    return BearerCheck(TokenSource(path, value, name="auth_token"))
