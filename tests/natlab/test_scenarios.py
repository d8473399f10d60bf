"""The most direct path, scenario by scenario: two ``passage.peer.sdk.Peer`` s in the NAT lab.

Each test builds a topology, runs ``passage serve`` on the lab's internet,
connects a peer in each host (each in its own namespace: aioice gathers the
host's interfaces), and asserts the path both sides report and that a stream
of random bytes arrived intact both ways.

=====================================  ==============  ========================
scenario                               path            why
=====================================  ==============  ========================
same LAN                               ``direct-lan``  host to host
two endpoint-independent NATs          ``direct-nat``  hole punching, srflx
symmetric NAT on both sides            ``relay-udp``   srflx mappings are per peer
UDP blocked (TCP 443 only)             ``relay-tls``   TURN over TLS on port 443
=====================================  ==============  ========================
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from natlab import Lab, presets
from natlab.peering import Outcome, api_on_443, connect_pair
from passage.addresses import Transport
from passage.peer.nomination import CheckState
from passage.peer.sdk import PathKind

SIZES = (96 * 1024, 64 * 1024)
"""Bytes each side sends (alice, bob)."""


def random_data(seed: int) -> tuple[bytes, bytes]:
    rng = random.Random(seed)
    return rng.randbytes(SIZES[0]), rng.randbytes(SIZES[1])


def assert_intact(outcomes: tuple[Outcome, Outcome], data: tuple[bytes, bytes]) -> None:
    alice, bob = outcomes
    assert bob.received == data[0], "alice's bytes did not arrive intact"
    assert alice.received == data[1], "bob's bytes did not arrive intact"
    assert alice.controlling != bob.controlling, "exactly one side leads"


async def test_same_lan_is_direct_lan(lab: Lab, tmp_path: Path) -> None:
    pair = presets.same_lan(lab)
    data = random_data(1)
    with lab.passage(tmp_path / "passage") as passage:
        alice, bob = await connect_pair(lab, passage, pair.a, pair.b, data)
    assert_intact((alice, bob), data)
    for outcome, me, other in ((alice, pair.a, pair.b), (bob, pair.b, pair.a)):
        assert outcome.path.kind is PathKind.DIRECT_LAN, outcome.path
        assert outcome.path.local.address[0] == me.ip
        assert outcome.path.remote.address[0] == other.ip


async def test_two_endpoint_independent_nats_are_direct_nat(lab: Lab, tmp_path: Path) -> None:
    """Relay pairs succeed first; the peer still ends on the hole-punched direct pair."""
    pair = presets.two_eim_nats(lab)
    data = random_data(2)
    with lab.passage(tmp_path / "passage") as passage:
        alice, bob = await connect_pair(lab, passage, pair.a, pair.b, data)
    assert_intact((alice, bob), data)
    assert pair.a.site is not None and pair.b.site is not None
    for outcome, other_site in ((alice, pair.b.site), (bob, pair.a.site)):
        assert outcome.path.kind is PathKind.DIRECT_NAT, outcome.path
        assert outcome.path.local.type == "host" and not outcome.path.both_relay
        assert outcome.path.remote.address[0] == other_site.ip  # the other NAT's mapping
    # The relay pairs worked too: the direct one was chosen over them, not for want of them.
    leader = alice if alice.controlling else bob
    relayed_ok = [c for c in leader.checks if c.local.relay and c.state is CheckState.SUCCEEDED]
    assert relayed_ok, leader.checks


async def test_symmetric_nats_on_both_sides_relay_over_udp(lab: Lab, tmp_path: Path) -> None:
    pair = presets.two_symmetric_nats(lab)
    data = random_data(3)
    with lab.passage(tmp_path / "passage") as passage:
        alice, bob = await connect_pair(lab, passage, pair.a, pair.b, data)
    assert_intact((alice, bob), data)
    for outcome in (alice, bob):
        assert outcome.path.kind is PathKind.RELAY_UDP, outcome.path
    # One side sends from its relayed address, the other from its host socket straight to
    # that relay (its symmetric NAT's fresh mapping, a peer-reflexive candidate).
    assert {alice.path.local.type, bob.path.local.type} == {"relay", "host"}


@pytest.mark.parametrize("deny", [True, False], ids=["default-deny-list", "private-allowed"])
async def test_symmetric_nats_the_deny_list_refuses_private_peers_with_403(
    lab: Lab, tmp_path: Path, deny: bool
) -> None:
    """Passage's default deny list answers 403 to a permission for the peers' private host
    addresses; the peer takes that as the end of those relay checks (they fail at once,
    not at their 40 s timeout). With the private range allowed, the relay sends the checks
    into a void and they hang; either way the peer ends on ``relay-udp``: its nomination
    waits for them no longer than its grace."""
    pair = presets.two_symmetric_nats(lab)
    data = random_data(4)
    extra = () if deny else ("--allow-peer", "10.0.0.0/8")
    with lab.passage(tmp_path / "passage", *extra) as passage:
        alice, bob = await connect_pair(lab, passage, pair.a, pair.b, data)
        log = passage.log.read_text()
    assert_intact((alice, bob), data)
    assert alice.path.kind is bob.path.kind is PathKind.RELAY_UDP
    refusals = [line for line in log.splitlines() if "403 Forbidden peer (private)" in line]
    # Each side's three relays (UDP, TCP, TLS) asked for the other's host address (10.x).
    assert (len(refusals) >= 6) if deny else not refusals, log[-3000:]
    expected = CheckState.FAILED if deny else CheckState.PENDING
    for outcome, other in ((alice, pair.b), (bob, pair.a)):
        towards_private = [
            c for c in outcome.checks if c.local.type == "relay" and c.remote.address[0] == other.ip
        ]
        assert len(towards_private) == 3, outcome.checks
        assert {c.state for c in towards_private} == {expected}, towards_private


async def test_udp_blocked_relays_over_tls_on_443(lab: Lab, tmp_path: Path) -> None:
    """Behind a firewall that lets only TCP 443 out: no UDP, no TURN over TCP 3478, no TLS
    on 5349; Passage listens for TURN over TLS on 443 too (``--turns-extra-port 443``)."""
    pair = presets.firewalled_host(lab)
    corp = pair.a.site
    assert corp is not None
    data = random_data(5)
    extra = ("--turns-extra-port", "443")
    with lab.passage(tmp_path / "passage", *extra, alt=True, turns_port=5349) as passage:
        api = api_on_443(lab, passage)
        alice, bob = await connect_pair(
            lab, passage, pair.a, pair.b, data, api_urls=(api, passage.info.api_url)
        )
    assert_intact((alice, bob), data)
    assert alice.path.kind is PathKind.RELAY_TLS, alice.path
    assert alice.path.local.relay is Transport.TLS
    assert alice.path.local.server == (passage.ip, 443)
    assert bob.path.kind is PathKind.RELAY_TLS, bob.path  # bob names the same path
    assert bob.path.local.type == "host" and not bob.path.both_relay
    dropped = lab.counters(corp)
    assert dropped["udp_out_dropped"] >= 1  # STUN, TURN over UDP, host checks: all tried
    assert dropped["tcp_out_dropped"] >= 1  # TURN over TCP on 3478 and TLS on 5349


@pytest.mark.parametrize("preset", ["eim_and_symmetric"])
async def test_eim_and_symmetric_relay_over_udp(lab: Lab, tmp_path: Path, preset: str) -> None:
    """The EIM side's NAT filters by address and port (RFC 4787 §5): the symmetric side's
    checks come from fresh ports it never sent to, so nothing direct gets through."""
    pair = presets.PRESETS[preset](lab)
    data = random_data(6)
    with lab.passage(tmp_path / "passage") as passage:
        alice, bob = await connect_pair(lab, passage, pair.a, pair.b, data)
    assert_intact((alice, bob), data)
    assert alice.path.kind is bob.path.kind is PathKind.RELAY_UDP
