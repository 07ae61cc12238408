"""Fixtures shared by the reliability tests: throwaway certificates and the figures summary."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from reliability.records import REPORT_FILE, REPORTED


@dataclass(frozen=True)
class Pki:
    """Certificate files on disk: a CA, a server pair for 127.0.0.1, and a client pair."""

    ca: trustme.CA
    ca_file: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def write_pair(cert: trustme.LeafCert, directory: Path, name: str) -> tuple[Path, Path]:
    """Write a leaf certificate chain and its key as PEM files."""
    cert_file, key_file = directory / f"{name}.pem", directory / f"{name}.key"
    cert_file.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    key_file.write_bytes(cert.private_key_pem.bytes())
    return cert_file, key_file


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    """A fresh CA with a server certificate for 127.0.0.1 and a client certificate."""
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    server_cert, server_key = write_pair(
        ca.issue_cert("127.0.0.1", "localhost"), tmp_path, "server"
    )
    client_cert, client_key = write_pair(
        ca.issue_cert("client.falco-risk.test"), tmp_path, "client"
    )
    return Pki(ca, ca_file, server_cert, server_key, client_cert, client_key)


@pytest.fixture(scope="session", autouse=True)
def _fresh_report() -> None:
    REPORT_FILE.unlink(missing_ok=True)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """List every scenario's figures at the end of the run, without -s."""
    if not REPORTED:
        return
    terminalreporter.section("reliability figures")
    terminalreporter.write_line(
        f"{'scenario':<48} {'sent':>7} {'delivered':>9} {'dup':>5} {'lost':>5} {'max RSS':>10}"
    )
    for row in REPORTED:
        terminalreporter.write_line(
            f"{row.scenario:<48} {row.sent:>7} {row.delivered:>9} {row.duplicates:>5} "
            f"{row.lost:>5} {row.max_rss_kib:>7} KiB"
        )
    terminalreporter.write_line(f"(also in {REPORT_FILE})")
