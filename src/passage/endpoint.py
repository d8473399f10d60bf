"""Where clients reach this node: its relay addresses, its advertised host, the URLs built on them.

:class:`RelayAddresses` says which IP relay sockets bind and which one
XOR-RELAYED-ADDRESS names, per family (they differ behind a 1:1 NAT).
:class:`AdvertisedEndpoint` is what this node tells clients: one host and the
port of each service. It is the one builder of the URLs that name them: the
API's, the Hybrid Connections relay's, the ``http://HOST:PORT`` a SAS token
covers, and the STUN/TURN URIs. :mod:`passage.hostaddr` works both out from
the configuration and the host; the app, its banner and the CLI read them.

A leaf: it imports only leaves and does no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from passage.addresses import bracketed, format_address
from passage.ice_uris import IceUri, relay_uris

__all__ = ["AdvertisedEndpoint", "RelayAddresses", "advertised_host"]


@dataclass(frozen=True, slots=True)
class RelayAddresses:
    """Where relay sockets bind, and what we tell clients they are, per family."""

    bind: dict[int, str]
    """Address family → IP the relay sockets bind to."""
    advertised: dict[int, str]
    """Address family → IP put in XOR-RELAYED-ADDRESS (``--public-ip`` behind 1:1 NAT)."""
    port_range: tuple[int, int]
    """Lowest and highest relay port, inclusive."""

    @property
    def families(self) -> frozenset[int]:
        return frozenset(self.bind)


def advertised_host(public_host: str | None, public_ip: str | None, relays: RelayAddresses) -> str:
    """The host clients are told to reach this node at: ``--public-host``, else
    ``--public-ip``, else the first family's relay IP, else loopback."""
    if public_host is not None:
        return public_host
    return public_ip or next(iter(relays.advertised.values()), "127.0.0.1")


@dataclass(frozen=True, slots=True)
class AdvertisedEndpoint:
    """This node as clients see it: a host, and the port of each service (0: off)."""

    host: str
    """A name or an IP address, without brackets."""
    turn_port: int
    """STUN and TURN over UDP and TCP."""
    tls_ports: tuple[int, ...] = ()
    """TURN over TLS, in the order clients should try them."""
    api_port: int = 0
    """The HTTPS API: identities, relay configurations, Hybrid Connections, signaling."""
    http_port: int = 0
    """The same without TLS."""

    def api_url(self, *, plain_http: bool = False) -> str | None:
        """``https://HOST:API_PORT/`` (``http://HOST:HTTP_PORT/`` with ``plain_http``);
        None when that port is off."""
        scheme, port = ("http", self.http_port) if plain_http else ("https", self.api_port)
        return f"{scheme}://{self._at(port)}/" if port else None

    def websocket_url(self) -> str | None:
        """``wss://HOST:API_PORT``, else ``ws://HOST:HTTP_PORT``: where listeners and
        senders dial the Hybrid Connections relay, and peers signaling; None when both
        ports are off."""
        if self.api_port:
            return f"wss://{self._at(self.api_port)}"
        if self.http_port:
            return f"ws://{self._at(self.http_port)}"
        return None

    def websocket_bases(self) -> dict[int, str]:
        """Local port → ``wss://HOST:API_PORT`` and ``ws://HOST:HTTP_PORT``, for the ports
        that are on: where a Hybrid Connections listener that came in on that port is
        told to meet its senders (the rendezvous addresses)."""
        bases = {self.api_port: f"wss://{self._at(self.api_port)}"} if self.api_port else {}
        if self.http_port:
            bases[self.http_port] = f"ws://{self._at(self.http_port)}"
        return bases

    def token_url(self) -> str:
        """``http://HOST[:API_PORT]``: what a SAS token for this node names before the
        hybrid connection (hyco's ``createRelayToken`` writes ``http`` and keeps the port)."""
        return f"http://{self._at(self.api_port)}" if self.api_port else f"http://{self.shown}"

    def ice_uris(self) -> list[IceUri]:
        """STUN, TURN over UDP and TCP, then TURN over TLS on each TLS port."""
        return relay_uris(self.host, self.turn_port, self.tls_ports)

    @property
    def shown(self) -> str:
        """The host as it stands in a URL (an IPv6 literal in brackets)."""
        return bracketed(self.host)

    def _at(self, port: int) -> str:
        return format_address((self.host, port))
