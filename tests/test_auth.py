"""Tests for the bearer-token check and token files."""

from pathlib import Path

import pytest

from falco_risk.auth import BearerCheck, TokenSource, bearer_check
from falco_risk.errors import ConfigError


@pytest.mark.parametrize(
    ("header", "allowed"),
    [
        ("Bearer tok-1", True),
        ("bearer tok-1", True),
        ("  Bearer   tok-1  ", True),
        ("Bearer tok-2", False),
        ("Bearer tok-1x", False),
        ("Bearer", False),
        ("Basic tok-1", False),
        ("tok-1", False),
        ("", False),
        (None, False),
        ("Bearer tök-1", False),
    ],
)
def test_bearer_check_accepts_only_the_exact_token(header: str | None, allowed: bool) -> None:
    """Only `Bearer <token>` with the exact token passes; the scheme is case-insensitive."""
    check = BearerCheck(TokenSource(value="tok-1"))

    assert check.allows(header) is allowed


def test_token_file_is_read_again_when_replaced(tmp_path: Path) -> None:
    """A replaced token file takes effect on the next check."""
    path = tmp_path / "token"
    path.write_text("first\n")
    source = TokenSource(str(path))
    path.with_name("new").write_text("second\n")

    path.with_name("new").replace(path)

    assert source.current() == "second"


def test_unreadable_or_empty_replacement_keeps_the_last_token(tmp_path: Path) -> None:
    """An emptied or deleted token file leaves the last good token in force."""
    path = tmp_path / "token"
    path.write_text("first\n")
    source = TokenSource(str(path))

    path.write_text("   \n")
    after_empty = source.current()
    path.unlink()
    after_delete = source.current()

    assert after_empty == after_delete == "first"


def test_missing_or_empty_token_file_is_a_configuration_error(tmp_path: Path) -> None:
    """A token file that cannot give a token stops the start-up, naming the file."""
    empty = tmp_path / "empty"
    empty.write_text("\n")

    with pytest.raises(ConfigError, match=r"auth_token file .*one token"):
        bearer_check(str(empty), "")
    with pytest.raises(ConfigError, match=r"auth_token file .*missing"):
        bearer_check(str(tmp_path / "missing"), "")


def test_no_token_configured_means_no_check() -> None:
    """Without a token file or value, the receivers do not check tokens."""
    assert bearer_check("", "") is None
