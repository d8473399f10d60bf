"""``passage serve`` in the lab's server namespace, configured for the lab.

Inside a fresh namespace every port is free, so Passage gets the well-known
ones: STUN/TURN on 3478 (UDP and TCP), TURN over TLS on 443 (what a host behind
a TCP-443-only firewall can reach), the HTTPS API on 8443.

What the lab tells Passage, and why:

- ``--listen-ip 203.0.113.10`` (and ``--listen-ip 203.0.113.11`` with
  ``alt=True``) and ``--relay-ip 203.0.113.10``: the server's own addresses.
  No ``--public-ip``: nothing NATs Passage here, its address is its public one.
- ``--allow-peer 203.0.113.0/24 --allow-peer 198.51.100.0/24``: the lab's
  internet is made of RFC 5737 documentation ranges, which Passage's default
  peer policy refuses to relay to (``src/passage/turn/peers.py``, 403 with
  reason ``documentation``). Without these, relaying to a NAT's WAN address, or
  to another relayed address, would be denied.

The server's second address (:attr:`natlab.Server.alt_ip`) is there for RFC
5780 (``--alt-ip``); pass that flag in ``extra_args`` once Passage has it.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from natlab.lab import INTERNET_RANGES
from passage_server import ServerInfo, stop, wait_until_listening

if TYPE_CHECKING:
    from natlab.lab import Lab

TURN_PORT = 3478
TURNS_PORT = 443
API_PORT = 8443
RELAY_PORTS = (49152, 49407)
_STOP_WAIT = 20.0


@dataclass(frozen=True)
class LabPassage:
    """A running ``passage serve`` in the lab, and where to reach it."""

    info: ServerInfo
    """Ports, data directory, CA certificate, the static user ``alice:wonderland``."""
    process: subprocess.Popen[Any]
    log: Path
    """Its combined stdout and stderr."""
    alt_ip: str
    """The server's second address (Passage listens there only with ``alt=True``)."""

    @property
    def ip(self) -> str:
        return self.info.host

    @property
    def stun(self) -> tuple[str, int]:
        """STUN/TURN over UDP and TCP."""
        return self.info.host, self.info.turn_port

    @property
    def turns(self) -> tuple[str, int]:
        """TURN over TLS (trust :attr:`ServerInfo.ca_cert`)."""
        return self.info.host, self.info.turns_port


def lab_args(lab: Lab, *, alt: bool) -> list[str]:
    """The flags that fit Passage to the lab (see the module docstring)."""
    args = ["--relay-ip", lab.server.ip]
    if alt:
        args += ["--listen-ip", lab.server.alt_ip]
    for cidr in INTERNET_RANGES:
        args += ["--allow-peer", cidr]
    return args


@contextmanager
def serve(
    lab: Lab,
    data_dir: Path,
    *extra_args: str,
    alt: bool = False,
    turn_port: int = TURN_PORT,
    turns_port: int = TURNS_PORT,
    api_port: int = API_PORT,
    relay_ports: tuple[int, int] = RELAY_PORTS,
) -> Iterator[LabPassage]:
    """Passage running in ``lab.server`` until the block ends, then SIGINT (no drain); it
    must exit 0.

    ``extra_args`` go after the lab's own flags. Yields once the TURN and API
    ports accept connections.
    """
    info = ServerInfo(
        data_dir=data_dir, turn_port=turn_port, turns_port=turns_port, relay_ports=relay_ports,
        api_port=api_port, host=lab.server.ip, extra_args=[*lab_args(lab, alt=alt), *extra_args],
    )  # fmt: skip
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir.parent / "passage.log"
    with log.open("wb") as out:
        process = lab.python(
            lab.server, "-m", "passage", *info.args(), stdout=out, stderr=subprocess.STDOUT
        )
    try:
        lab.call(lab.server, wait_until_listening, info, process)
        yield LabPassage(info, process, log, lab.server.alt_ip)
    finally:
        stop(process, timeout=_STOP_WAIT, how=signal.SIGINT)
    assert process.returncode == 0, f"exit status {process.returncode}\n{log.read_text()[-2000:]}"
