"""The XDP program itself, run on crafted frames with BPF_PROG_TEST_RUN (no interface needed).

Each test writes map entries the way the control plane does, feeds one frame,
and takes the output apart with ``packets.parse``, which recomputes every
checksum from scratch. A test run's ingress interface is the namespace's
loopback (ifindex 1), so neighbours on ifindex 1 mean XDP_TX.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from packets import channel_data, parse, udp_frame

from passage.offload.maps import ChannelPath, Meter, Neighbour, Outcome
from passage.offload.xdp.program import XdpProgram

XDP_DROP, XDP_PASS, XDP_TX = 1, 2, 3
LOOPBACK = 1
OUR_MAC = bytes.fromhex("02000000000a")
ROUTER_MAC = bytes.fromhex("020000000001")
PEER_MAC = bytes.fromhex("020000000014")
CHANNEL = 0x4001

V4 = ChannelPath(
    client=("198.51.100.2", 40000),
    listener=("203.0.113.10", 3478),
    relay=("203.0.113.10", 50000),
    peer=("203.0.113.20", 6000),
    channel=CHANNEL,
)
V6 = ChannelPath(
    client=("2001:db8:1::2", 40000),
    listener=("2001:db8::10", 3478),
    relay=("2001:db8::10", 50002),
    peer=("2001:db8::20", 6000),
    channel=0x4FFF,
)


def offload(program: XdpProgram, path: ChannelPath, slot: int = 7, mtu: int = 1500) -> None:
    program.install(path, slot)
    program.set_neighbour(path.client[0], Neighbour(LOOPBACK, mtu, OUR_MAC, ROUTER_MAC))
    program.set_neighbour(path.peer[0], Neighbour(LOOPBACK, mtu, OUR_MAC, PEER_MAC))


def from_client(path: ChannelPath, data: bytes, pad: int = 0, **options: object) -> bytes:
    return udp_frame(
        path.client, path.listener, channel_data(path.channel, data, pad),
        src_mac=ROUTER_MAC, dst_mac=OUR_MAC, **options,  # type: ignore[arg-type]
    )  # fmt: skip


def from_peer(path: ChannelPath, data: bytes, **options: object) -> bytes:
    return udp_frame(
        path.peer, path.relay, data, src_mac=PEER_MAC, dst_mac=OUR_MAC,
        **options,  # type: ignore[arg-type]
    )  # fmt: skip


@pytest.mark.parametrize("path", [V4, V6], ids=["ipv4", "ipv6"])
def test_channel_data_from_the_client_leaves_the_relay_for_the_peer(
    xdp_program: XdpProgram, path: ChannelPath
) -> None:
    """RFC 8656 §12.6: the data, without the ChannelData header, from the relayed address."""
    offload(xdp_program, path)
    verdict, out, _ = xdp_program.test_run(from_client(path, b"hello, peer"))
    assert verdict == XDP_TX
    sent = parse(out)
    assert (sent.src, sent.dst, sent.payload) == (path.relay, path.peer, b"hello, peer")
    assert (sent.src_mac, sent.dst_mac) == (OUR_MAC, PEER_MAC)
    assert sent.ttl == 64 and sent.dont_fragment
    assert xdp_program.meters([7]) == {7: Meter(11, 1, 0, 0)}


@pytest.mark.parametrize("path", [V4, V6], ids=["ipv4", "ipv6"])
def test_data_from_a_bound_peer_reaches_the_client_as_channel_data(
    xdp_program: XdpProgram, path: ChannelPath
) -> None:
    """RFC 8656 §12.7: ChannelData from the listening address to the client's, unpadded (UDP)."""
    offload(xdp_program, path)
    verdict, out, _ = xdp_program.test_run(from_peer(path, b"hi client"))
    assert verdict == XDP_TX
    sent = parse(out)
    assert (sent.src, sent.dst) == (path.listener, path.client)
    assert sent.payload == channel_data(path.channel, b"hi client")
    assert (sent.src_mac, sent.dst_mac) == (OUR_MAC, ROUTER_MAC)
    assert xdp_program.meters([7]) == {7: Meter(0, 0, 9, 1)}


@pytest.mark.parametrize("pad", [1, 2, 3])
def test_padding_is_removed_and_the_checksum_still_holds(xdp_program: XdpProgram, pad: int) -> None:
    """RFC 8656 §12.5: padding is optional over UDP; it is not the peer's data."""
    offload(xdp_program, V4)
    data = b"x" * (4 - pad) + b"abcd"
    verdict, out, _ = xdp_program.test_run(from_client(V4, data, pad=pad))
    assert verdict == XDP_TX
    assert parse(out).payload == data


def test_ethernet_trailer_bytes_are_not_relayed(xdp_program: XdpProgram) -> None:
    """A short frame padded to 60 bytes on the wire: only the IP length counts."""
    offload(xdp_program, V4)
    _, out, _ = xdp_program.test_run(from_client(V4, b"ab", trailer=b"\x00" * 12))
    assert parse(out).payload == b"ab"
    _, out, _ = xdp_program.test_run(from_peer(V4, b"cd", trailer=b"\x00" * 12))
    assert parse(out).payload == channel_data(CHANNEL, b"cd")


def test_a_datagram_without_a_checksum_leaves_with_one(xdp_program: XdpProgram) -> None:
    """IPv4 allows none (RFC 768); the relay computes one, as its own sockets would."""
    offload(xdp_program, V4)
    _, out, _ = xdp_program.test_run(from_client(V4, b"data", zero_checksum=True))
    assert parse(out).udp_checksum != 0


@pytest.mark.parametrize("direction", ["from-client", "from-peer"])
def test_a_bad_checksum_goes_to_userspace_untouched(
    xdp_program: XdpProgram, direction: str
) -> None:
    """Corrupt, or left for checksum offload by a local sender: the kernel's UDP judges it."""
    offload(xdp_program, V4)
    good = from_client(V4, b"payload") if direction == "from-client" else from_peer(V4, b"payload")
    bad = good[:-1] + bytes([good[-1] ^ 0x01])
    assert xdp_program.test_run(bad)[:2] == (XDP_PASS, bad)
    assert xdp_program.outcomes()[Outcome.BAD_CHECKSUM] == 1
    assert xdp_program.meters([7]) == {7: Meter()}


def test_an_unbound_peer_is_left_to_userspace(xdp_program: XdpProgram) -> None:
    """Another port of the same peer IP has no channel: passed untouched, counted as no flow."""
    offload(xdp_program, V4)
    stranger = udp_frame(("203.0.113.20", 6001), V4.relay, b"let me in")
    assert xdp_program.test_run(stranger)[:2] == (XDP_PASS, stranger)
    assert xdp_program.outcomes()[Outcome.NO_FLOW] == 1
    assert xdp_program.meters([7]) == {7: Meter()}


def test_another_channel_number_of_the_client_is_left_to_userspace(
    xdp_program: XdpProgram,
) -> None:
    offload(xdp_program, V4)
    other = udp_frame(V4.client, V4.listener, channel_data(0x4002, b"data"))
    assert xdp_program.test_run(other)[:2] == (XDP_PASS, other)


def test_stun_messages_pass(xdp_program: XdpProgram) -> None:
    offload(xdp_program, V4)
    binding = udp_frame(V4.client, V4.listener, bytes.fromhex("0001000021124442") + bytes(12))
    assert xdp_program.test_run(binding)[:2] == (XDP_PASS, binding)


def test_a_removed_channel_is_no_longer_forwarded(xdp_program: XdpProgram) -> None:
    offload(xdp_program, V4)
    xdp_program.remove(V4)
    frame = from_client(V4, b"late")
    assert xdp_program.test_run(frame)[:2] == (XDP_PASS, frame)
    assert xdp_program.flows() == {}


def test_without_a_next_hop_the_packet_goes_to_userspace(xdp_program: XdpProgram) -> None:
    xdp_program.install(V4, 3)
    frame = from_client(V4, b"data")
    assert xdp_program.test_run(frame)[:2] == (XDP_PASS, frame)
    assert xdp_program.outcomes()[Outcome.NO_NEIGHBOUR] == 1


def test_a_forwarded_packet_teaches_the_way_back(xdp_program: XdpProgram) -> None:
    """The client's packet names its next hop: the answer to it needs no neighbour lookup."""
    xdp_program.set_interface(LOOPBACK, 1500)
    xdp_program.install(V4, 3)
    xdp_program.set_neighbour(V4.peer[0], Neighbour(LOOPBACK, 1500, OUR_MAC, PEER_MAC))
    assert xdp_program.test_run(from_client(V4, b"ping"))[0] == XDP_TX
    assert xdp_program.neighbour(V4.client[0]) == Neighbour(LOOPBACK, 1500, OUR_MAC, ROUTER_MAC)
    verdict, out, _ = xdp_program.test_run(from_peer(V4, b"pong"))
    assert verdict == XDP_TX and parse(out).dst_mac == ROUTER_MAC


def test_the_way_back_is_learned_again_every_64th_packet(xdp_program: XdpProgram) -> None:
    """Learning costs a neighbours lookup, so a channel learns on its first packet on a
    CPU and every 64th after it: a next hop that moves is followed within 64 packets."""
    stale = Neighbour(LOOPBACK, 1500, OUR_MAC, bytes.fromhex("02000000ffff"))
    learned = Neighbour(LOOPBACK, 1500, OUR_MAC, ROUTER_MAC)
    xdp_program.set_interface(LOOPBACK, 1500)
    xdp_program.install(V4, 3)
    xdp_program.set_neighbour(V4.peer[0], Neighbour(LOOPBACK, 1500, OUR_MAC, PEER_MAC))
    cpus = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cpus)})  # the meters that pace learning are per CPU
    try:
        assert xdp_program.test_run(from_client(V4, b"1"))[0] == XDP_TX
        assert xdp_program.neighbour(V4.client[0]) == learned
        xdp_program.set_neighbour(V4.client[0], stale)
        for _ in range(2, 65):
            assert xdp_program.test_run(from_client(V4, b"x"))[0] == XDP_TX
        assert xdp_program.neighbour(V4.client[0]) == stale
        assert xdp_program.test_run(from_client(V4, b"65"))[0] == XDP_TX
        assert xdp_program.neighbour(V4.client[0]) == learned
    finally:
        os.sched_setaffinity(0, cpus)


def test_a_packet_too_big_for_the_mtu_once_wrapped_goes_to_userspace(
    xdp_program: XdpProgram,
) -> None:
    offload(xdp_program, V4, mtu=1500)
    fits = from_peer(V4, b"x" * (1500 - 20 - 8 - 4))
    assert xdp_program.test_run(fits)[0] == XDP_TX
    too_big = from_peer(V4, b"x" * (1500 - 20 - 8 - 3))
    assert xdp_program.test_run(too_big)[:2] == (XDP_PASS, too_big)
    assert xdp_program.outcomes()[Outcome.TOO_BIG] == 1


@pytest.mark.parametrize(
    "options",
    [{"ip_options": b"\x01\x01\x01\x00"}, {"fragment": 0x2000}],
    ids=["ip-options", "fragment"],
)
def test_irregular_ipv4_goes_to_userspace(
    xdp_program: XdpProgram, options: dict[str, object]
) -> None:
    offload(xdp_program, V4)
    frame = from_client(V4, b"data", **options)
    assert xdp_program.test_run(frame)[:2] == (XDP_PASS, frame)
    assert xdp_program.outcomes()[Outcome.IRREGULAR] == 1


def test_a_length_field_longer_than_the_datagram_goes_to_userspace(
    xdp_program: XdpProgram,
) -> None:
    offload(xdp_program, V4)
    lying = udp_frame(V4.client, V4.listener, channel_data(CHANNEL, b"abc")[:4] + b"a")
    lying = lying[:-5] + bytes.fromhex("40010009") + b"a"  # says 9 bytes, carries 1
    assert xdp_program.test_run(lying)[0] == XDP_PASS


def test_mixed_families_client_on_ipv4_peer_on_ipv6(xdp_program: XdpProgram) -> None:
    """RFC 8656 allows a relayed address of the other family; the headers change size."""
    mixed = ChannelPath(V4.client, V4.listener, V6.relay, V6.peer, CHANNEL)
    offload(xdp_program, mixed)
    verdict, out, _ = xdp_program.test_run(from_client(mixed, b"over to six"))
    assert verdict == XDP_TX
    sent = parse(out)
    assert (sent.src, sent.dst, sent.payload) == (V6.relay, V6.peer, b"over to six")
    verdict, out, _ = xdp_program.test_run(from_peer(mixed, b"back to four"))
    assert verdict == XDP_TX
    sent = parse(out)
    assert (sent.src, sent.dst) == (V4.listener, V4.client)
    assert sent.payload == channel_data(CHANNEL, b"back to four")


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data=st.binary(min_size=0, max_size=1200),
    client_port=st.integers(1, 65535),
    peer_port=st.integers(1, 65535),
    channel=st.integers(0x4000, 0x7FFF),
    six=st.booleans(),
)
def test_any_datagram_round_trips_with_valid_checksums(
    xdp_program: XdpProgram, data: bytes, client_port: int, peer_port: int, channel: int, six: bool
) -> None:
    base = V6 if six else V4
    path = ChannelPath(
        (base.client[0], client_port), base.listener, base.relay, (base.peer[0], peer_port), channel
    )
    offload(xdp_program, path)
    verdict, out, _ = xdp_program.test_run(from_client(path, data, pad=-len(data) & 3))
    assert verdict == XDP_TX and parse(out).payload == data
    verdict, out, _ = xdp_program.test_run(from_peer(path, data))
    assert verdict == XDP_TX and parse(out).payload == channel_data(channel, data)
    xdp_program.remove(path)
