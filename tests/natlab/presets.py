"""The topologies the scenario tests need: two peers, Passage on the internet.

Each preset adds nodes to a started :class:`~natlab.Lab` and returns a
:class:`Pair`: peers ``a`` and ``b`` and the lab (whose ``server`` namespace is
where Passage runs). They share one shape so that a scenario test can be
parametrized over :data:`PRESETS`.

=======================  ==================================================
preset                   a                          b
=======================  ==================================================
``same_lan``             10.1.0.2 on site ``home``  10.1.0.3, same LAN
``two_eim_nats``         10.1.0.2 behind ``nat-a``  10.2.0.2 behind ``nat-b``
``two_symmetric_nats``   10.1.0.2 behind ``sym-a``  10.2.0.2 behind ``sym-b``
``eim_and_symmetric``    10.1.0.2 behind ``nat-a``  10.2.0.2 behind ``sym-b``
``firewalled_host``      10.1.0.2 behind ``corp``   203.0.113.20, public
=======================  ==================================================

``home``, ``nat-a`` and ``nat-b`` are endpoint-independent NATs; ``sym-*``
are symmetric; ``corp`` NATs and lets only TCP to port 443 out. Site routers'
WAN addresses are 198.51.100.2, .3 in order of creation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from natlab.lab import Host, Lab
from natlab.nat import Firewall, Nat


@dataclass(frozen=True)
class Pair:
    """Two peers in a lab."""

    lab: Lab
    a: Host
    b: Host


def same_lan(lab: Lab) -> Pair:
    """Two hosts on one LAN behind one endpoint-independent NAT."""
    home = lab.add_site("home", Nat.ENDPOINT_INDEPENDENT)
    return Pair(lab, lab.add_host("alice", home), lab.add_host("bob", home))


def _two_sites(lab: Lab, a: tuple[str, Nat], b: tuple[str, Nat]) -> Pair:
    left, right = lab.add_site(*a), lab.add_site(*b)
    return Pair(lab, lab.add_host("alice", left), lab.add_host("bob", right))


def two_eim_nats(lab: Lab) -> Pair:
    """Each host behind its own endpoint-independent NAT (hole punching works)."""
    return _two_sites(lab, ("nat-a", Nat.ENDPOINT_INDEPENDENT), ("nat-b", Nat.ENDPOINT_INDEPENDENT))


def two_symmetric_nats(lab: Lab) -> Pair:
    """Each host behind its own symmetric NAT (only a relay connects them)."""
    return _two_sites(lab, ("sym-a", Nat.SYMMETRIC), ("sym-b", Nat.SYMMETRIC))


def eim_and_symmetric(lab: Lab) -> Pair:
    """One host behind an endpoint-independent NAT, one behind a symmetric NAT."""
    return _two_sites(lab, ("nat-a", Nat.ENDPOINT_INDEPENDENT), ("sym-b", Nat.SYMMETRIC))


def firewalled_host(lab: Lab) -> Pair:
    """``a`` behind a NAT that lets only TCP to port 443 out; ``b`` a public host."""
    corp = lab.add_site("corp", Nat.ENDPOINT_INDEPENDENT, Firewall.TCP_443_ONLY)
    return Pair(lab, lab.add_host("alice", corp), lab.add_host("bob"))


PresetFn = Callable[[Lab], Pair]
"""A preset: adds its nodes to a started lab, returns the two peers."""

PRESETS: dict[str, PresetFn] = {
    preset.__name__: preset
    for preset in (same_lan, two_eim_nats, two_symmetric_nats, eim_and_symmetric, firewalled_host)
}
"""Every preset by name, for ``pytest.mark.parametrize``."""
