"""coturn's ``turnutils_natdiscovery`` (4.6.1), unmodified, against a real ``passage serve``.

It runs the RFC 5780 tests: mapping (§4.3: test I, then test II to OTHER-ADDRESS's
IP), filtering (§4.4: change IP and port, then change port), lifetime (§4.6,
with RESPONSE-PORT) and PADDING (-P). On loopback there is no NAT, so it must
report endpoint-independent mapping and filtering. It reads answers with
``recv``, not ``recvfrom``, so it never checks where they came from; the source
addresses are checked in ``tests/turn/aio/test_edge_nat_discovery.py``. It exits 0
whatever it found, so each run is judged by its output.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from passage_server import ServerInfo, free_port, passage_process

pytestmark = pytest.mark.interop

NATDISCOVERY = shutil.which("turnutils_natdiscovery")
A1, A2 = "127.0.0.1", "127.0.0.2"
RUN_TIMEOUT = 60.0
"""natdiscovery waits 3 s per unanswered probe; a run that passes takes well under a second."""


@pytest.fixture(scope="module", autouse=True)
def _natdiscovery() -> None:
    """Fail in CI, skip elsewhere, when coturn's tools or a second loopback IP are missing."""
    if NATDISCOVERY is None:
        message = "turnutils_natdiscovery not installed (Debian/Ubuntu package: coturn)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind((A2, 0))
    except OSError:
        pytest.skip("127.0.0.2 does not bind")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerInfo, int]]:
    alt_port = free_port()
    tmp_path = tmp_path_factory.mktemp("natdiscovery")
    with passage_process(tmp_path, "--alt-ip", A2, "--alt-port", str(alt_port)) as (info, _):
        yield info, alt_port


def natdiscovery(port: int, *options: str) -> str:
    assert NATDISCOVERY is not None
    run = subprocess.run(
        [NATDISCOVERY, *options, "-p", str(port), A1],
        capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


def test_mapping_and_filtering_are_endpoint_independent_on_loopback(
    server: tuple[ServerInfo, int],
) -> None:
    info, alt_port = server
    out = natdiscovery(info.turn_port, "-m", "-f", "-L", A1)
    assert "No NAT! (Endpoint Independent Mapping)" in out  # XOR-MAPPED-ADDRESS is our own
    assert "NAT with Endpoint Independent Mapping!" in out
    assert "NAT with Endpoint Independent Filtering!" in out
    assert f"Other addr: : {A2}:{alt_port}" in out
    assert f"Response origin: : {A2}:{alt_port}" in out  # test II of filtering: Ca:Cp
    assert "No ALG: Mapped == XOR-Mapped" in out
    assert "error" not in out and "timeout" not in out, out


def test_padding_is_answered(server: tuple[ServerInfo, int]) -> None:
    info, _ = server
    out = natdiscovery(info.turn_port, "-m", "-f", "-P")
    assert "NAT with Endpoint Independent Mapping!" in out
    assert "NAT with Endpoint Independent Filtering!" in out
    assert "error" not in out and "timeout" not in out, out


def test_lifetime_probe_gets_its_answer_through_response_port(
    server: tuple[ServerInfo, int],
) -> None:
    # Port Y asks for the answer on port X's mapping (RFC 5780 §4.6); it arrives on X.
    info, _ = server
    out = natdiscovery(info.turn_port, "-t", "-T", "1")
    assert "RFC 5780 response 2" in out
    assert "error" not in out and "timeout" not in out, out


def test_without_alt_ip_it_finds_no_rfc5780_server(tmp_path: Path) -> None:
    """The same tool against a single-address Passage: no OTHER-ADDRESS, so no verdict."""
    with passage_process(tmp_path) as (info, _):
        out = natdiscovery(info.turn_port, "-m", "-f")
    assert "UDP reflexive addr" in out  # it did get answers
    assert "RFC 5780 response" not in out
    assert "NAT with" not in out
