"""Asking the kernel about routes, neighbours, interfaces and addresses over rtnetlink.

The I/O half of :mod:`passage.offload.netlink`: one NETLINK_ROUTE socket,
blocking with a short timeout (every request here is answered from kernel
tables at once), used from the event loop's thread at ChannelBind time and
once a second for neighbours still being resolved.
"""

from __future__ import annotations

import itertools
import os
import socket
from collections.abc import Callable, Iterator
from types import TracebackType

from passage.offload import netlink
from passage.offload.maps import Neighbour

NETLINK_ROUTE = 0
TIMEOUT = 1.0
"""Seconds to wait for an answer the kernel gives from its own tables."""
RECEIVE_SIZE = 1 << 16


class Rtnetlink:
    """A NETLINK_ROUTE socket in the caller's network namespace."""

    def __init__(self) -> None:
        self._socket = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
        self._socket.settimeout(TIMEOUT)
        self._socket.bind((0, 0))
        self._sequence = itertools.count(1)

    def close(self) -> None:
        self._socket.close()

    def __enter__(self) -> Rtnetlink:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _ask(self, build: Callable[..., bytes], *args: object) -> Iterator[netlink.Message]:
        """Send one request; yield its answers until DONE, a lone answer, or the ACK."""
        sequence = next(self._sequence)
        request = build(*args, sequence)
        self._socket.send(request)
        dump = bool(int.from_bytes(request[6:8], "little") & netlink.NLM_F_DUMP)
        while True:
            for message in netlink.messages(self._socket.recv(RECEIVE_SIZE)):
                if message.sequence != sequence:
                    continue
                if message.kind == netlink.NLMSG_DONE:
                    return
                if message.kind == netlink.NLMSG_ERROR:
                    code = netlink.error_of(message)
                    if code:
                        raise netlink.NetlinkError(code, f"rtnetlink: {os.strerror(code)}")
                    return
                yield message
                if not dump:
                    return

    def route(self, ip: str) -> netlink.Route:
        """Where the kernel sends a packet for ``ip``."""
        for message in self._ask(netlink.route_request, ip):
            return netlink.parse_route(message)
        raise netlink.NetlinkError(0, f"no route answer for {ip}")

    def neighbour(self, ip: str, ifindex: int) -> netlink.NeighbourEntry | None:
        """The kernel's neighbour entry for ``ip`` on ``ifindex``, if it has one."""
        try:
            for message in self._ask(netlink.neighbour_request, ip, ifindex):
                return netlink.parse_neighbour(message)
        except netlink.NetlinkError as exc:
            if exc.errno == 2:  # ENOENT: no entry yet
                return None
            raise
        return None

    def resolve(self, ip: str, ifindex: int) -> None:
        """Start resolving ``ip`` on ``ifindex`` (ARP/NDP), as the kernel does before a send."""
        for _ in self._ask(netlink.resolve_request, ip, ifindex):
            pass

    def link(self, ifindex: int) -> netlink.Link:
        for message in self._ask(netlink.link_request, ifindex):
            return netlink.parse_link(message)
        raise netlink.NetlinkError(0, f"no interface {ifindex}")

    def addresses(self) -> list[netlink.InterfaceAddress]:
        return [netlink.parse_address(m) for m in self._ask(netlink.addresses_request)]

    def interface_of(self, ip: str) -> int | None:
        """The interface that holds the local address ``ip``, if one does."""
        for address in self.addresses():
            if address.ip == ip:
                return address.ifindex
        return None

    def next_hop(self, ip: str) -> Neighbour | None:
        """How to reach ``ip`` now (interface, MACs, MTU), or ``None`` while unresolved.

        An unresolved next hop is asked to resolve, so a later call finds it.
        """
        route = self.route(ip)
        hop = route.next_hop(ip)
        link = self.link(route.ifindex)
        entry = self.neighbour(hop, route.ifindex)
        if entry is None or not entry.usable:
            try:
                self.resolve(hop, route.ifindex)
            except OSError:
                pass  # resolution is a hint; the program learns the MAC from traffic too
            return None
        assert entry.mac is not None
        return Neighbour(route.ifindex, link.mtu, link.mac, entry.mac)
