"""Fixtures for the offload tests: the compiled XDP program, loaded, or a skip that says why."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from offload_lab import build_object, unavailable

from natlab.fixtures import lab  # noqa: F401
from passage.offload.capabilities import OffloadUnavailable
from passage.offload.xdp.program import XdpProgram


@pytest.fixture
def xdp_program() -> Iterator[XdpProgram]:
    """The program loaded (not attached), closed after the test."""
    path = build_object()
    try:
        program = XdpProgram(path)
    except OffloadUnavailable as exc:
        unavailable(str(exc))
        raise
    try:
        yield program
    finally:
        program.close()
