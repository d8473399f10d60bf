"""Fixtures for the offload tests: the compiled XDP program, loaded, or a skip that says why.

Loading needs root (CAP_BPF and CAP_NET_ADMIN), libbpf 1.x and the object that
``make offload`` builds (clang, libbpf-dev; the fixture builds it when it is
missing and clang is there). Where ``PASSAGE_NATLAB_REQUIRED=1`` (CI) says this
machine can, a missing piece fails the test instead of skipping it.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from natlab import availability
from natlab.fixtures import lab  # noqa: F401
from passage.offload.capabilities import OffloadUnavailable
from passage.offload.xdp.program import XdpProgram, default_object

ROOT = Path(__file__).resolve().parents[2]


def _unavailable(why: str) -> None:
    if availability.required():
        pytest.fail(f"{why} ({availability.REQUIRED_ENV} is set)")
    pytest.skip(why)


def build_object() -> Path:
    """The compiled program, built with ``make offload`` when missing (or skip/fail)."""
    target = default_object()
    source = target.with_suffix(".c")
    if target.exists() and target.stat().st_mtime >= source.stat().st_mtime:
        return target
    if shutil.which("clang") is None:
        _unavailable("the XDP program is not built and clang is not installed (make offload)")
    done = subprocess.run(
        ["make", "-s", "-C", str(ROOT), "offload"], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        pytest.fail(f"make offload failed:\n{done.stderr}")
    return target


@pytest.fixture
def xdp_program() -> Iterator[XdpProgram]:
    """The program loaded (not attached), closed after the test."""
    path = build_object()
    try:
        program = XdpProgram(path)
    except OffloadUnavailable as exc:
        _unavailable(str(exc))
        raise
    try:
        yield program
    finally:
        program.close()
