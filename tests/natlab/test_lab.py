"""The NAT lab itself, over real packets: reachability, NAT mappings, the firewall, teardown.

Mappings are what a server on the lab's internet sees: :mod:`natlab.reflector`
answers each datagram or connection with its source address, and a real
``passage serve`` answers STUN Binding requests with XOR-MAPPED-ADDRESS.
"""

from __future__ import annotations

import errno
import os
import socket
import subprocess
from pathlib import Path

import aioice
import pytest

from natlab import Firewall, Lab, Nat, Node, availability, netns, presets
from natlab.fixtures import skip_unless_available
from natlab.probes import stun_mapped, tcp_seen, udp_seen
from passage.stun import AttributeType, MessageClass
from turn_client import TurnClient

PORT = 3478
OTHER_PORT = 3479
HTTPS = 443
NO_ANSWER = 0.3
"""Seconds to wait where a packet is expected to be dropped; the drop counters
then prove it was (a broken firewall answers in microseconds, and is counted not)."""


def bound(lab: Lab, node: Node, port: int = 0) -> socket.socket:
    """A UDP socket in ``node``, bound to ``port`` (0: any free one)."""
    sock = lab.socket(node)
    sock.bind(("0.0.0.0", port))
    return sock


def test_two_hosts_on_one_lan_reach_each_other_directly(lab: Lab) -> None:
    pair = presets.same_lan(lab)
    lab.reflector(pair.b, udp=[(pair.b.ip, PORT)], tcp=[(pair.b.ip, PORT)])
    sock = bound(lab, pair.a)
    # Bob sees Alice's own LAN address and port: no NAT between them.
    assert udp_seen(sock, (pair.b.ip, PORT)) == (pair.a.ip, sock.getsockname()[1])
    assert tcp_seen(lab.socket(pair.a, socket.SOCK_STREAM), (pair.b.ip, PORT)) is not None
    assert pair.a.site is pair.b.site
    assert pair.a.ip != pair.b.ip


def test_loopback_is_up_in_every_namespace(lab: Lab) -> None:
    pair = presets.two_eim_nats(lab)
    for node in (pair.a, pair.b, pair.a.site, lab.server, lab.internet):
        assert node is not None
        listener = lab.socket(node)
        listener.bind(("127.0.0.1", 0))
        sender = lab.socket(node)
        sender.sendto(b"self", listener.getsockname())
        listener.settimeout(2.0)
        assert listener.recvfrom(16)[0] == b"self"
        listener.close()
        sender.close()


def test_the_internet_routes_nowhere_outside_the_lab(lab: Lab) -> None:
    """No default route in the internet router: lab traffic cannot leave the lab."""

    def connect_out() -> int:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            try:
                sock.connect(("192.0.2.1", 9))  # TEST-NET-1, not a lab range; sends nothing
            except OSError as exc:
                return exc.errno or 0
            return 0

    assert lab.call(lab.internet, connect_out) == errno.ENETUNREACH


def test_eim_nat_gives_one_socket_one_mapping_whatever_it_talks_to(lab: Lab) -> None:
    """RFC 4787 §4.1 endpoint-independent mapping: plain masquerade."""
    pair = presets.two_eim_nats(lab)
    server = lab.server
    lab.reflector(server, udp=[(server.ip, PORT), (server.alt_ip, PORT), (server.ip, OTHER_PORT)])
    sock = bound(lab, pair.a)
    seen = [
        udp_seen(sock, destination)
        for destination in [(server.ip, PORT), (server.alt_ip, PORT), (server.ip, OTHER_PORT)]
    ]
    assert pair.a.site is not None and pair.a.site.nat is Nat.ENDPOINT_INDEPENDENT
    assert seen[0] is not None and seen[0][0] == pair.a.site.ip
    assert seen[1] == seen[0]
    assert seen[2] == seen[0]


def test_symmetric_nat_maps_each_destination_to_its_own_port(lab: Lab) -> None:
    """RFC 4787 §4.1 address-and-port-dependent mapping: ``masquerade random``.

    The NAT draws a mapped port per flow from 64512, so two flows share one by
    chance with odds of 1 in 64512; this test would then fail, once.
    """
    pair = presets.two_symmetric_nats(lab)
    server = lab.server
    lab.reflector(server, udp=[(server.ip, PORT), (server.alt_ip, PORT), (server.ip, OTHER_PORT)])
    sock = bound(lab, pair.a)
    first = udp_seen(sock, (server.ip, PORT))
    other_address = udp_seen(sock, (server.alt_ip, PORT))
    other_port = udp_seen(sock, (server.ip, OTHER_PORT))
    again = udp_seen(sock, (server.ip, PORT))
    assert pair.a.site is not None and pair.a.site.nat is Nat.SYMMETRIC
    assert first is not None and other_address is not None and other_port is not None
    assert {first[0], other_address[0], other_port[0]} == {pair.a.site.ip}
    assert other_address != first, "the mapping must depend on the remote address"
    assert other_port != first, "the mapping must depend on the remote port"
    assert again == first, "a flow keeps its mapping"


def test_firewall_lets_only_tcp_443_out(lab: Lab) -> None:
    pair = presets.firewalled_host(lab)
    corp = pair.a.site
    assert corp is not None
    server = lab.server
    lab.reflector(server, udp=[(server.ip, PORT)], tcp=[(server.ip, PORT), (server.ip, HTTPS)])

    https = tcp_seen(lab.socket(pair.a, socket.SOCK_STREAM), (server.ip, HTTPS))
    assert https is not None and https[0] == corp.ip  # NATed, and the answer came back
    assert tcp_seen(lab.socket(pair.a, socket.SOCK_STREAM), (server.ip, PORT), NO_ANSWER) is None
    assert udp_seen(bound(lab, pair.a), (server.ip, PORT), tries=1, wait=NO_ANSWER) is None
    dropped = lab.counters(corp)
    assert dropped["tcp_out_dropped"] >= 1  # the SYN (and its retransmissions)
    assert dropped["udp_out_dropped"] >= 1

    # The same server ports answer a host that has no firewall in the way.
    tcp = tcp_seen(lab.socket(pair.b, socket.SOCK_STREAM), (server.ip, PORT))
    assert tcp is not None and tcp[0] == pair.b.ip
    udp = udp_seen(bound(lab, pair.b), (server.ip, PORT))
    assert udp is not None and udp[0] == pair.b.ip


@pytest.mark.parametrize(
    ("firewall", "tcp_passes"), [(Firewall.UDP_BLOCKED, True), (Firewall.ALL_BLOCKED, False)]
)
def test_blocking_firewalls_drop_udp_and_maybe_tcp(
    lab: Lab, firewall: Firewall, tcp_passes: bool
) -> None:
    site = lab.add_site("blocked", Nat.ENDPOINT_INDEPENDENT, firewall)
    host = lab.add_host("alice", site)
    server = lab.server
    lab.reflector(server, udp=[(server.ip, PORT)], tcp=[(server.ip, HTTPS)])
    tcp = tcp_seen(lab.socket(host, socket.SOCK_STREAM), (server.ip, HTTPS), NO_ANSWER)
    assert (tcp is not None) == tcp_passes
    assert udp_seen(bound(lab, host), (server.ip, PORT), tries=1, wait=NO_ANSWER) is None
    dropped = lab.counters(site)
    assert dropped["udp_out_dropped"] >= 1
    assert (dropped["tcp_out_dropped"] >= 1) != tcp_passes


def punch(lab: Lab, pair: presets.Pair) -> tuple[bytes | None, bytes | None]:
    """Hole punching as ICE does it, by hand: alice sends to bob's mapped port first (her
    packet dies at bob's NAT), bob sends to hers, alice sends again. What each received."""
    assert pair.a.site is not None and pair.b.site is not None
    alice, bob = bound(lab, pair.a, 40000), bound(lab, pair.b, 41000)
    # Endpoint-independent NATs keep the port: these are the mappings a STUN server sees.
    to_alice, to_bob = (pair.a.site.ip, 40000), (pair.b.site.ip, 41000)

    def receive(sock: socket.socket) -> bytes | None:
        sock.settimeout(NO_ANSWER)
        try:
            return sock.recv(64)
        except TimeoutError:
            return None

    alice.sendto(b"alice-1", to_bob)
    bob.sendto(b"bob-1", to_alice)
    got_alice = receive(alice)
    alice.sendto(b"alice-2", to_bob)
    return got_alice, receive(bob)


def test_two_eim_nats_let_a_punched_hole_through(lab: Lab) -> None:
    """RFC 4787 §4.1 and §5: the first packet opens the sender's NAT for the peer, and is
    dropped (counted) at the peer's; once both have sent, both directions pass."""
    pair = presets.two_eim_nats(lab)
    assert punch(lab, pair) == (b"bob-1", b"alice-2")
    assert pair.b.site is not None and lab.counters(pair.b.site)["in_dropped"] >= 1


def test_two_symmetric_nats_defeat_hole_punching(lab: Lab) -> None:
    """Each NAT maps the flow to the peer to a fresh port, not the one the peer aims at."""
    pair = presets.two_symmetric_nats(lab)
    assert punch(lab, pair) == (None, None)


def test_site_routers_drop_unsolicited_inbound_traffic(lab: Lab) -> None:
    """Nothing new gets in from the WAN, not even TCP 443 through the firewall."""
    pair = presets.firewalled_host(lab)
    corp = pair.a.site
    assert corp is not None
    lab.reflector(pair.a, udp=[(pair.a.ip, PORT)], tcp=[(pair.a.ip, HTTPS)])
    # Only to try: a route on the internet that points at the corp's LAN.
    lab.run(lab.internet, ["ip", "route", "add", str(corp.lan), "via", corp.ip])
    assert tcp_seen(lab.socket(pair.b, socket.SOCK_STREAM), (pair.a.ip, HTTPS), NO_ANSWER) is None
    assert udp_seen(bound(lab, pair.b), (pair.a.ip, PORT), tries=1, wait=NO_ANSWER) is None
    assert lab.counters(corp)["in_dropped"] >= 2


def test_stun_to_passage_returns_the_nat_wan_address(lab: Lab, tmp_path: Path) -> None:
    """XOR-MAPPED-ADDRESS (RFC 8489 §14.2) from a real ``passage serve`` on both its addresses."""
    pair = presets.two_eim_nats(lab)
    site = pair.a.site
    assert site is not None
    with lab.passage(tmp_path / "passage", alt=True) as passage:
        # The project's TURN test client, run in Alice's namespace in its own event loop.
        async def binding() -> object:
            client = await TurnClient.connect("udp", passage.stun)
            try:
                answer = await client.binding()
            finally:
                await client.close()
            assert answer.message_class is MessageClass.SUCCESS
            return answer.get(AttributeType.XOR_MAPPED_ADDRESS, tuple)

        mapped = lab.call(pair.a, binding)
        assert isinstance(mapped, tuple) and mapped[0] == site.ip

        # It is exactly the NAT's mapping: one socket, seen the same by Passage on
        # both its addresses and by a reflector on a third port (EIM).
        lab.reflector(lab.server, udp=[(lab.server.alt_ip, OTHER_PORT)])
        sock = bound(lab, pair.a)
        from_passage = stun_mapped(sock, passage.stun)
        assert from_passage is not None and from_passage[0] == site.ip
        assert stun_mapped(sock, (passage.alt_ip, passage.info.turn_port)) == from_passage
        assert udp_seen(sock, (lab.server.alt_ip, OTHER_PORT)) == from_passage

        # An ICE agent gathering inside the host sees the host's own interfaces
        # (aioice enumerates them in the thread's namespace) and its srflx address.
        async def gather() -> set[tuple[str, str]]:
            connection = aioice.Connection(
                ice_controlling=True, stun_server=passage.stun, use_ipv6=False
            )
            try:
                await connection.gather_candidates()
                return {(c.type, c.host) for c in connection.local_candidates}
            finally:
                await connection.close()

        assert lab.call(pair.a, gather) == {("host", pair.a.ip), ("srflx", site.ip)}


async def test_passage_relays_between_hosts_behind_two_nats(lab: Lab, tmp_path: Path) -> None:
    """TURN through the lab: the peer is a NAT's WAN address, a documentation range
    Passage refuses by default; the lab's ``--allow-peer`` flags let it relay."""
    pair = presets.two_eim_nats(lab)
    with lab.passage(tmp_path / "passage") as passage:
        alice = await TurnClient.connect("udp", passage.stun, sock=lab.socket(pair.a))
        bob = bound(lab, pair.b)
        try:
            assert (await alice.allocate()).message_class is MessageClass.SUCCESS
            assert alice.relayed is not None and alice.relayed[0] == lab.server.ip
            bob_seen = stun_mapped(bob, passage.stun)
            assert bob_seen is not None and pair.b.site is not None
            assert bob_seen[0] == pair.b.site.ip
            permitted = await alice.create_permission(bob_seen)
            assert permitted.message_class is MessageClass.SUCCESS

            bob.sendto(b"to alice", alice.relayed)
            received = await alice.receive()
            assert (received.data, received.peer) == (b"to alice", bob_seen)

            alice.send_indication(bob_seen, b"to bob")
            bob.settimeout(3.0)
            assert bob.recvfrom(64) == (b"to bob", alice.relayed)
        finally:
            await alice.close()
            bob.close()


async def test_acall_runs_a_coroutine_inside_the_node(lab: Lab) -> None:
    host = lab.add_host("public")

    async def source_address() -> str:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with sock:
            sock.connect((lab.server.ip, PORT))  # a route look-up; sends nothing
            return str(sock.getsockname()[0])

    assert await lab.acall(host, source_address) == host.ip


def test_processes_run_inside_their_node(lab: Lab) -> None:
    pair = presets.two_eim_nats(lab)
    routes = lab.run(pair.a, ["ip", "-4", "-o", "addr", "show", "dev", "eth0"]).stdout
    assert f"inet {pair.a.ip}/24" in routes
    code = "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
    code += "s.connect(('203.0.113.10', 9)); print(s.getsockname()[0])"
    process = lab.python(pair.b, "-c", code, stdout=subprocess.PIPE, text=True)
    out, _ = process.communicate(timeout=20)
    assert out.strip() == pair.b.ip


def test_teardown_deletes_every_namespace_and_process_even_after_a_failure() -> None:
    skip_unless_available()
    root_links_before = _root_links()
    with pytest.raises(RuntimeError, match="the test failed"), Lab() as lab:
        presets.two_symmetric_nats(lab)
        sleeper = lab.popen(lab.hosts["alice"], ["sleep", "600"])
        names = lab.namespaces
        inodes = {os.stat(netns.NETNS_DIR / name).st_ino for name in names}
        assert len(names) == 6 and all(name.startswith(lab.tag + "-") for name in names)
        raise RuntimeError("the test failed")
    assert netns.ours(lab.tag) == []
    assert lab.namespaces == []
    assert sleeper.poll() is not None
    assert _processes_in(inodes) == []
    # Nothing of the lab was ever in the root namespace, and nothing is now.
    assert not (_root_links() - root_links_before) & {"eth0", "wan", "lan", "dc", "isp"}


def test_stale_namespaces_of_killed_runs_are_removed_and_live_ones_kept() -> None:
    skip_unless_available()
    finished = subprocess.Popen(["true"])
    finished.wait()
    stale = f"{netns.PREFIX}{finished.pid}-0000-alice"
    live = f"{netns.new_tag()}-bob"
    netns.add(stale)
    netns.add(live)
    try:
        netns.remove_stale()  # a concurrent lab starting now may remove it first: same result
        assert stale not in netns.listed()
        assert live in netns.listed()
    finally:
        netns.delete(stale)
        netns.delete(live)


def test_node_names_are_checked(lab: Lab) -> None:
    lab.add_host("alice")
    with pytest.raises(ValueError, match="already has"):
        lab.add_host("alice")
    with pytest.raises(ValueError, match="already has"):
        lab.add_site("server")
    with pytest.raises(ValueError, match="at most 20"):
        lab.add_host("Alice Smith")


@pytest.mark.parametrize("preset", presets.PRESETS.values(), ids=presets.PRESETS.keys())
def test_every_preset_reaches_the_server(lab: Lab, preset: presets.PresetFn) -> None:
    pair = preset(lab)
    lab.reflector(lab.server, tcp=[(lab.server.ip, HTTPS)])
    for host in (pair.a, pair.b):
        seen = tcp_seen(lab.socket(host, socket.SOCK_STREAM), (lab.server.ip, HTTPS))
        assert seen is not None
        assert seen[0] == (host.site.ip if host.site is not None else host.ip)


def _root_links() -> set[str]:
    out = subprocess.run(
        [netns.tool("ip"), "-o", "link", "show"], capture_output=True, text=True, check=True
    ).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}


def _processes_in(inodes: set[int]) -> list[int]:
    """Pids of processes whose network namespace is one of ``inodes``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.stat(entry / "ns" / "net").st_ino in inodes:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_an_unavailable_lab_skips_with_its_reason_or_fails_where_required(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    why = "network namespaces unavailable: ip netns add: Operation not permitted"
    monkeypatch.setattr(availability, "reason", lambda: why)
    monkeypatch.delenv(availability.REQUIRED_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="Operation not permitted"):
        skip_unless_available()
    monkeypatch.setenv(availability.REQUIRED_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match="PASSAGE_NATLAB_REQUIRED"):
        skip_unless_available()
