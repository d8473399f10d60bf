"""Where a draining server sends new Allocates: 300 Try Alternate (RFC 8489 §10, RFC 8656 §7.2).

The adapter resolves ``--alternate-server`` and ``--tls-alternate-server`` into
:class:`Alternates`; the core picks the one of the client's address family
(RFC 8489 §14.15: ALTERNATE-SERVER has the family of the request's source) and,
for a TLS client given a host name, adds ALTERNATE-DOMAIN (§14.16), the name the
client checks the alternate's certificate against.
"""

from __future__ import annotations

from dataclasses import dataclass

from passage.addresses import Address, Transport, family_of

__all__ = ["Alternate", "Alternates"]


@dataclass(frozen=True, slots=True)
class Alternate:
    """One other TURN server."""

    address: Address
    """Its IP address and port (ALTERNATE-SERVER)."""

    domain: str | None = None
    """The host name it was configured by, if one (ALTERNATE-DOMAIN over TLS)."""


@dataclass(frozen=True, slots=True)
class Alternates:
    """The other servers, for UDP and TCP clients and for TLS clients."""

    plain: tuple[Alternate, ...] = ()
    tls: tuple[Alternate, ...] = ()

    def for_client(self, transport: Transport, client_ip: str) -> Alternate | None:
        """The first alternate of the client's transport kind and address family, if any."""
        candidates = self.tls if transport is Transport.TLS else self.plain
        family = family_of(client_ip)
        return next((a for a in candidates if family_of(a.address[0]) == family), None)
