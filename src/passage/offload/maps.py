"""The XDP program's maps, byte for byte: keys and values as ``bpf/passage_xdp.c`` lays them out.

Pure: bytes in, typed values out, and back. Every layout here mirrors one C
struct; ``tests/offload/test_maps.py`` checks the sizes against the compiled
object's BTF-free layout (field offsets by hand, sizes by ``struct``).

Addresses are 16 bytes, IPv4 written IPv4-mapped (``::ffff:a.b.c.d``), so one
key layout serves both families. Ports and channel numbers are in network
order, as in the packets; slots and interface indexes in host order, as the
program uses them.
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass
from struct import Struct
from typing import NamedTuple

Endpoint = tuple[str, int]
"""An (IP, port) pair, IPv4 or IPv6, as sockets give them."""

FLOW_KEY = Struct("!16s16sHHHH")
"""struct flow_key: remote IP, local IP, remote port, local port, channel (0 peer side), zero."""
FLOW = Struct("=16s16s2s2s2sBBI")
"""struct flow: source IP, destination IP, source port, destination port, channel, action,
zero, slot (host order)."""
NEIGHBOUR_KEY = Struct("16s")
NEIGHBOUR = Struct("=IH6s6sH")
"""struct neighbour: ifindex, MTU, our MAC, the next hop's MAC, zero."""
INTERFACE = Struct("=I")
"""struct interface: the MTU."""
SLOT = Struct("=I")
"""The key of the per-CPU arrays (meters, outcomes): a host-order u32."""
METER = Struct("=QQQQ")
"""struct meter, one CPU's copy: bytes and packets to the peer, bytes and packets from it."""
COUNTER = Struct("=Q")
"""One CPU's count of one outcome."""

PROGRAM_NAME = "passage_xdp"
"""The program's name in the kernel (``bpftool prog``): how a stale one is recognised."""


class Action(enum.IntEnum):
    """What the program does with a packet of a flow."""

    STRIP = 1
    """Client → peer: remove the ChannelData header (RFC 8656 §12.6)."""
    WRAP = 2
    """Peer → client: add a ChannelData header (RFC 8656 §12.7)."""


class Outcome(enum.IntEnum):
    """Why the program passed, forwarded or dropped a packet (``enum outcome`` in the C)."""

    NOT_UDP = 0
    NO_FLOW = 1
    NO_NEIGHBOUR = 2
    IRREGULAR = 3
    TOO_BIG = 4
    TX = 5
    REDIRECT = 6
    ABORTED = 7
    BAD_CHECKSUM = 8


class Meter(NamedTuple):
    """Relayed bytes and packets of one channel (data only, as the userspace meters count)."""

    bytes_to_peer: int = 0
    packets_to_peer: int = 0
    bytes_from_peer: int = 0
    packets_from_peer: int = 0

    def __add__(self, other: tuple[int, ...]) -> Meter:  # type: ignore[override]
        return Meter(*(a + b for a, b in zip(self, other, strict=True)))

    def __sub__(self, other: tuple[int, ...]) -> Meter:
        return Meter(*(a - b for a, b in zip(self, other, strict=True)))


ZERO_METER = Meter()


def ip16(ip: str) -> bytes:
    """An IP as the program's 16 bytes (IPv4 mapped into IPv6)."""
    address = ipaddress.ip_address(ip)
    if isinstance(address, ipaddress.IPv4Address):
        return b"\x00" * 10 + b"\xff\xff" + address.packed
    return address.packed


def ip_of(raw: bytes) -> str:
    """The text form of the program's 16 address bytes (IPv4-mapped back to IPv4)."""
    address = ipaddress.IPv6Address(raw)
    mapped = address.ipv4_mapped
    return str(mapped) if mapped is not None else str(address)


@dataclass(frozen=True, slots=True)
class ChannelPath:
    """One channel to offload: the client's UDP 5-tuple, the relayed address, the peer.

    ``listener`` and ``relay`` are the server's *local* addresses (what the
    packets carry on the wire here), not advertised ones behind a 1:1 NAT.
    """

    client: Endpoint
    listener: Endpoint
    relay: Endpoint
    peer: Endpoint
    channel: int
    """The channel number (RFC 8656 §12: 0x4000–0x4FFF; RFC 5766 clients up to 0x7FFF)."""

    def __post_init__(self) -> None:
        if not 0x4000 <= self.channel <= 0x7FFF:
            raise ValueError(f"channel {self.channel:#x} is outside 0x4000-0x7FFF")


@dataclass(frozen=True, slots=True)
class FlowEntry:
    """One entry of the ``flows`` map."""

    key: bytes
    value: bytes


def flow_key(remote: Endpoint, local: Endpoint, channel: int = 0) -> bytes:
    """The ``flows`` key of a packet from ``remote`` to ``local``; ``channel`` 0 off ChannelData."""
    return FLOW_KEY.pack(ip16(remote[0]), ip16(local[0]), remote[1], local[1], channel, 0)


def flow_value(
    source: Endpoint, destination: Endpoint, action: Action, slot: int, channel: int = 0
) -> bytes:
    """A ``flows`` value: send from ``source`` to ``destination``, count into ``slot``."""
    return FLOW.pack(
        ip16(source[0]),
        ip16(destination[0]),
        source[1].to_bytes(2, "big"),
        destination[1].to_bytes(2, "big"),
        channel.to_bytes(2, "big"),
        action,
        0,
        slot,
    )


def flow_entries(path: ChannelPath, slot: int) -> tuple[FlowEntry, FlowEntry]:
    """Both directions of ``path``: client → peer (strip), then peer → client (wrap)."""
    to_peer = FlowEntry(
        flow_key(path.client, path.listener, path.channel),
        flow_value(path.relay, path.peer, Action.STRIP, slot),
    )
    to_client = FlowEntry(
        flow_key(path.peer, path.relay),
        flow_value(path.listener, path.client, Action.WRAP, slot, path.channel),
    )
    return to_peer, to_client


def flow_keys(path: ChannelPath) -> tuple[bytes, bytes]:
    """The two ``flows`` keys of ``path``, as :func:`flow_entries` writes them."""
    to_peer, to_client = flow_entries(path, 0)
    return to_peer.key, to_client.key


@dataclass(frozen=True, slots=True)
class DecodedFlow:
    """A ``flows`` value read back (for inspection and tests)."""

    source: Endpoint
    destination: Endpoint
    action: Action
    channel: int
    slot: int


def decode_flow(value: bytes) -> DecodedFlow:
    """The inverse of :func:`flow_value`."""
    src, dst, sport, dport, channel, action, _, slot = FLOW.unpack(value)
    return DecodedFlow(
        (ip_of(src), int.from_bytes(sport, "big")),
        (ip_of(dst), int.from_bytes(dport, "big")),
        Action(action),
        int.from_bytes(channel, "big"),
        slot,
    )


@dataclass(frozen=True, slots=True)
class Neighbour:
    """How the program reaches an IP: out of ``ifindex``, from ``local_mac`` to ``remote_mac``."""

    ifindex: int
    mtu: int
    """The interface's MTU (the largest IP packet it sends); bigger ones are left to userspace."""
    local_mac: bytes
    remote_mac: bytes

    def __post_init__(self) -> None:
        if len(self.local_mac) != 6 or len(self.remote_mac) != 6:
            raise ValueError("MAC addresses are 6 bytes")
        if not 0 < self.mtu <= 0xFFFF:
            raise ValueError(f"MTU {self.mtu} out of range")


def neighbour_key(ip: str) -> bytes:
    return NEIGHBOUR_KEY.pack(ip16(ip))


def neighbour_value(neighbour: Neighbour) -> bytes:
    return NEIGHBOUR.pack(
        neighbour.ifindex, neighbour.mtu, neighbour.local_mac, neighbour.remote_mac, 0
    )


def decode_neighbour(value: bytes) -> Neighbour:
    ifindex, mtu, local_mac, remote_mac, _ = NEIGHBOUR.unpack(value)
    return Neighbour(ifindex, mtu, local_mac, remote_mac)


def slot_key(slot: int) -> bytes:
    return SLOT.pack(slot)


def interface_value(mtu: int) -> bytes:
    return INTERFACE.pack(mtu)


def sum_meters(per_cpu: bytes, cpus: int) -> Meter:
    """The sum of a per-CPU ``meters`` value (``cpus`` copies, each 8-byte aligned)."""
    total = ZERO_METER
    for cpu in range(cpus):
        total = total + METER.unpack_from(per_cpu, cpu * METER.size)
    return total


def sum_counters(per_cpu: bytes, cpus: int) -> int:
    """The sum of a per-CPU ``outcomes`` value."""
    return sum(COUNTER.unpack_from(per_cpu, cpu * COUNTER.size)[0] for cpu in range(cpus))


def format_mac(mac: bytes) -> str:
    return ":".join(f"{octet:02x}" for octet in mac)
