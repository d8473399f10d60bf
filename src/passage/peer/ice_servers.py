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
from passage.ice_uris import IceScheme, IceUri, parse_ice_uri
from passage.peer.errors import PeerError

__all__ = [
    "IceServers",
    "StunServer",
    "TurnServer",
    "parse_relay_configuration",
]


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
        return str(IceUri.turn(self.host, self.port, self.transport))


@dataclass(frozen=True, slots=True)
class IceServers:
    stun: tuple[StunServer, ...]
    turn: tuple[TurnServer, ...]
    """In the order the server listed them; each may yield a relayed candidate."""
    expires_on: str | None = None


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
            parsed = parse_ice_uri(url) if isinstance(url, str) else None
            if parsed is None:
                continue
            host, port, transport = parsed.host, parsed.port, parsed.transport
            if transport is None:
                if parsed.scheme is IceScheme.STUN and StunServer(host, port) not in stun:
                    stun.append(StunServer(host, port))
            elif isinstance(username, str) and isinstance(credential, str):
                server = TurnServer(host, port, transport, username, credential)
                if all((t.host, t.port, t.transport) != (host, port, transport) for t in turn):
                    turn.append(server)
    expires = body.get("expiresOn") if isinstance(body, dict) else None
    return IceServers(tuple(stun), tuple(turn), expires if isinstance(expires, str) else None)
