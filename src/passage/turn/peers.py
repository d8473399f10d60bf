"""Which peer addresses a TURN allocation may relay to (RFC 8656 §21.1.4, "SSRF").

A TURN server relays for clients it does not trust, from inside a network the
clients cannot reach. Without a filter it is an open proxy into the operator's
loopback, private networks and cloud metadata service. :class:`PeerPolicy`
denies by default every range that is never a legitimate internet peer, after
unwrapping the IPv6 forms that smuggle an IPv4 address (CVE-2020-26262,
CVE-2026-27624).

The core calls :meth:`PeerPolicy.check` when a client names a peer IP
(CreatePermission) and :meth:`PeerPolicy.check_transport` when it names a peer
transport address (ChannelBind, Send), not per relayed packet; a ``None``
answer means "may relay", a :class:`PeerDenied` is the reason to answer 403
with and to count in a metric. The second also refuses the server's own
listeners, and lets the server's own relay addresses through the deny list
(``own_addresses``).
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeAlias

from passage.turn.own_addresses import OwnAddresses

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network

_CACHE_SIZE = 4096
"""Verdicts remembered, keyed by the peer's text; the oldest is forgotten first."""

_MAX_TEXT = 64
"""Longer text is never an address (the longest IPv6 text plus a scope id fits)."""


class PeerDenied(enum.StrEnum):
    """Why a peer address is refused; the value is also the metrics label."""

    UNSPECIFIED = "unspecified"
    LOOPBACK = "loopback"
    PRIVATE = "private"
    SHARED = "shared_address_space"
    LINK_LOCAL = "link_local"
    MULTICAST = "multicast"
    BROADCAST = "broadcast"
    RESERVED = "reserved"
    DOCUMENTATION = "documentation"
    BENCHMARKING = "benchmarking"
    UNIQUE_LOCAL = "unique_local"
    TEREDO = "teredo"
    CONFIGURED = "denied_by_config"
    INVALID = "invalid_address"
    OWN_LISTENER = "own_listener"
    """A listener of this server (TURN-in-TURN), whatever else is allowed."""


def _table(*rows: tuple[str, PeerDenied]) -> tuple[tuple[IPNetwork, PeerDenied], ...]:
    return tuple((ipaddress.ip_network(cidr), reason) for cidr, reason in rows)


# First match wins, so a narrow range sits above the wide one that contains it.
_DEFAULT_DENIED_V4 = _table(
    ("0.0.0.0/8", PeerDenied.UNSPECIFIED),  # "this network" (RFC 791); CVE-2020-26262
    ("127.0.0.0/8", PeerDenied.LOOPBACK),
    ("10.0.0.0/8", PeerDenied.PRIVATE),  # RFC 1918
    ("172.16.0.0/12", PeerDenied.PRIVATE),
    ("192.168.0.0/16", PeerDenied.PRIVATE),
    ("100.64.0.0/10", PeerDenied.SHARED),  # carrier-grade NAT, RFC 6598
    ("169.254.0.0/16", PeerDenied.LINK_LOCAL),  # includes cloud metadata 169.254.169.254
    ("224.0.0.0/4", PeerDenied.MULTICAST),
    ("255.255.255.255/32", PeerDenied.BROADCAST),
    ("240.0.0.0/4", PeerDenied.RESERVED),  # class E, RFC 1112
    ("192.0.0.0/24", PeerDenied.RESERVED),  # IETF protocol assignments, RFC 6890
    ("192.88.99.0/24", PeerDenied.RESERVED),  # deprecated 6to4 relay anycast, RFC 7526
    ("192.0.2.0/24", PeerDenied.DOCUMENTATION),  # RFC 5737
    ("198.51.100.0/24", PeerDenied.DOCUMENTATION),
    ("203.0.113.0/24", PeerDenied.DOCUMENTATION),
    ("198.18.0.0/15", PeerDenied.BENCHMARKING),  # RFC 2544
)

_DEFAULT_DENIED_V6 = _table(
    ("::/128", PeerDenied.UNSPECIFIED),
    ("::1/128", PeerDenied.LOOPBACK),
    ("fc00::/7", PeerDenied.UNIQUE_LOCAL),  # RFC 4193
    ("fe80::/10", PeerDenied.LINK_LOCAL),
    ("fec0::/10", PeerDenied.RESERVED),  # deprecated site-local, RFC 3879
    ("ff00::/8", PeerDenied.MULTICAST),
    ("100::/64", PeerDenied.RESERVED),  # discard-only, RFC 6666
    ("2001:db8::/32", PeerDenied.DOCUMENTATION),  # RFC 3849
    ("3fff::/20", PeerDenied.DOCUMENTATION),  # RFC 9637
    ("2001:2::/48", PeerDenied.BENCHMARKING),  # RFC 5180
    ("2001::/32", PeerDenied.TEREDO),  # embeds an obfuscated IPv4 server and client
    ("2001:10::/28", PeerDenied.RESERVED),  # deprecated ORCHID, RFC 4843
    ("2001:20::/28", PeerDenied.RESERVED),  # ORCHIDv2 identifiers, not routable, RFC 7343
)

_GLOBAL_UNICAST_V6 = ipaddress.IPv6Network("2000::/3")
"""All IPv6 unicast the IANA has ever handed out; anything else is reserved."""


class _Embedding(enum.Enum):
    """How an IPv6 address that carries an IPv4 address reaches it."""

    SAME_HOST = enum.auto()
    """The IPv6 text *is* the IPv4 host (a dual-stack socket sends to it)."""

    DEPRECATED = enum.auto()
    """IPv4-compatible ``::a.b.c.d`` (RFC 4291 §2.5.5.1): never a valid peer."""

    TRANSLATOR = enum.auto()
    """A NAT64 or 6to4 gateway forwards to the IPv4 host."""


def _low32(address: int) -> int | None:
    return address & 0xFFFF_FFFF


def _sixtofour(address: int) -> int | None:
    return (address >> 80) & 0xFFFF_FFFF  # 2002:AABB:CCDD::/48, RFC 3056 §2


def _rfc6052(prefix_length: int) -> Callable[[int], int | None]:
    """The IPv4 address behind a NAT64 prefix of this length (RFC 6052 §2.2).

    Bits 64-71 (the "u" octet) never carry address bits, so the IPv4 address
    starts right after the prefix and skips that octet. ``None`` when the
    address breaks the layout: a non-zero u octet (a MUST) or suffix.
    """
    start = prefix_length if prefix_length < 64 else prefix_length - 8
    suffix_bits = 120 - start - 32

    def extract(address: int) -> int | None:
        if prefix_length < 96 and (address >> 56) & 0xFF:
            return None
        squeezed = ((address >> 64) << 56) | (address & ((1 << 56) - 1))  # drop u
        if squeezed & ((1 << suffix_bits) - 1):
            return None
        return (squeezed >> suffix_bits) & 0xFFFF_FFFF

    return extract


_EMBEDDINGS: tuple[tuple[ipaddress.IPv6Network, _Embedding, Callable[[int], int | None]], ...] = (
    # IPv4-mapped, RFC 4291 §2.5.5.2 (CVE-2026-27624).
    (ipaddress.IPv6Network("::ffff:0:0/96"), _Embedding.SAME_HOST, _low32),
    # IPv4-translated (SIIT), RFC 2765 §2.1.
    (ipaddress.IPv6Network("::ffff:0:0:0/96"), _Embedding.SAME_HOST, _low32),
    # IPv4-compatible, deprecated; "::" and "::1" are caught before this table.
    (ipaddress.IPv6Network("::/96"), _Embedding.DEPRECATED, _low32),
    # NAT64 well-known prefix, RFC 6052 §2.1.
    (ipaddress.IPv6Network("64:ff9b::/96"), _Embedding.TRANSLATOR, _rfc6052(96)),
    # NAT64 local-use prefix, RFC 8215, read as one /48. A longer prefix carved
    # out of it breaks the /48 layout's zero suffix and is refused as reserved.
    (ipaddress.IPv6Network("64:ff9b:1::/48"), _Embedding.TRANSLATOR, _rfc6052(48)),
    # 6to4, RFC 3056.
    (ipaddress.IPv6Network("2002::/16"), _Embedding.TRANSLATOR, _sixtofour),
)

_UNSPECIFIED_V6 = ipaddress.IPv6Address("::")
_LOOPBACK_V6 = ipaddress.IPv6Address("::1")
_MAPPED_V6 = ipaddress.IPv6Network("::ffff:0:0/96")


def _default_reason(address: IPAddress) -> PeerDenied | None:
    table = _DEFAULT_DENIED_V4 if address.version == 4 else _DEFAULT_DENIED_V6
    for network, reason in table:
        if address in network:
            return reason
    if address.version == 6 and address not in _GLOBAL_UNICAST_V6:
        return PeerDenied.RESERVED
    return None


_Found: TypeAlias = tuple[ipaddress.IPv4Address | None, _Embedding]


def _embedded(address: ipaddress.IPv6Address) -> _Found | None:
    """The IPv4 address inside ``address`` and how it is reached, if it carries one.

    The IPv4 address is ``None`` when ``address`` sits in a translator prefix
    but breaks that prefix's layout. The prefixes in the table are disjoint.
    """
    for network, kind, extract in _EMBEDDINGS:
        if address in network:
            value = extract(int(address))
            return (None if value is None else ipaddress.IPv4Address(value)), kind
    return None


def _parse_range(text: str, setting: str) -> IPNetwork:
    try:
        network = ipaddress.ip_network(text.strip(), strict=True)
    except ValueError as exc:
        raise ValueError(f"{setting}: {text!r} is not a CIDR range ({exc})") from None
    if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(_MAPPED_V6):
        # "::ffff:10.0.0.0/104" means 10.0.0.0/8: store it as such so that both
        # spellings of an address meet the same rule.
        mapped = network.network_address.ipv4_mapped
        assert mapped is not None
        return ipaddress.IPv4Network((mapped, network.prefixlen - 96))
    return network


def _parse_address(text: object) -> IPAddress | PeerDenied:
    if not isinstance(text, str) or len(text) > _MAX_TEXT:
        return PeerDenied.INVALID
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return PeerDenied.INVALID
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id is not None:
        # A scope id ("fe80::1%eth0") only means something on this host's links;
        # it never arrives in XOR-PEER-ADDRESS, so it is no internet peer.
        unscoped = ipaddress.IPv6Address(int(address))
        if unscoped in ipaddress.IPv6Network("fe80::/10"):
            return PeerDenied.LINK_LOCAL
        return PeerDenied.INVALID
    return address


@dataclass(frozen=True)
class PeerPolicy:
    """The peers a TURN allocation may relay to.

    Rules, strongest first:

    1. an address in a ``denied`` range is refused (:attr:`PeerDenied.CONFIGURED`),
       whatever the other rules say; an IPv6 address is also refused if any IPv4
       address it embeds is in a ``denied`` range;
    2. an address in an ``allowed`` range may relay, even if the default list
       covers it; an IPv4-mapped (``::ffff:a.b.c.d``) or IPv4-translated
       (``::ffff:0:a.b.c.d``) address counts as its IPv4 address here, a NAT64
       or 6to4 address does not (allow its IPv6 range instead);
    3. ``allow_loopback`` opens 127.0.0.0/8, ``::1`` and the IPv4-mapped and
       -translated forms of 127.0.0.0/8, nothing else;
    4. the default deny list: "this network", loopback, RFC 1918, shared (CGNAT),
       link-local (cloud metadata), multicast, broadcast, reserved, benchmarking
       and documentation ranges for IPv4; unspecified, loopback, unique-local,
       link-local, site-local, multicast, discard, documentation, benchmarking,
       Teredo, ORCHID and everything outside 2000::/3 for IPv6;
    5. an IPv6 address that embeds an IPv4 address (mapped, translated,
       compatible, NAT64 ``64:ff9b::/96`` and ``64:ff9b:1::/48``, 6to4
       ``2002::/16``) gets the verdict of its IPv4 address; IPv4-compatible
       ``::a.b.c.d`` is refused as reserved even then;
    6. everything else may relay.

    ``own`` (this server's listeners and relay sockets) adds two rules, one
    above all others and one below: a transport address that reaches one of
    the server's listeners is refused (:attr:`PeerDenied.OWN_LISTENER`); and
    the server's own relay addresses may relay even where rules 3-5 refuse
    them, as a permission (any port) or on a port of the relay range, so two
    allocations on one server reach each other. An operator's ``denied``
    range (rule 1) still refuses them.

    The documentation ranges 192.0.2.0/24, 198.51.100.0/24 and 203.0.113.0/24
    are never real peers, so they are denied too; the NAT lab that plays the
    internet on 198.51.100.0/24 and 203.0.113.0/24 puts them in ``allowed``.
    """

    allow_loopback: bool = False
    """Relay to 127.0.0.0/8 and ::1 (tests only: never on a public server)."""

    allowed: tuple[IPNetwork, ...] = ()
    """Ranges relayed to even though the default deny list covers them."""

    denied: tuple[IPNetwork, ...] = ()
    """Ranges refused whatever else is configured."""

    own: OwnAddresses = field(default_factory=OwnAddresses)
    """This server's listeners and relay sockets."""

    _verdicts: dict[str, PeerDenied | None] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    @classmethod
    def from_config(
        cls,
        *,
        allow_loopback: bool,
        allowed: Iterable[str],
        denied: Iterable[str],
        own: OwnAddresses | None = None,
    ) -> PeerPolicy:
        """Build a policy from CIDR text ("10.1.2.0/24", "2001:db8::/32", "10.1.2.3").

        Raises :class:`ValueError` naming the setting and the text when a range
        does not parse or has host bits set ("10.1.2.3/8" is a typo, not 10/8).
        """
        return cls(
            allow_loopback=allow_loopback,
            allowed=tuple(_parse_range(text, "allowed_peer_ranges") for text in allowed),
            denied=tuple(_parse_range(text, "denied_peer_ranges") for text in denied),
            own=own if own is not None else OwnAddresses(),
        )

    def check(self, ip: str) -> PeerDenied | None:
        """``None`` if a TURN allocation may hold a permission for ``ip``, else why not.

        Never raises: text that is not an IP address is
        :attr:`PeerDenied.INVALID`. Verdicts are cached, bounded.
        """
        verdict = self._verdict(ip)
        if verdict in _OWN_RELAY_PASSES and self.own.is_relay(ip):
            return None  # another allocation of ours: never "private" to us
        return verdict

    def check_transport(self, ip: str, port: int) -> PeerDenied | None:
        """``None`` if a TURN allocation may send to ``(ip, port)``, else why not.

        Our own listeners are refused first. An IP of our relay sockets that the
        other rules refuse passes on the relay port range only: it is there for
        allocation-to-allocation traffic, not for other services of this host.
        """
        if self.own.is_listener(ip, port):
            return PeerDenied.OWN_LISTENER
        verdict = self._verdict(ip)
        if verdict in _OWN_RELAY_PASSES and self.own.is_relay(ip) and self.own.is_relay_port(port):
            return None
        return verdict

    def _verdict(self, ip: str) -> PeerDenied | None:
        """Rules 1-6, cached."""
        try:
            return self._verdicts[ip]
        except (KeyError, TypeError):
            pass
        verdict = self._decide(ip)
        if isinstance(ip, str) and len(ip) <= _MAX_TEXT:
            if len(self._verdicts) >= _CACHE_SIZE:
                del self._verdicts[next(iter(self._verdicts))]
            self._verdicts[ip] = verdict
        return verdict

    def _decide(self, ip: str) -> PeerDenied | None:
        address = _parse_address(ip)
        if isinstance(address, PeerDenied):
            return address
        if isinstance(address, ipaddress.IPv4Address):
            return self._decide_v4(address)
        return self._decide_v6(address)

    def _decide_v4(self, address: ipaddress.IPv4Address) -> PeerDenied | None:
        if _within(address, self.denied):
            return PeerDenied.CONFIGURED
        if _within(address, self.allowed):
            return None
        reason = _default_reason(address)
        if reason is PeerDenied.LOOPBACK and self.allow_loopback:
            return None
        return reason

    def _decide_v6(self, address: ipaddress.IPv6Address) -> PeerDenied | None:
        found = _embedded(address)
        v4, kind = found if found is not None else (None, None)
        if _within(address, self.denied) or (v4 is not None and _within(v4, self.denied)):
            return PeerDenied.CONFIGURED
        if _within(address, self.allowed):
            return None
        if address == _LOOPBACK_V6:
            return None if self.allow_loopback else PeerDenied.LOOPBACK
        if address == _UNSPECIFIED_V6:
            return PeerDenied.UNSPECIFIED
        if found is None:
            return _default_reason(address)
        if v4 is None:
            return PeerDenied.RESERVED
        if kind is _Embedding.SAME_HOST:
            return self._decide_v4(v4)
        reason = _default_reason(v4)  # a translator's own loopback is never a peer
        if reason is None and kind is _Embedding.DEPRECATED:
            return PeerDenied.RESERVED
        return reason


_OWN_RELAY_PASSES = frozenset(PeerDenied) - {PeerDenied.CONFIGURED, PeerDenied.INVALID}
"""Verdicts our own relay addresses override: the defaults, not the operator's ``denied``."""


def _within(address: IPAddress, networks: tuple[IPNetwork, ...]) -> bool:
    # ipaddress answers False, not TypeError, across families.
    return any(address in network for network in networks)
