"""The host's own addresses, as the routing table sees them."""

from __future__ import annotations

import socket

from passage.addresses import AddressFamily

_PROBE = {AddressFamily.IPV4: "192.0.2.1", AddressFamily.IPV6: "2001:db8::1"}
"""Documentation addresses used only to ask the routing table for a source IP:
connecting a UDP socket sends nothing."""


def primary_ip(family: AddressFamily) -> str | None:
    """The source address the host would use for the internet, if it has a route."""
    sock_family = socket.AF_INET6 if family == AddressFamily.IPV6 else socket.AF_INET
    with socket.socket(sock_family, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((_PROBE[family], 9))
        except OSError:
            return None
        return str(probe.getsockname()[0])
