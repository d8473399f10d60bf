"""Which IPs relay sockets bind and advertise, from the configuration and the host."""

from __future__ import annotations

import ipaddress

from passage.addresses import AddressFamily, family_of
from passage.config import Config
from passage.hostaddr import primary_ip
from passage.turn.aio.relay_sockets import RelayAddresses


def relay_addresses(config: Config) -> RelayAddresses:
    """Relay bind IPs per family: ``--relay-ip``, else the specific listen IPs, else the host's.

    A wildcard listen IP (``0.0.0.0``/``::``) relays from the host's primary
    address of that family, or loopback when the host has no route at all.
    ``--public-ip`` replaces the advertised address of its family (1:1 NAT).
    """
    bind: dict[int, str] = {}
    for ip in config.relay_ips:
        bind.setdefault(family_of(ip), ip)
    if not bind:
        for ip in config.listen_ips:
            family = family_of(ip)
            if family in bind:
                continue
            if not ipaddress.ip_address(ip).is_unspecified:
                bind[family] = ip
            else:
                found = primary_ip(family)
                if found is not None:
                    bind[family] = found
                elif family == AddressFamily.IPV4:
                    bind[family] = "127.0.0.1"
    advertised = dict(bind)
    if config.public_ip is not None:
        advertised[family_of(config.public_ip)] = config.public_ip
    return RelayAddresses(bind=bind, advertised=advertised, port_range=config.relay_ports)
