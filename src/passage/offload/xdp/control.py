"""The control plane: keeps the program's maps equal to the channels the TURN core has bound.

:class:`ChannelOffload` joins the pure :class:`~passage.offload.table.ChannelTable`
to the loaded :class:`~passage.offload.xdp.program.XdpProgram` and the kernel's
routing tables (:class:`~passage.offload.xdp.kernel.Rtnetlink`). Its caller, the
TURN server adapter, calls:

- :meth:`ChannelOffload.sync` with an allocation's offloadable channels whenever
  they may have changed (a ChannelBind or CreatePermission answered, a Refresh,
  the once-a-second expiry sweep), and :meth:`release` when it ends;
- :meth:`collect` at every usage flush: kernel-relayed bytes per allocation;
- :meth:`tick` once a second: next hops still being resolved are asked again;
- :meth:`close` on stop (the program also detaches by itself if the process dies).

Everything here is synchronous and quick (map writes and netlink questions the
kernel answers from memory), so the adapter calls it from its event loop.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from passage.offload.capabilities import OffloadUnavailable
from passage.offload.maps import ChannelPath, Meter, Outcome
from passage.offload.netlink import NetlinkError
from passage.offload.table import Changes, ChannelTable
from passage.offload.xdp.kernel import Rtnetlink
from passage.offload.xdp.program import (
    DEFAULT_CAPACITIES,
    Attachment,
    AttachMode,
    Capacities,
    XdpProgram,
)

log = logging.getLogger("passage.offload")


@dataclass(slots=True)
class OffloadStats:
    """What the control plane did, for the stats log line and tests."""

    installed: int = 0
    removed: int = 0
    refused: int = 0
    """Channels left in userspace because the kernel's maps were full."""
    unresolved: int = 0
    """Next hops that were not resolved yet when their channel was installed."""


@dataclass(slots=True)
class ChannelOffload:
    """The kernel fast path, loaded and attached; see the module docstring for its protocol."""

    program: XdpProgram
    kernel: Rtnetlink
    table: ChannelTable
    stats: OffloadStats = field(default_factory=OffloadStats)
    _pending: set[str] = field(default_factory=set)
    """Destination IPs whose next hop is still being resolved."""
    _needed: dict[str, int] = field(default_factory=dict)
    """Destination IP → offloaded channels sending to it."""

    @classmethod
    def start(
        cls,
        local_ips: Iterable[str],
        mode: AttachMode = AttachMode.AUTO,
        object_path: Path | None = None,
        capacities: Capacities = DEFAULT_CAPACITIES,
    ) -> ChannelOffload:
        """Load the program and attach it to the interfaces that hold ``local_ips``.

        A wildcard address (``0.0.0.0``, ``::``) means every interface with an
        address but the loopback. Raises :class:`OffloadUnavailable` with the
        reason (capabilities, libbpf, the object, the kernel, the interface).
        """
        program = XdpProgram(object_path, capacities)
        kernel = Rtnetlink()
        try:
            for ifindex in sorted(_interfaces(kernel, local_ips)):
                attachment = program.attach(ifindex, mode)
                log.info("offload: XDP attached to %s (%s mode)", attachment.name, attachment.mode)
            if not program.attachments:
                raise OffloadUnavailable(
                    f"no interface holds {', '.join(local_ips)}: nothing to attach XDP to"
                )
        except BaseException:
            program.close()
            kernel.close()
            raise
        return cls(program, kernel, ChannelTable(capacities.channels))

    @property
    def attachments(self) -> list[Attachment]:
        return list(self.program.attachments.values())

    def close(self) -> None:
        """Detach and unload. The maps go with the program."""
        self.program.close()
        self.kernel.close()

    def sync(self, owner: str, paths: Iterable[ChannelPath]) -> Changes:
        """Make ``owner``'s channels in the kernel exactly ``paths`` (UDP client and peer only)."""
        changes = self.table.sync(owner, [self._local(path) for path in paths])
        self._apply(changes)
        return changes

    def release(self, owner: str) -> Changes:
        """``owner``'s allocation ended: its channels leave the kernel (bytes still collected)."""
        changes = self.table.release(owner)
        self._apply(changes)
        return changes

    def collect(self) -> dict[str, Meter]:
        """Bytes and packets relayed in the kernel per owner since the last call."""
        return self.table.collect(self.program.meters(self.table.slots_in_use()))

    def outcomes(self) -> dict[Outcome, int]:
        return self.program.outcomes()

    def pending(self) -> frozenset[str]:
        """Destinations whose next hop is still unknown (their packets go through userspace)."""
        return frozenset(self._pending)

    def tick(self) -> None:
        """Ask again for next hops still being resolved."""
        for ip in sorted(self._pending):
            self._resolve(ip)

    def _apply(self, changes: Changes) -> None:
        for removed in changes.remove:
            self.program.remove(removed.path)
            for ip in (removed.path.client[0], removed.path.peer[0]):
                self._forget(ip)
            self.stats.removed += 1
        for installed in changes.install:
            for ip in (installed.path.client[0], installed.path.peer[0]):
                self._need(ip)
            self.program.install(installed.path, installed.slot)
            self.stats.installed += 1
        if changes.refused:
            self.stats.refused += len(changes.refused)
            log.warning(
                "offload: %d channel(s) stay in userspace: the kernel's channel map is full (%d)",
                len(changes.refused),
                self.table.capacity,
            )

    def _need(self, ip: str) -> None:
        self._needed[ip] = self._needed.get(ip, 0) + 1
        if self._needed[ip] == 1 and self.program.neighbour(ip) is None:
            self._resolve(ip)
            if ip in self._pending:
                self.stats.unresolved += 1

    def _forget(self, ip: str) -> None:
        left = self._needed.get(ip, 0) - 1
        if left > 0:
            self._needed[ip] = left
            return
        self._needed.pop(ip, None)
        self._pending.discard(ip)

    def _resolve(self, ip: str) -> None:
        try:
            hop = self.kernel.next_hop(ip)
        except (NetlinkError, ValueError) as exc:
            log.debug("offload: no next hop for %s yet: %s", ip, exc)
            hop = None
        if hop is None:
            self._pending.add(ip)
            return
        self._pending.discard(ip)
        self.program.set_neighbour(ip, hop)

    def _local(self, path: ChannelPath) -> ChannelPath:
        """``path`` with a wildcard listener or relay address replaced by the address in use.

        The kernel answers a client from the source address routing picks for
        it, and a client reaches us at that address: the key must hold it.
        """
        listener, relay = path.listener, path.relay
        if ipaddress.ip_address(listener[0]).is_unspecified:
            listener = (self._source_for(path.client[0]), listener[1])
        if ipaddress.ip_address(relay[0]).is_unspecified:
            relay = (self._source_for(path.peer[0]), relay[1])
        if (listener, relay) == (path.listener, path.relay):
            return path
        return replace(path, listener=listener, relay=relay)

    def _source_for(self, ip: str) -> str:
        source = self.kernel.route(ip).source
        if source is None:
            raise OffloadUnavailable(f"no source address routes to {ip}")
        return source


def _interfaces(kernel: Rtnetlink, local_ips: Iterable[str]) -> set[int]:
    addresses = kernel.addresses()
    found: set[int] = set()
    for ip in local_ips:
        if ipaddress.ip_address(ip).is_unspecified:
            found.update(a.ifindex for a in addresses if not ipaddress.ip_address(a.ip).is_loopback)
        else:
            found.update(a.ifindex for a in addresses if a.ip == ip)
    return found
