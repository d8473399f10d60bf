"""The NAT lab: a reusable test internet of network namespaces, veths and nftables.

See README.md beside this file. In brief::

    from natlab import Lab, presets
    from natlab.probes import udp_seen

    with Lab() as lab:
        pair = presets.two_eim_nats(lab)
        with lab.passage(tmp_path / "passage") as passage:
            sock = lab.socket(pair.a)
            seen = udp_seen(sock, passage.stun)  # or a STUN Binding: probes.stun_mapped
"""

from natlab.lab import ACCESS, DC, INTERNET_RANGES, Host, Lab, Node, Server, Site
from natlab.nat import COUNTERS, Firewall, Nat
from natlab.netns import LabError, LabUnavailable

__all__ = [
    "ACCESS",
    "COUNTERS",
    "DC",
    "INTERNET_RANGES",
    "Firewall",
    "Host",
    "Lab",
    "LabError",
    "LabUnavailable",
    "Nat",
    "Node",
    "Server",
    "Site",
]
