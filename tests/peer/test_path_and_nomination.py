"""Naming the chosen path, and choosing the pair to nominate (pure, ``now`` passed in)."""

from __future__ import annotations

import pytest

from passage.addresses import Transport
from passage.peer.nomination import CheckState, Nominate, NominationPolicy, PairView, Wait
from passage.peer.path import Endpoint, PathKind, classify

HOST = Endpoint("host", ("10.1.0.2", 5000))
PEER_HOST = Endpoint("host", ("10.1.0.3", 5001))
SRFLX = Endpoint("srflx", ("198.51.100.3", 5002))
PRFLX = Endpoint("prflx", ("198.51.100.3", 61000))


def relay(transport: Transport | None) -> Endpoint:
    return Endpoint("relay", ("203.0.113.10", 49200), transport)


@pytest.mark.parametrize(
    ("local", "remote", "kind", "both"),
    [
        (HOST, PEER_HOST, PathKind.DIRECT_LAN, False),
        (HOST, SRFLX, PathKind.DIRECT_NAT, False),
        (HOST, PRFLX, PathKind.DIRECT_NAT, False),
        (relay(Transport.UDP), PRFLX, PathKind.RELAY_UDP, False),
        (HOST, relay(Transport.TCP), PathKind.RELAY_TCP, False),
        (relay(Transport.TLS), HOST, PathKind.RELAY_TLS, False),
        (relay(Transport.UDP), relay(Transport.TLS), PathKind.RELAY_TLS, True),
        (relay(Transport.TCP), relay(Transport.UDP), PathKind.RELAY_TCP, True),
        (HOST, relay(None), PathKind.RELAY_UDP, False),  # a peer that did not say how
    ],
)
def test_the_path_is_named_by_its_most_constrained_leg(
    local: Endpoint, remote: Endpoint, kind: PathKind, both: bool
) -> None:
    path = classify(local, remote)
    assert (path.kind, path.both_relay) == (kind, both)
    assert classify(remote, local).kind == kind  # both peers name the same path
    assert path.kind.relayed == (kind not in (PathKind.DIRECT_LAN, PathKind.DIRECT_NAT))


def test_the_path_reads_well() -> None:
    local = Endpoint("relay", ("203.0.113.10", 49200), Transport.TLS, ("203.0.113.10", 443))
    assert str(classify(local, Endpoint("host", ("203.0.113.20", 40000)))) == (
        "relay-tls (relay 203.0.113.10:49200 via TURN over tls to 203.0.113.10:443"
        " <-> host 203.0.113.20:40000)"
    )


PENDING, OK, FAILED = CheckState.PENDING, CheckState.SUCCEEDED, CheckState.FAILED
POLICY = NominationPolicy(grace=1.5)


def pairs(*states: tuple[int, CheckState]) -> list[PairView]:
    """Pairs keyed by their priority."""
    return [PairView(priority, priority, state) for priority, state in states]


def test_nothing_to_nominate_before_a_success() -> None:
    assert POLICY.decide(pairs((9, PENDING), (1, FAILED)), None, 0.0) == Wait(None)


def test_the_best_pair_is_nominated_at_once_when_nothing_better_is_pending() -> None:
    assert POLICY.decide(pairs((9, OK), (5, PENDING)), 0.0, 0.0) == Nominate(9)
    assert POLICY.decide(pairs((9, FAILED), (5, OK), (1, OK)), 0.0, 0.0) == Nominate(5)


def test_a_relay_success_waits_for_a_pending_direct_pair() -> None:
    """Two EIM NATs: the relay pair succeeds first; the direct pair is still punching."""
    checks = pairs((9, PENDING), (5, PENDING), (1, OK))
    assert POLICY.decide(checks, 10.0, 10.2) == Wait(11.5)
    punched = pairs((9, PENDING), (5, OK), (1, OK))
    # It succeeds within the grace: it is better than the relay, so it wins once grace
    # is up for the still-pending host pair, never the relay.
    assert POLICY.decide(punched, 10.0, 10.4) == Wait(11.5)
    assert POLICY.decide(punched, 10.0, 11.5) == Nominate(5)


def test_grace_bounds_the_wait_for_pairs_that_never_answer() -> None:
    checks = pairs((9, PENDING), (5, PENDING), (1, OK))
    assert POLICY.decide(checks, 10.0, 11.5) == Nominate(1)
    assert POLICY.decide(checks, 10.0, 99.0) == Nominate(1)


def test_failures_of_better_pairs_end_the_wait_early() -> None:
    assert POLICY.decide(pairs((9, FAILED), (5, FAILED), (1, OK)), 10.0, 10.1) == Nominate(1)
