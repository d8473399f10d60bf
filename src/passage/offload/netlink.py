"""rtnetlink, the few messages the offload needs: routes, neighbours, links, addresses.

Pure: requests are built as bytes and answers parsed from bytes; the socket is
the adapter's (``passage.offload.xdp.kernel``). Layouts are the UAPI ones
(``linux/netlink.h``, ``linux/rtnetlink.h``, ``linux/neighbour.h``,
``linux/if_link.h``, ``linux/if_addr.h``), host byte order as the kernel uses.

The XDP program cannot ask the kernel for a next hop itself: ``bpf_fib_lookup``
answers "forwarding disabled" on a host with IP forwarding off, a server's
default. So the control plane asks here, once per destination, and writes the
answer into the program's ``neighbours`` map.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from struct import Struct

NLMSGHDR = Struct("=IHHII")
"""length, type, flags, sequence, port id."""
NLMSGERR = Struct("=i")
RTATTR = Struct("=HH")
RTMSG = Struct("=BBBBBBBBI")
NDMSG = Struct("=BBHiHBB")
IFINFOMSG = Struct("=BBHiII")
IFADDRMSG = Struct("=BBBBI")

NLM_F_REQUEST = 0x01
NLM_F_ACK = 0x04
NLM_F_DUMP = 0x300
NLM_F_CREATE = 0x400
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLA_F_NESTED = 0x8000
AF_UNSPEC, AF_INET, AF_INET6 = 0, 2, 10
"""Linux's address families (``socket`` is the adapter's to import, not the codec's)."""
NTF_USE = 0x01


class Rtm(enum.IntEnum):
    """rtnetlink message types (``linux/rtnetlink.h``)."""

    NEWLINK = 16
    GETLINK = 18
    NEWADDR = 20
    GETADDR = 22
    NEWROUTE = 24
    GETROUTE = 26
    NEWNEIGH = 28
    GETNEIGH = 30


class Nud(enum.IntFlag):
    """Neighbour states (``linux/neighbour.h``)."""

    INCOMPLETE = 0x01
    REACHABLE = 0x02
    STALE = 0x04
    DELAY = 0x08
    PROBE = 0x10
    FAILED = 0x20
    NOARP = 0x40
    PERMANENT = 0x80


USABLE = Nud.REACHABLE | Nud.STALE | Nud.DELAY | Nud.PROBE | Nud.PERMANENT
"""States whose link-layer address the kernel itself would send to."""

RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_PREFSRC = 1, 4, 5, 7
NDA_DST, NDA_LLADDR = 1, 2
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_LINKINFO, IFLA_XDP = 1, 3, 4, 18, 43
IFLA_INFO_KIND = 1
IFLA_XDP_ATTACHED, IFLA_XDP_PROG_ID = 2, 4
IFA_ADDRESS, IFA_LOCAL = 1, 2


class NetlinkError(OSError):
    """The kernel answered a request with an error (``errno`` is set)."""


def _family(ip: str) -> tuple[int, bytes]:
    address = ipaddress.ip_address(ip)
    family = AF_INET if address.version == 4 else AF_INET6
    return family, address.packed


def _attr(kind: int, payload: bytes) -> bytes:
    size = RTATTR.size + len(payload)
    return RTATTR.pack(size, kind) + payload + b"\x00" * (-size & 3)


def _message(kind: int, flags: int, sequence: int, body: bytes) -> bytes:
    return NLMSGHDR.pack(NLMSGHDR.size + len(body), kind, flags, sequence, 0) + body


def route_request(ip: str, sequence: int) -> bytes:
    """RTM_GETROUTE for ``ip``: which interface, gateway and source the kernel would use."""
    family, packed = _family(ip)
    body = RTMSG.pack(family, len(packed) * 8, 0, 0, 0, 0, 0, 0, 0) + _attr(RTA_DST, packed)
    return _message(Rtm.GETROUTE, NLM_F_REQUEST, sequence, body)


def neighbour_request(ip: str, ifindex: int, sequence: int) -> bytes:
    """RTM_GETNEIGH for one neighbour (``ip`` on ``ifindex``)."""
    family, packed = _family(ip)
    body = NDMSG.pack(family, 0, 0, ifindex, 0, 0, 0) + _attr(NDA_DST, packed)
    return _message(Rtm.GETNEIGH, NLM_F_REQUEST, sequence, body)


def resolve_request(ip: str, ifindex: int, sequence: int) -> bytes:
    """RTM_NEWNEIGH with NTF_USE: start resolving ``ip`` (ARP or NDP) as a send would."""
    family, packed = _family(ip)
    body = NDMSG.pack(family, 0, 0, ifindex, 0, NTF_USE, 0) + _attr(NDA_DST, packed)
    return _message(Rtm.NEWNEIGH, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK, sequence, body)


def link_request(ifindex: int, sequence: int) -> bytes:
    """RTM_GETLINK for one interface."""
    body = IFINFOMSG.pack(AF_UNSPEC, 0, 0, ifindex, 0, 0)
    return _message(Rtm.GETLINK, NLM_F_REQUEST, sequence, body)


def addresses_request(sequence: int) -> bytes:
    """RTM_GETADDR dump: every address of every interface."""
    body = IFADDRMSG.pack(AF_UNSPEC, 0, 0, 0, 0)
    return _message(Rtm.GETADDR, NLM_F_REQUEST | NLM_F_DUMP, sequence, body)


@dataclass(frozen=True, slots=True)
class Message:
    """One netlink message: its type, sequence number and payload after the header."""

    kind: int
    sequence: int
    payload: bytes


def messages(data: bytes) -> Iterator[Message]:
    """The messages of one datagram from a netlink socket."""
    offset = 0
    while offset + NLMSGHDR.size <= len(data):
        length, kind, _, sequence, _ = NLMSGHDR.unpack_from(data, offset)
        if length < NLMSGHDR.size or offset + length > len(data):
            raise ValueError(f"netlink message of length {length} at {offset} runs past the data")
        yield Message(kind, sequence, data[offset + NLMSGHDR.size : offset + length])
        offset += (length + 3) & ~3


def error_of(message: Message) -> int:
    """An NLMSG_ERROR's errno (0 is an acknowledgement)."""
    code: int = NLMSGERR.unpack_from(message.payload)[0]
    return -code


def attributes(data: bytes, offset: int = 0) -> dict[int, bytes]:
    """Route attributes from ``offset`` on: type (nested flag cleared) → payload; last one wins."""
    found: dict[int, bytes] = {}
    while offset + RTATTR.size <= len(data):
        length, kind = RTATTR.unpack_from(data, offset)
        if length < RTATTR.size or offset + length > len(data):
            raise ValueError(f"route attribute of length {length} at {offset} runs past the data")
        found[kind & ~NLA_F_NESTED] = data[offset + RTATTR.size : offset + length]
        offset += (length + 3) & ~3
    return found


def _ip(family: int, raw: bytes) -> str:
    if family == AF_INET:
        return str(ipaddress.IPv4Address(raw))
    return str(ipaddress.IPv6Address(raw))


def _u32(raw: bytes) -> int:
    return int.from_bytes(raw[:4], "little")


@dataclass(frozen=True, slots=True)
class Route:
    """The kernel's answer for one destination."""

    ifindex: int
    gateway: str | None
    """The next hop, or ``None`` when the destination is on-link."""
    source: str | None
    """The preferred source address the kernel would send from."""

    def next_hop(self, destination: str) -> str:
        """The IP whose link-layer address the packet goes to."""
        return self.gateway or destination


def parse_route(message: Message) -> Route:
    family = message.payload[0]
    found = attributes(message.payload, RTMSG.size)
    if RTA_OIF not in found:
        raise ValueError("route without an output interface")
    gateway = found.get(RTA_GATEWAY)
    source = found.get(RTA_PREFSRC)
    return Route(
        _u32(found[RTA_OIF]),
        _ip(family, gateway) if gateway else None,
        _ip(family, source) if source else None,
    )


@dataclass(frozen=True, slots=True)
class NeighbourEntry:
    ip: str
    ifindex: int
    state: Nud
    mac: bytes | None

    @property
    def usable(self) -> bool:
        """The kernel itself would send to ``mac`` now."""
        return self.mac is not None and len(self.mac) == 6 and bool(self.state & USABLE)


def parse_neighbour(message: Message) -> NeighbourEntry:
    family, _, _, ifindex, state, _, _ = NDMSG.unpack_from(message.payload)
    found = attributes(message.payload, NDMSG.size)
    if NDA_DST not in found:
        raise ValueError("neighbour without a destination")
    return NeighbourEntry(_ip(family, found[NDA_DST]), ifindex, Nud(state), found.get(NDA_LLADDR))


@dataclass(frozen=True, slots=True)
class Link:
    ifindex: int
    name: str
    mac: bytes
    mtu: int
    kind: str | None
    """``IFLA_INFO_KIND``: ``veth``, ``bridge``...; ``None`` for a physical device."""
    xdp_program: int | None
    """The id of the XDP program attached to it, if any."""


def parse_link(message: Message) -> Link:
    _, _, _, ifindex, _, _ = IFINFOMSG.unpack_from(message.payload)
    found = attributes(message.payload, IFINFOMSG.size)
    kind = attributes(found[IFLA_LINKINFO]).get(IFLA_INFO_KIND) if IFLA_LINKINFO in found else None
    xdp = attributes(found[IFLA_XDP]) if IFLA_XDP in found else {}
    attached = xdp.get(IFLA_XDP_ATTACHED, b"\x00")[0]
    program = _u32(xdp[IFLA_XDP_PROG_ID]) if attached and IFLA_XDP_PROG_ID in xdp else None
    return Link(
        ifindex,
        found.get(IFLA_IFNAME, b"").rstrip(b"\x00").decode(),
        found.get(IFLA_ADDRESS, b"\x00" * 6),
        _u32(found.get(IFLA_MTU, b"\x00" * 4)),
        kind.rstrip(b"\x00").decode() if kind else None,
        program or None,
    )


@dataclass(frozen=True, slots=True)
class InterfaceAddress:
    ifindex: int
    ip: str


def parse_address(message: Message) -> InterfaceAddress:
    family, _, _, _, ifindex = IFADDRMSG.unpack_from(message.payload)
    found = attributes(message.payload, IFADDRMSG.size)
    raw = found.get(IFA_LOCAL) or found[IFA_ADDRESS]
    return InterfaceAddress(ifindex, _ip(family, raw))
