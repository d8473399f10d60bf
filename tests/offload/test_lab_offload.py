"""The XDP program attached in the NAT lab, driven by the real control plane with made-up channels.

Real packets between namespaces over veths (XDP in generic mode there). The
server namespace holds ordinary UDP sockets on the listening and relayed ports:
whatever the kernel program passes to userspace lands in them, so "userspace saw
nothing" is measured, not assumed. Passage itself is not running here; the
end-to-end tests with ``passage serve --offload xdp`` are ``test_serve_offload.py``.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from offload_lab import build_object, wire_checksums, xdp_of
from packets import channel_data

from natlab import Host, Lab, Node
from natlab.lab import SERVER_IP
from passage.offload.maps import ChannelPath, Meter, Outcome
from passage.offload.xdp.control import ChannelOffload

LISTENER = (SERVER_IP, 3478)
RELAY = (SERVER_IP, 50000)
CHANNEL = 0x4001
HOLD = Path(__file__).with_name("hold_offload.py")


def bound(lab: Lab, host: Host, port: int) -> socket.socket:
    sock = lab.socket(host)
    sock.bind((host.ip, port))
    sock.settimeout(2.0)
    return sock


def quiet(sock: socket.socket) -> int:
    """Datagrams waiting in ``sock`` (it must have none for an offloaded flow)."""
    sock.setblocking(False)
    count = 0
    try:
        while True:
            sock.recv(2048)
            count += 1
    except BlockingIOError:
        return count
    finally:
        sock.settimeout(2.0)


def resolved(offload: ChannelOffload) -> None:
    """Wait until the control plane knows the next hop of every destination."""
    deadline = time.monotonic() + 5
    while offload.pending():
        assert time.monotonic() < deadline, f"unresolved: {offload.pending()}"
        time.sleep(0.02)
        offload.tick()


@pytest.fixture(autouse=True)
def _built(xdp_program: object) -> None:
    """The program builds and loads here (or the test skips, or fails in CI, saying why)."""
    del xdp_program


@pytest.fixture
def offload(lab: Lab) -> Iterator[ChannelOffload]:
    # Made in the server's namespace: the interface lookups and the attachment happen there.
    started = lab.call(lab.server, ChannelOffload.start, [SERVER_IP])
    try:
        yield started
    finally:
        started.close()


def test_a_bound_channel_is_relayed_both_ways_without_userspace(
    lab: Lab, offload: ChannelOffload
) -> None:
    client, peer = lab.add_host("client"), lab.add_host("peer")
    wire_checksums(lab, client, peer)
    userspace = [bound(lab, lab.server, LISTENER[1]), bound(lab, lab.server, RELAY[1])]
    client_sock, peer_sock = bound(lab, client, 40000), bound(lab, peer, 6000)
    path = ChannelPath((client.ip, 40000), LISTENER, RELAY, (peer.ip, 6000), CHANNEL)
    offload.sync("allocation-1", [path])
    resolved(offload)
    assert [a.mode for a in offload.attachments] == ["generic"]

    sizes = [0, 1, 2, 3, 160, 1000]
    for size in sizes:
        client_sock.sendto(channel_data(CHANNEL, bytes([size % 251]) * size), LISTENER)
    for size in sizes:
        data, source = peer_sock.recvfrom(2048)
        assert (source, data) == (RELAY, bytes([size % 251]) * size)
    for size in sizes:
        peer_sock.sendto(b"r" * size, RELAY)
    for size in sizes:
        data, source = client_sock.recvfrom(2048)
        assert (source, data) == (LISTENER, channel_data(CHANNEL, b"r" * size))

    assert [quiet(sock) for sock in userspace] == [0, 0]
    total = sum(sizes)
    assert offload.collect() == {"allocation-1": Meter(total, len(sizes), total, len(sizes))}
    assert offload.outcomes()[Outcome.TX] == 2 * len(sizes)


def test_a_locally_offloaded_checksum_is_left_to_the_kernel(
    lab: Lab, offload: ChannelOffload
) -> None:
    """A sender that left its checksum to offload: relayed by the kernel's UDP, never broken."""
    client, peer = lab.add_host("client"), lab.add_host("peer")
    listener = bound(lab, lab.server, LISTENER[1])
    client_sock = bound(lab, client, 40000)
    path = ChannelPath((client.ip, 40000), LISTENER, RELAY, (peer.ip, 6000), CHANNEL)
    offload.sync("allocation-1", [path])
    resolved(offload)
    client_sock.sendto(channel_data(CHANNEL, b"partial"), LISTENER)
    assert listener.recvfrom(2048)[0] == channel_data(CHANNEL, b"partial")
    assert offload.outcomes()[Outcome.BAD_CHECKSUM] == 1


def test_an_unbound_peer_and_a_released_channel_reach_userspace_only(
    lab: Lab, offload: ChannelOffload
) -> None:
    client, peer = lab.add_host("client"), lab.add_host("peer")
    wire_checksums(lab, client, peer)
    listener, relay = bound(lab, lab.server, LISTENER[1]), bound(lab, lab.server, RELAY[1])
    client_sock, peer_sock = bound(lab, client, 40000), bound(lab, peer, 6000)
    stranger = bound(lab, peer, 6001)
    path = ChannelPath((client.ip, 40000), LISTENER, RELAY, (peer.ip, 6000), CHANNEL)
    offload.sync("allocation-1", [path])
    resolved(offload)

    stranger.sendto(b"not bound", RELAY)
    assert relay.recvfrom(2048) == (b"not bound", (peer.ip, 6001))
    client_sock.settimeout(0.3)
    with pytest.raises(TimeoutError):
        client_sock.recv(2048)

    offload.release("allocation-1")
    assert not offload.program.flows()
    client_sock.sendto(channel_data(CHANNEL, b"after expiry"), LISTENER)
    assert listener.recvfrom(2048)[0] == channel_data(CHANNEL, b"after expiry")
    peer_sock.sendto(b"late", RELAY)
    assert relay.recvfrom(2048)[0] == b"late"
    assert offload.collect() == {}


def test_the_program_leaves_the_interface_on_close_and_on_kill_9(lab: Lab) -> None:
    started = lab.call(lab.server, ChannelOffload.start, [SERVER_IP])
    assert xdp_of(lab) is not None
    started.close()
    assert xdp_of(lab) is None

    holder = lab.python(lab.server, str(HOLD), SERVER_IP, stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "attached"
    assert xdp_of(lab) is not None
    holder.kill()
    holder.wait(5)
    deadline = time.monotonic() + 5
    while xdp_of(lab) is not None:  # the link is released when the last fd closes
        assert time.monotonic() < deadline, "the program stayed attached after kill -9"
        time.sleep(0.05)
    again = lab.call(lab.server, ChannelOffload.start, [SERVER_IP])
    again.close()


def test_a_second_offload_on_the_same_interface_is_refused_with_a_reason(
    lab: Lab, offload: ChannelOffload
) -> None:
    from passage.offload.capabilities import OffloadUnavailable

    with pytest.raises(OffloadUnavailable, match="another passage serve"):
        lab.call(lab.server, ChannelOffload.start, [SERVER_IP])
    assert sys.platform == "linux"


SERVER_V6, CLIENT_V6, PEER_V6 = "2001:db8::10", "2001:db8::20", "2001:db8::21"


def add_ipv6(lab: Lab, node: Node, ip: str) -> None:
    """An IPv6 address on ``node``'s eth0, on the lab's data-centre segment (one link)."""
    lab.run(node, ["ip", "-6", "addr", "add", f"{ip}/64", "dev", "eth0", "nodad"])


def bound6(lab: Lab, node: Node, ip: str, port: int) -> socket.socket:
    sock = lab.socket(node, family=socket.AF_INET6)
    sock.bind((ip, port))
    sock.settimeout(2.0)
    return sock


@pytest.mark.parametrize("families", ["ipv6", "ipv4-client-ipv6-peer"])
def test_ipv6_and_mixed_channels_cross_real_interfaces(
    lab: Lab, offload: ChannelOffload, families: str
) -> None:
    """RFC 8656 §3.6 lets the relayed address be of the other family; NDP finds the next hops."""
    client, peer = lab.add_host("client"), lab.add_host("peer")
    wire_checksums(lab, client, peer)
    add_ipv6(lab, lab.server, SERVER_V6)
    add_ipv6(lab, peer, PEER_V6)
    if families == "ipv6":
        add_ipv6(lab, client, CLIENT_V6)
        client_sock = bound6(lab, client, CLIENT_V6, 40000)
        listener: tuple[str, int] = (SERVER_V6, 3478)
        userspace_listener = bound6(lab, lab.server, SERVER_V6, 3478)
    else:
        client_sock = bound(lab, client, 40000)
        listener = LISTENER
        userspace_listener = bound(lab, lab.server, LISTENER[1])
    relay = (SERVER_V6, 50000)
    userspace_relay = bound6(lab, lab.server, SERVER_V6, 50000)
    peer_sock = bound6(lab, peer, PEER_V6, 6000)
    client_address = client_sock.getsockname()[:2]
    path = ChannelPath(client_address, listener, relay, (PEER_V6, 6000), CHANNEL)
    offload.sync("allocation-1", [path])
    resolved(offload)

    client_sock.sendto(channel_data(CHANNEL, b"to the peer"), listener)
    data, source = peer_sock.recvfrom(2048)
    assert (data, source[:2]) == (b"to the peer", relay)
    peer_sock.sendto(b"to the client", relay)
    data, source = client_sock.recvfrom(2048)
    assert (data, source[:2]) == (channel_data(CHANNEL, b"to the client"), listener)
    assert [quiet(sock) for sock in (userspace_listener, userspace_relay)] == [0, 0]
    assert offload.collect() == {"allocation-1": Meter(11, 1, 13, 1)}


def test_a_passage_program_left_attached_the_old_way_is_replaced(lab: Lab) -> None:
    """One attached through netlink (``ip link set ... xdpgeneric``) outlives its loader: the
    next start takes it off and attaches its own, through a link that dies with it."""
    lab.run(
        lab.server,
        ["ip", "link", "set", "dev", "eth0", "xdpgeneric", "obj", str(build_object()),
         "sec", "xdp"],
    )  # fmt: skip
    left = xdp_of(lab)
    assert left is not None
    started = lab.call(lab.server, ChannelOffload.start, [SERVER_IP])
    try:
        now = xdp_of(lab)
        assert now is not None and now != left
    finally:
        started.close()
    assert xdp_of(lab) is None
