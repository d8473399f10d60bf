"""The NAT boxes and firewalls of the lab's sites, as nftables rulesets.

Each site router has a ``wan`` link on the internet and a ``lan`` bridge for
its hosts; its behaviour is one nftables table, ``ip natlab``, loaded into the
router's namespace. The behaviours, in RFC 4787 terms:

- :attr:`Nat.ENDPOINT_INDEPENDENT`: Linux conntrack's plain ``masquerade``.
  Conntrack keeps a flow's source port when it is free on the WAN address, so
  one internal socket gets one mapping whatever it talks to: endpoint-
  independent mapping (RFC 4787 §4.1). Filtering is address-and-port-dependent
  (§5): only the exact remote a flow went to can answer ("port-restricted cone").
- :attr:`Nat.SYMMETRIC`: ``masquerade random``. ``random`` makes conntrack draw
  a new source port for every new flow instead of keeping a free one, so each
  (remote address, remote port) gets its own mapping: address-and-port-dependent
  mapping (§4.1), the NAT that defeats server-reflexive candidates.
- :attr:`Firewall.TCP_443_ONLY`: a corporate firewall. From the LAN out, only
  TCP to port 443 passes; all other TCP and all UDP is dropped. From the WAN in,
  nothing new passes; replies of allowed flows (``ct state established``) do.
- :attr:`Firewall.UDP_BLOCKED`: all UDP from the LAN out is dropped, TCP passes
  (a network that allows only "web-like" traffic, and TURN over TCP).
- :attr:`Firewall.ALL_BLOCKED`: all UDP and TCP from the LAN out is dropped:
  nothing reaches any server (the doctor's "nothing gets through").

New traffic from the WAN to the router itself is dropped too, as home routers
do. It matters for hole punching: a peer's first packet to the router's mapped
port arrives before the host behind it has sent, and were it delivered locally
(to no socket), conntrack would keep that flow, and the host's own outbound
packet to the peer would then clash with it and be given another port (the
NAT-a-port-for-this-peer of a symmetric NAT). Dropped in ``input``, the flow
is never confirmed, the mapping stays endpoint-independent, and the host's
packet opens the way for the peer's next retransmission (RFC 4787 §4.1, §5).

Every drop is counted in a named nftables counter (:data:`COUNTERS`), so a test
can prove that a packet died at the firewall and not elsewhere.
"""

from __future__ import annotations

import enum


class Nat(enum.Enum):
    """How a site router maps its LAN's flows to its WAN address (RFC 4787 §4.1)."""

    ENDPOINT_INDEPENDENT = "masquerade"
    SYMMETRIC = "masquerade random"

    @property
    def rule(self) -> str:
        return f'oifname "wan" {self.value}'


class Firewall(enum.Enum):
    """What a site router lets through besides NAT."""

    NONE = "none"
    TCP_443_ONLY = "tcp-443-only"
    UDP_BLOCKED = "udp-blocked"
    ALL_BLOCKED = "all-blocked"


COUNTERS = ("udp_out_dropped", "tcp_out_dropped", "in_dropped")
"""Named counters in every site router: outbound UDP and TCP the firewall
dropped, and inbound packets of no known flow dropped on the way to the LAN."""

# Rules of the forward chain, after "ct state established,related accept".
_FORWARD: dict[Firewall, tuple[str, ...]] = {
    Firewall.NONE: (),
    Firewall.TCP_443_ONLY: (
        'iifname "lan" oifname "wan" tcp dport 443 accept',
        'iifname "lan" oifname "wan" meta l4proto udp counter name "udp_out_dropped" drop',
        'iifname "lan" oifname "wan" meta l4proto tcp counter name "tcp_out_dropped" drop',
    ),
    Firewall.UDP_BLOCKED: (
        'iifname "lan" oifname "wan" meta l4proto udp counter name "udp_out_dropped" drop',
    ),
    Firewall.ALL_BLOCKED: (
        'iifname "lan" oifname "wan" meta l4proto udp counter name "udp_out_dropped" drop',
        'iifname "lan" oifname "wan" meta l4proto tcp counter name "tcp_out_dropped" drop',
    ),
}


def ruleset(nat: Nat, firewall: Firewall) -> str:
    """The ``nft -f -`` text for a site router (its namespace starts with no ruleset)."""
    counters = "".join(f"  counter {name} {{}}\n" for name in COUNTERS)
    forward = "".join(f"    {rule}\n" for rule in _FORWARD[firewall])
    return (
        "table ip natlab {\n"
        f"{counters}"
        "  chain postrouting {\n"
        "    type nat hook postrouting priority srcnat; policy accept;\n"
        f"    {nat.rule}\n"
        "  }\n"
        "  chain input {\n"
        "    type filter hook input priority filter; policy accept;\n"
        '    iifname "wan" ct state new counter name "in_dropped" drop\n'
        "  }\n"
        "  chain forward {\n"
        "    type filter hook forward priority filter; policy accept;\n"
        "    ct state established,related accept\n"
        f"{forward}"
        '    iifname "wan" counter name "in_dropped" drop\n'
        "  }\n"
        "}\n"
    )
