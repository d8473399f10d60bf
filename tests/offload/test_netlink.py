"""The rtnetlink codec: requests as the kernel expects them, answers as the kernel writes them.

Answers are laid out here by hand from the UAPI structs, independently of the
codec's own builders.
"""

from __future__ import annotations

from struct import pack

import pytest

from passage.offload import netlink
from passage.offload.netlink import Nud


def attr(kind: int, payload: bytes) -> bytes:
    size = 4 + len(payload)
    return pack("=HH", size, kind) + payload + b"\x00" * (-size & 3)


def message(kind: int, body: bytes, sequence: int = 7) -> bytes:
    return pack("=IHHII", 16 + len(body), kind, 0, sequence, 0) + body


def test_a_route_request_asks_for_one_destination() -> None:
    request = netlink.route_request("192.0.2.1", 5)
    length, kind, flags, sequence, _ = netlink.NLMSGHDR.unpack_from(request)
    assert (length, kind, flags, sequence) == (len(request), 26, netlink.NLM_F_REQUEST, 5)
    assert request[16:18] == bytes([2, 32]), "AF_INET, a /32"
    assert netlink.attributes(request, 16 + 12) == {netlink.RTA_DST: bytes([192, 0, 2, 1])}


def test_a_route_answer_gives_interface_gateway_and_source() -> None:
    body = pack("=BBBBBBBBI", 2, 32, 0, 0, 254, 0, 0, 1, 0)
    body += attr(netlink.RTA_OIF, pack("=I", 3)) + attr(
        netlink.RTA_GATEWAY, bytes([203, 0, 113, 1])
    )
    body += attr(netlink.RTA_PREFSRC, bytes([203, 0, 113, 10]))
    (found,) = netlink.messages(message(24, body))
    route = netlink.parse_route(found)
    assert route == netlink.Route(3, "203.0.113.1", "203.0.113.10")
    assert route.next_hop("198.51.100.2") == "203.0.113.1"
    assert netlink.Route(3, None, None).next_hop("203.0.113.20") == "203.0.113.20"


def test_a_neighbour_answer_is_usable_only_in_a_resolved_state() -> None:
    def entry(state: int) -> netlink.NeighbourEntry:
        body = pack("=BBHiHBB", 10, 0, 0, 4, state, 0, 1)
        body += attr(netlink.NDA_DST, bytes.fromhex("20010db8" + "00" * 11 + "01"))
        body += attr(netlink.NDA_LLADDR, bytes.fromhex("020000000001"))
        (found,) = netlink.messages(message(28, body))
        return netlink.parse_neighbour(found)

    assert entry(Nud.REACHABLE) == netlink.NeighbourEntry(
        "2001:db8::1", 4, Nud.REACHABLE, bytes.fromhex("020000000001")
    )
    assert entry(Nud.STALE).usable and entry(Nud.PERMANENT).usable
    assert not entry(Nud.INCOMPLETE).usable and not entry(Nud.FAILED).usable


def test_a_link_answer_names_its_kind_and_attached_program() -> None:
    body = pack("=BBHiII", 0, 0, 1, 5, 0, 0)
    body += attr(netlink.IFLA_IFNAME, b"eth0\x00") + attr(netlink.IFLA_MTU, pack("=I", 1500))
    body += attr(netlink.IFLA_ADDRESS, bytes.fromhex("02000000000a"))
    body += attr(netlink.IFLA_LINKINFO | netlink.NLA_F_NESTED, attr(1, b"veth\x00"))
    body += attr(
        netlink.IFLA_XDP | netlink.NLA_F_NESTED,
        attr(netlink.IFLA_XDP_ATTACHED, b"\x02") + attr(netlink.IFLA_XDP_PROG_ID, pack("=I", 77)),
    )
    (found,) = netlink.messages(message(16, body))
    assert netlink.parse_link(found) == netlink.Link(
        5, "eth0", bytes.fromhex("02000000000a"), 1500, "veth", 77
    )


def test_a_link_without_xdp_has_no_program() -> None:
    body = pack("=BBHiII", 0, 0, 1, 1, 0, 0) + attr(netlink.IFLA_IFNAME, b"lo\x00")
    body += attr(netlink.IFLA_XDP, attr(netlink.IFLA_XDP_ATTACHED, b"\x00"))
    (found,) = netlink.messages(message(16, body))
    link = netlink.parse_link(found)
    assert (link.kind, link.xdp_program) == (None, None)


def test_an_address_dump_lists_each_address_with_its_interface() -> None:
    body = pack("=BBBBI", 2, 24, 0, 0, 3) + attr(netlink.IFA_LOCAL, bytes([203, 0, 113, 10]))
    data = message(20, body) + message(20, body) + message(3, pack("=i", 0))
    found = list(netlink.messages(data))
    assert [m.kind for m in found] == [20, 20, 3]
    assert netlink.parse_address(found[0]) == netlink.InterfaceAddress(3, "203.0.113.10")


def test_an_error_answer_carries_the_errno() -> None:
    (found,) = netlink.messages(message(2, pack("=i", -2) + bytes(16)))
    assert netlink.error_of(found) == 2


@pytest.mark.parametrize(
    "data",
    [pack("=IHHII", 40, 24, 0, 1, 0), pack("=IHHII", 8, 24, 0, 1, 0)],
    ids=["runs-past", "shorter-than-its-header"],
)
def test_a_truncated_message_is_an_error_not_a_crash(data: bytes) -> None:
    with pytest.raises(ValueError):
        list(netlink.messages(data))


def test_a_truncated_attribute_is_an_error() -> None:
    with pytest.raises(ValueError):
        netlink.attributes(pack("=HH", 12, 1) + b"ab")


def test_a_resolve_request_uses_ntf_use_and_asks_for_an_ack() -> None:
    request = netlink.resolve_request("203.0.113.20", 3, 9)
    _, kind, flags, _, _ = netlink.NLMSGHDR.unpack_from(request)
    assert kind == 28
    assert flags & netlink.NLM_F_ACK and flags & netlink.NLM_F_CREATE
    assert request[16 + 10] == netlink.NTF_USE
