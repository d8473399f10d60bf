"""Ethernet/IPv4/IPv6/UDP frames for feeding the XDP program, and reading what it made.

Built independently of the program and of ``passage.offload.maps``: checksums
are computed from scratch here (RFC 768, RFC 791 §3.1, RFC 8200 §8.1), so an
incremental update gone wrong in the program shows as a mismatch.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from struct import pack, unpack_from

ETH_IPV4, ETH_IPV6 = 0x0800, 0x86DD
UDP = 17


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of ``data``."""
    if len(data) % 2:
        data += b"\x00"
    total = sum(unpack_from(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _packed(ip: str) -> bytes:
    return ipaddress.ip_address(ip).packed


def _pseudo(src: str, dst: str, length: int) -> bytes:
    if ipaddress.ip_address(src).version == 4:
        return _packed(src) + _packed(dst) + pack("!BBH", 0, UDP, length)
    return _packed(src) + _packed(dst) + pack("!IxxxB", length, UDP)


def udp_frame(
    src: tuple[str, int],
    dst: tuple[str, int],
    payload: bytes,
    *,
    src_mac: bytes = b"\x02\x00\x00\x00\x00\x01",
    dst_mac: bytes = b"\x02\x00\x00\x00\x00\x02",
    zero_checksum: bool = False,
    ip_options: bytes = b"",
    fragment: int = 0,
    trailer: bytes = b"",
) -> bytes:
    """One frame from ``src`` to ``dst`` carrying ``payload``, checksums right."""
    length = 8 + len(payload)
    header = pack("!HHHH", src[1], dst[1], length, 0)
    check = 0
    if not zero_checksum:
        check = checksum(_pseudo(src[0], dst[0], length) + header + payload) or 0xFFFF
    segment = pack("!HHHH", src[1], dst[1], length, check) + payload
    if ipaddress.ip_address(src[0]).version == 4:
        ihl = 5 + len(ip_options) // 4
        ip = pack(
            "!BBHHHBBH4s4s", 0x40 | ihl, 0, ihl * 4 + length, 0x1234, fragment, 64, UDP, 0,
            _packed(src[0]), _packed(dst[0]),
        ) + ip_options  # fmt: skip
        ip = ip[:10] + pack("!H", checksum(ip)) + ip[12:]
        return dst_mac + src_mac + pack("!H", ETH_IPV4) + ip + segment + trailer
    ip6 = pack("!IHBB16s16s", 0x60000000, length, UDP, 64, _packed(src[0]), _packed(dst[0]))
    return dst_mac + src_mac + pack("!H", ETH_IPV6) + ip6 + segment + trailer


@dataclass(frozen=True)
class Datagram:
    """A frame taken apart, with its checksums verified."""

    dst_mac: bytes
    src_mac: bytes
    src: tuple[str, int]
    dst: tuple[str, int]
    payload: bytes
    ttl: int
    udp_checksum: int
    dont_fragment: bool


def parse(frame: bytes) -> Datagram:
    """Take ``frame`` apart; AssertionError if a length or checksum is wrong."""
    dst_mac, src_mac = frame[:6], frame[6:12]
    (kind,) = unpack_from("!H", frame, 12)
    if kind == ETH_IPV4:
        ip = frame[14:34]
        assert ip[0] == 0x45, "IPv4 header without options"
        assert checksum(ip) == 0, "IPv4 header checksum"
        total, flags, ttl, proto = unpack_from("!H2xHBB", ip, 2)
        assert proto == UDP
        assert total == len(frame) - 14, f"IPv4 total length {total} vs frame {len(frame) - 14}"
        src_ip, dst_ip = (
            str(ipaddress.IPv4Address(ip[12:16])),
            str(ipaddress.IPv4Address(ip[16:20])),
        )
        segment, dont_fragment = frame[34:], bool(flags & 0x4000)
    else:
        assert kind == ETH_IPV6
        ip6 = frame[14:54]
        (payload_length,) = unpack_from("!H", ip6, 4)
        assert ip6[6] == UDP
        ttl = ip6[7]
        assert payload_length == len(frame) - 54, "IPv6 payload length"
        src_ip, dst_ip = (
            str(ipaddress.IPv6Address(ip6[8:24])),
            str(ipaddress.IPv6Address(ip6[24:40])),
        )
        segment, dont_fragment = frame[54:], True
    sport, dport, length, check = unpack_from("!HHHH", segment)
    assert length == len(segment), f"UDP length {length} vs {len(segment)}"
    if check:
        assert checksum(_pseudo(src_ip, dst_ip, length) + segment) == 0, "UDP checksum"
    return Datagram(
        dst_mac, src_mac, (src_ip, sport), (dst_ip, dport), segment[8:], ttl, check, dont_fragment
    )


def channel_data(channel: int, data: bytes, pad: int = 0) -> bytes:
    """A ChannelData message (RFC 8656 §12.4), with ``pad`` bytes of padding."""
    return pack("!HH", channel, len(data)) + data + b"\x00" * pad
