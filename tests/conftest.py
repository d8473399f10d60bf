"""Fixtures any test may ask for by name."""

from __future__ import annotations

import os

import pytest


@pytest.fixture
def no_passage_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``PASSAGE_*`` variable of the machine running the tests reaches the code under test
    (a module opts in with ``pytestmark = pytest.mark.usefixtures("no_passage_environment")``)."""
    for name in list(os.environ):
        if name.startswith("PASSAGE_"):
            monkeypatch.delenv(name)
