"""The TURN adapter's side of the kernel fast path (``passage serve --offload``, docs/offload.md).

:class:`KernelChannels` mirrors the core's hot-path tables into the XDP
program: for every allocation whose client is on UDP, each entry of
``allocation.routes`` (a channel whose binding and permission are alive, RFC
8656 §12) becomes one offloaded channel. The edge calls it

- after each STUN request from a UDP client (:meth:`request_done`): a
  ChannelBind, CreatePermission or Refresh may have changed the routes;
- once a second after the core's expiry sweep (:meth:`tick`);
- when an allocation ends (:meth:`ended`);
- before every usage collection (:meth:`collect`): the kernel's per-channel
  counters are added to the allocations' meters, so the ledger is exact to the
  byte whichever path relayed a packet. An ended allocation's final record is
  built at that collection (``TurnServer.collect_usage``), after its last
  kernel bytes are in.

The deny list needs nothing here: a peer is checked when its permission is
made, and only bound peers ever get an entry. Allocations capped by
``--max-bps`` are not offloaded (the kernel path does not count the budget);
the app warns once at start.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, cast

from passage.addresses import Transport
from passage.offload.maps import ChannelPath, Meter, Outcome

if TYPE_CHECKING:
    from passage.offload.table import Changes
    from passage.turn.allocation import Allocation

logger = logging.getLogger("passage.offload")

RESOLVE_RETRY = 0.002
"""Seconds between asks for a next hop still being resolved after a ChannelBind."""
RESOLVE_ATTEMPTS = 50
"""Asks before leaving it to the once-a-second tick."""


class ControlPlane(Protocol):
    """What :class:`passage.offload.xdp.control.ChannelOffload` offers the adapter."""

    def sync(self, owner: str, paths: list[ChannelPath]) -> Changes: ...
    def release(self, owner: str) -> Changes: ...
    def collect(self) -> dict[str, Meter]: ...
    def tick(self) -> None: ...
    def pending(self) -> frozenset[str]: ...
    def outcomes(self) -> dict[Outcome, int]: ...
    def close(self) -> None: ...


@dataclass(slots=True)
class KernelChannels:
    """The offloaded channels of one edge, and the bytes the kernel relayed for them."""

    control: ControlPlane
    _live: dict[str, Allocation] = field(default_factory=dict)
    """UDP allocations that may have channels in the kernel, by id."""
    _ended: dict[str, Allocation] = field(default_factory=dict)
    """Ended allocations whose last kernel bytes are not collected yet."""
    kernel_totals: dict[str, Meter] = field(default_factory=dict)
    """Per allocation id, what the kernel relayed (the allocation's end log line says it)."""
    _retrying: bool = False

    def request_done(self, allocation: Allocation | None) -> None:
        """A STUN request of ``allocation``'s client was answered: follow its routes."""
        if allocation is not None and allocation.id not in self._ended:
            self._sync(allocation)
            if self.control.pending() and not self._retrying:
                self._retrying = True
                asyncio.get_running_loop().call_later(RESOLVE_RETRY, self._retry, 1)

    def _retry(self, attempt: int) -> None:
        """Ask again soon for a next hop being resolved (ARP answers in milliseconds), so a
        new channel's first packets take the kernel path rather than wait for the tick."""
        self.control.tick()
        if self.control.pending() and attempt < RESOLVE_ATTEMPTS:
            asyncio.get_running_loop().call_later(RESOLVE_RETRY, self._retry, attempt + 1)
        else:
            self._retrying = False

    def started(self, allocation: Allocation) -> None:
        if allocation.five_tuple.transport is Transport.UDP:
            self._live[allocation.id] = allocation

    def tick(self) -> None:
        """After the expiry sweep: drop expired channels, retry unresolved next hops."""
        for allocation in list(self._live.values()):
            self._sync(allocation)
        self.control.tick()

    def ended(self, allocation: Allocation) -> None:
        """``allocation`` is over: its channels leave the kernel; its bytes are collected next."""
        if self._live.pop(allocation.id, None) is not None:
            self.control.release(allocation.id)
            self._ended[allocation.id] = allocation

    def collect(self) -> None:
        """Add what the kernel relayed since the last call to each allocation's meters."""
        for owner, delta in self.control.collect().items():
            allocation = self._live.get(owner) or self._ended.get(owner)
            if allocation is None:
                continue  # cannot happen: owners stay known until collected
            allocation.bytes_to_peer += delta.bytes_to_peer
            allocation.packets_to_peer += delta.packets_to_peer
            allocation.bytes_from_peer += delta.bytes_from_peer
            allocation.packets_from_peer += delta.packets_from_peer
            self.kernel_totals[owner] = self.kernel_totals.get(owner, Meter()) + delta
        for owner, allocation in list(self._ended.items()):
            del self._ended[owner]
            self._log_split(allocation, self.kernel_totals.pop(owner, Meter()))

    def _log_split(self, allocation: Allocation, kernel: Meter) -> None:
        """Who relayed an ended allocation's packets: the kernel, or userspace."""
        logger.info(
            "offload: allocation %s relayed in the kernel: to peer %d B/%d pkts, from peer "
            "%d B/%d pkts; in userspace: to peer %d pkts, from peer %d pkts",
            allocation.id, kernel.bytes_to_peer, kernel.packets_to_peer, kernel.bytes_from_peer,
            kernel.packets_from_peer, allocation.packets_to_peer - kernel.packets_to_peer,
            allocation.packets_from_peer - kernel.packets_from_peer,
        )  # fmt: skip

    def stats_line(self) -> str:
        """What the program did since it was loaded, for the once-a-minute stats line."""
        counted = self.control.outcomes()
        forwarded = counted[Outcome.TX] + counted[Outcome.REDIRECT]
        passed = ", ".join(
            f"{outcome.name.lower()}={n}"
            for outcome, n in counted.items()
            if n and outcome not in (Outcome.TX, Outcome.REDIRECT)
        )
        return f"offload: {forwarded} packets relayed in the kernel; passed up or dropped: " + (
            passed or "none"
        )

    def kernel_meter(self, allocation: Allocation) -> Meter:
        return self.kernel_totals.get(allocation.id, Meter())

    def close(self) -> None:
        self.control.close()
        logger.info("offload: XDP program detached")

    def _sync(self, allocation: Allocation) -> None:
        if allocation.five_tuple.transport is not Transport.UDP:
            return
        self._live[allocation.id] = allocation
        changes = self.control.sync(allocation.id, channel_paths(allocation))
        for installed in changes.install:
            logger.debug("offload: channel %#x of %s in the kernel", installed.path.channel,
                         allocation.id)  # fmt: skip


def start_kernel_channels(
    mode: str, local_ips: list[str], *, capped: bool
) -> KernelChannels | None:
    """The fast path for ``--offload MODE`` on the interfaces holding ``local_ips``.

    ``off``: None. ``xdp``: attached, or :class:`~passage.offload.capabilities.OffloadUnavailable`
    saying what is missing. ``auto``: attached, or None after one warning. ``capped``
    (``--max-bps`` set) offloads nothing, with one warning: the kernel does not count
    the per-allocation budget, so every allocation stays in userspace.
    """
    from passage.offload.capabilities import OffloadUnavailable

    if mode == "off":
        return None
    if capped:
        logger.warning(
            "offload: --max-bps caps every allocation and the kernel path does not enforce it; "
            "relaying stays in userspace"
        )
        return None
    try:
        from passage.offload.xdp.control import ChannelOffload

        control = ChannelOffload.start(local_ips)
    except OffloadUnavailable as exc:
        if mode == "xdp":
            raise
        logger.warning("offload: staying in userspace: %s", exc)
        return None
    for attachment in control.attachments:
        logger.info("offload: UDP channels relayed in the kernel on %s (XDP, %s mode)",
                    attachment.name, attachment.mode)  # fmt: skip
    return KernelChannels(control)


def channel_paths(allocation: Allocation) -> list[ChannelPath]:
    """The channels of a UDP ``allocation`` the kernel can relay: its live routes."""
    five_tuple = allocation.five_tuple
    paths = []
    for channel, (relay, peer) in allocation.routes.items():
        local = cast(asyncio.DatagramTransport, relay).get_extra_info("sockname")
        if local is None:
            continue  # the relay socket is closing
        paths.append(ChannelPath(five_tuple.client, five_tuple.server, local[:2], peer, channel))
    return paths
