"""Shared by the offload tests: build the program, skip or fail when it cannot run, lab helpers.

Loading needs root (CAP_BPF and CAP_NET_ADMIN), libbpf 1.x and the object that
``make offload`` builds (clang, libbpf-dev; :func:`build_object` builds it when it
is missing and clang is there). Where ``PASSAGE_NATLAB_REQUIRED=1`` (CI) says this
machine can, a missing piece fails the test instead of skipping it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from natlab import Host, Lab, availability
from passage.offload.xdp.program import default_object

ROOT = Path(__file__).resolve().parents[2]


def unavailable(why: str) -> None:
    """Skip with ``why``; fail instead where the lab is required (CI)."""
    if availability.required():
        pytest.fail(f"{why} ({availability.REQUIRED_ENV} is set)")
    pytest.skip(why)


def build_object() -> Path:
    """The compiled program, built with ``make offload`` when missing or older than its source."""
    target = default_object()
    source = target.with_suffix(".c")
    if target.exists() and target.stat().st_mtime >= source.stat().st_mtime:
        return target
    if shutil.which("clang") is None:
        unavailable("the XDP program is not built and clang is not installed (make offload)")
    done = subprocess.run(
        ["make", "-s", "-C", str(ROOT), "offload"], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        pytest.fail(f"make offload failed:\n{done.stderr}")
    return target


def wire_checksums(lab: Lab, *hosts: Host) -> None:
    """Make ``hosts`` send finished UDP checksums, as packets off a wire have.

    A sender in another namespace of this machine leaves the checksum for
    "hardware" to finish (checksum offload on its veth); the program sends such
    packets to the kernel's UDP instead of relaying them (see docs/offload.md).
    """
    for host in hosts:
        lab.run(host, ["ethtool", "-K", "eth0", "tx", "off"])


def xdp_of(lab: Lab) -> dict[str, object] | None:
    """What ``ip link`` says of the XDP program on the server's eth0, if one is attached."""
    out = lab.run(lab.server, ["ip", "-j", "link", "show", "dev", "eth0"]).stdout
    found: dict[str, object] | None = json.loads(out)[0].get("xdp")
    return found
