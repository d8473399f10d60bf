"""What a process needs to load and attach the XDP program, and how to say what is missing.

Pure: the adapter reads ``CapEff`` from ``/proc/self/status`` and passes it in.
Loading a program and creating maps needs ``CAP_BPF`` (or ``CAP_SYS_ADMIN``, which
covers it on kernels before 5.8 and still does); attaching it to an interface
needs ``CAP_NET_ADMIN``. Root has both.
"""

from __future__ import annotations

import enum


class Capability(enum.IntEnum):
    """The Linux capability bits that matter here (``linux/capability.h``)."""

    NET_ADMIN = 12
    SYS_ADMIN = 21
    BPF = 39


class OffloadUnavailable(RuntimeError):
    """The kernel fast path cannot run here; the message says why and what would fix it."""


def effective_capabilities(status: str) -> int:
    """The ``CapEff`` bit set from the text of ``/proc/<pid>/status``."""
    for line in status.splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    raise ValueError("no CapEff line in the process status")


def missing_capabilities(effective: int) -> list[str]:
    """The capabilities still needed for ``--offload xdp``, by name; empty when all are held."""

    def has(capability: Capability) -> bool:
        return bool(effective >> capability & 1)

    missing = []
    if not (has(Capability.BPF) or has(Capability.SYS_ADMIN)):
        missing.append("CAP_BPF")
    if not has(Capability.NET_ADMIN):
        missing.append("CAP_NET_ADMIN")
    return missing


def explain_missing(missing: list[str]) -> str:
    """The error a user sees when capabilities are missing."""
    return (
        f"--offload xdp needs {' and '.join(missing)}: run passage serve as root, or grant them "
        f"(e.g. setcap cap_bpf,cap_net_admin+ep on the interpreter, or AmbientCapabilities= "
        f"in a systemd unit)"
    )
