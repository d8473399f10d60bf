"""What --offload xdp needs from the process, and the error that names what is missing."""

from __future__ import annotations

import pytest

from passage.offload.capabilities import (
    effective_capabilities,
    explain_missing,
    missing_capabilities,
)

ROOT = 0x000001FFFFFFFFFF
STATUS = "Name:\tpython\nCapInh:\t0000000000000000\nCapEff:\t{:016x}\n"


def test_root_has_everything() -> None:
    assert missing_capabilities(effective_capabilities(STATUS.format(ROOT))) == []


@pytest.mark.parametrize(
    ("bits", "missing"),
    [
        (0, ["CAP_BPF", "CAP_NET_ADMIN"]),
        (1 << 39, ["CAP_NET_ADMIN"]),
        (1 << 12, ["CAP_BPF"]),
        ((1 << 39) | (1 << 12), []),
        ((1 << 21) | (1 << 12), []),
    ],
    ids=["none", "bpf-only", "net-admin-only", "bpf-and-net-admin", "sys-admin-and-net-admin"],
)
def test_each_missing_capability_is_named(bits: int, missing: list[str]) -> None:
    assert missing_capabilities(bits) == missing


def test_the_error_says_how_to_get_them() -> None:
    text = explain_missing(["CAP_BPF", "CAP_NET_ADMIN"])
    assert "CAP_BPF and CAP_NET_ADMIN" in text and "root" in text


def test_a_status_without_capabilities_is_an_error() -> None:
    with pytest.raises(ValueError):
        effective_capabilities("Name:\tpython\n")
