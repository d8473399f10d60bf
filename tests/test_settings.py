"""What an operator may see of the settings: secrets masked."""

from __future__ import annotations

from passage.settings import _masked_url


def test_a_database_password_is_masked() -> None:
    assert _masked_url("postgresql://bob:s3cret@db:5432/x") == "postgresql://bob:********@db:5432/x"
    assert _masked_url("postgresql://db/x") == "postgresql://db/x"
    assert "s3cret" not in _masked_url("postgresql://bob:s3cret@[::1/x")
