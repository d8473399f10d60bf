"""What ``passage doctor`` probes: the server's transports, from ICE server URLs or from flags.

A relay configuration lists URLs (RFC 7064 ``stun:``, RFC 7065 ``turn:`` and
``turns:``); :func:`targets_from_urls` turns them into :class:`Target` values
in the order the doctor prefers them for media: UDP, then TCP, then TLS, each
in the order listed. Without a configuration, :func:`default_targets` names
the usual four: UDP and TCP on 3478, TLS on 5349 and on 443.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from passage.addresses import Transport
from passage.ice_uris import DEFAULT_PORT, IceScheme, parse_ice_uri

__all__ = [
    "DEFAULT_TLS_PORTS",
    "DEFAULT_TURN_PORT",
    "Target",
    "default_targets",
    "targets_from_urls",
]

DEFAULT_TURN_PORT = DEFAULT_PORT
"""STUN/TURN over UDP and TCP (RFC 8489 §18.5, RFC 8656 §18)."""

DEFAULT_TLS_PORTS = (5349, 443)
"""TURN over TLS: its own port (RFC 8656 §18), then 443, which strict firewalls let out."""

_PREFERENCE = {Transport.UDP: 0, Transport.TCP: 1, Transport.TLS: 2}
"""Media over UDP beats TCP beats TLS: less head-of-line blocking, less overhead."""


@dataclass(frozen=True, slots=True)
class Target:
    """One way to reach the relay: a transport, a host (name or IP) and a port."""

    transport: Transport
    host: str
    port: int

    @property
    def label(self) -> str:
        """``UDP 3478``, ``TLS 443``: how the report names it."""
        return f"{self.transport.value.upper()} {self.port}"

    @property
    def preference(self) -> int:
        """Lower is better for media: UDP, TCP, TLS."""
        return _PREFERENCE[self.transport]


def targets_from_urls(
    urls: Iterable[str], host: str | None = None
) -> tuple[Target | None, tuple[Target, ...]]:
    """(the STUN server, the TURN targets in preference order) of one ICE server entry.

    The host is ``host`` when given, else the first one the URLs name; URLs
    of other hosts are left out (the doctor diagnoses one relay). The STUN
    server is the ``stun:`` URL, else the UDP ``turn:`` one (Passage answers
    Binding there too).
    """
    parsed = [
        found
        for url in urls
        if (found := parse_ice_uri(url)) is not None and found.scheme is not IceScheme.STUNS
    ]  # STUN over TLS: not what the doctor probes
    if not parsed:
        return None, ()
    chosen = host or next((u.host for u in parsed if u.transport is not None), parsed[0].host)
    mine = [u for u in parsed if host is not None or u.host == chosen]
    turn = _ordered(Target(u.transport, chosen, u.port) for u in mine if u.transport is not None)
    stun = next((Target(Transport.UDP, chosen, u.port) for u in mine if u.transport is None), None)
    if stun is None:
        stun = next((t for t in turn if t.transport is Transport.UDP), None)
    return stun, turn


def default_targets(
    host: str, turn_port: int = DEFAULT_TURN_PORT, tls_ports: Sequence[int] = DEFAULT_TLS_PORTS
) -> tuple[Target, tuple[Target, ...]]:
    """(STUN server, targets): UDP and TCP on ``turn_port``, TLS on each of ``tls_ports``."""
    targets = [Target(Transport.UDP, host, turn_port), Target(Transport.TCP, host, turn_port)]
    targets += [Target(Transport.TLS, host, port) for port in tls_ports]
    return targets[0], _ordered(targets)


def _ordered(targets: Iterable[Target]) -> tuple[Target, ...]:
    unique = list(dict.fromkeys(targets))
    return tuple(sorted(unique, key=lambda target: target.preference))
