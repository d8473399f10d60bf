"""pytest fixtures for the lab. A test directory that uses them imports them in its conftest::

    from natlab.fixtures import lab  # noqa: F401

A test asking for ``lab`` is skipped, with the plain reason, on a machine that
cannot build network namespaces; with ``PASSAGE_NATLAB_REQUIRED=1`` (as CI
sets) it fails instead, so a lab that silently stopped working is noticed.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from natlab import availability
from natlab.lab import Lab


def skip_unless_available() -> None:
    """Skip (or, where required, fail) the calling test if the lab cannot run here."""
    why = availability.reason()
    if why is None:
        return
    if availability.required():
        pytest.fail(f"{why} ({availability.REQUIRED_ENV} is set)")
    pytest.skip(why)


@pytest.fixture
def lab() -> Iterator[Lab]:
    """A started lab (internet router and server namespace), torn down after the test."""
    skip_unless_available()
    with Lab() as started:
        yield started
