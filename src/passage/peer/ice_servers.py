"""The ICE servers a peer may use, read from a relay configuration (pure).

Passage answers ``issueRelayConfiguration`` as ACS does, with ``iceServers``:
entries of ``urls`` (``stun:``, ``turn:`` with ``?transport=udp|tcp``,
``turns:``) and the ephemeral ``username`` and ``credential`` they share.
:func:`parse_relay_configuration` turns that into typed servers (RFC 7064 /
RFC 7065 URIs); the SDK asks for it
(:func:`passage.peer.sdk.relay_configuration.fetch_ice_servers`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from passage.addresses import Transport
from passage.peer.errors import PeerError

__all__ = [
    "IceServers",
    "StunServer",
    "TurnServer",
    "parse_ice_url",
    "parse_relay_configuration",
]

STUN_PORT, STUNS_PORT = 3478, 5349
"""Default ports of ``stun:``/``turn:`` and ``turns:`` (RFC 7064 §3.2, RFC 7065 §3)."""


@dataclass(frozen=True, slots=True)
class StunServer:
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class TurnServer:
    host: str
    port: int
    transport: Transport
    username: str
    password: str = field(repr=False)

    def __str__(self) -> str:
        scheme = "turns" if self.transport is Transport.TLS else "turn"
        transport = "tcp" if self.transport is Transport.TLS else self.transport
        return f"{scheme}:{self.host}:{self.port}?transport={transport}"


@dataclass(frozen=True, slots=True)
class IceServers:
    stun: tuple[StunServer, ...]
    turn: tuple[TurnServer, ...]
    """In the order the server listed them; each may yield a relayed candidate."""
    expires_on: str | None = None


def parse_ice_url(url: str) -> tuple[str, str, int, Transport | None] | None:
    """``(scheme, host, port, transport)`` of a ``stun:``/``turn:``/``turns:`` URL; None if not one.

    ``turn:`` without ``?transport=`` is UDP; ``turns:`` is TLS (over TCP).
    """
    scheme, colon, rest = url.strip().partition(":")
    scheme = scheme.lower()
    if not colon or scheme not in ("stun", "stuns", "turn", "turns"):
        return None
    address, _, query = rest.partition("?")
    params = dict(item.partition("=")[::2] for item in query.split("&") if item)
    if address.startswith("["):
        host, bracket, after = address[1:].partition("]")
        if not bracket or (after and not after.startswith(":")):
            return None
        port_text = after.removeprefix(":")
    else:
        host, _, port_text = address.rpartition(":") if ":" in address else (address, "", "")
    secure = scheme.endswith("s")
    try:
        port = int(port_text) if port_text else (STUNS_PORT if secure else STUN_PORT)
    except ValueError:
        return None
    if not host or not 0 < port < 65536:
        return None
    transport: Transport | None = None
    if scheme.startswith("turn"):
        wanted = params.get("transport", "tcp" if secure else "udp").lower()
        if wanted not in ("udp", "tcp") or (secure and wanted == "udp"):
            return None  # DTLS relays are not something aioice speaks
        transport = Transport.TLS if secure else Transport(wanted)
    return scheme, host, port, transport


def parse_relay_configuration(body: object) -> IceServers:
    """The servers of a relay configuration answer; ``PeerError`` if it is not one."""
    entries = body.get("iceServers") if isinstance(body, dict) else None
    if not isinstance(entries, list):
        raise PeerError("the relay configuration has no iceServers")
    stun: list[StunServer] = []
    turn: list[TurnServer] = []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        urls = entry.get("urls")
        username, credential = entry.get("username"), entry.get("credential")
        for url in [urls] if isinstance(urls, str) else urls if isinstance(urls, list) else []:
            parsed = parse_ice_url(url) if isinstance(url, str) else None
            if parsed is None:
                continue
            scheme, host, port, transport = parsed
            if transport is None:
                if scheme == "stun" and StunServer(host, port) not in stun:
                    stun.append(StunServer(host, port))
            elif isinstance(username, str) and isinstance(credential, str):
                server = TurnServer(host, port, transport, username, credential)
                if all((t.host, t.port, t.transport) != (host, port, transport) for t in turn):
                    turn.append(server)
    expires = body.get("expiresOn") if isinstance(body, dict) else None
    return IceServers(tuple(stun), tuple(turn), expires if isinstance(expires, str) else None)
