"""Senders and listeners on different nodes of a cluster: Azure Relay's redirect model.

A sender arrives on node A; the listener chosen for it may be held by node B. A keeps
the rendezvous entry and asks B, over B's inbox, to send its listener the ``accept``
(or the rendezvous-form ``request``) whose address is on A; the listener connects to
A, and A bridges. No data passes through B. When B does not confirm within
:data:`~passage.hybrid.gateway.ACK_TIMEOUT`, A offers the sender to another listener,
at most :data:`~passage.hybrid.gateway.MAX_ATTEMPTS` in all, then answers as for no
listener. :class:`ClusterRouting` is both sides: the offers A makes, the answers B gives.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from typing import Any

from passage.hybrid.aio.channel import ControlChannel
from passage.hybrid.entities import HybridConnectionPath
from passage.hybrid.framing import Outgoing
from passage.hybrid.gateway import (
    ACK_TIMEOUT,
    MAX_ATTEMPTS,
    GatewayStore,
    ListenerRef,
    SharedGateway,
)

__all__ = ["ClusterRouting", "NoListenerReached"]

logger = logging.getLogger("passage.relay")


class NoListenerReached(Exception):
    """Every listener offered the sender (at most three) was gone or did not confirm."""


class ClusterRouting:
    """The relay's side of the cluster's gateway store. ``channels`` are this node's
    listeners by id (the relay's own dictionary)."""

    def __init__(
        self,
        shared: SharedGateway,
        local: GatewayStore,
        channels: Mapping[str, ControlChannel],
    ) -> None:
        self.shared = shared
        self.local = local
        self.channels = channels
        shared.serve(self.answer, self.reassert)

    async def admit(self, path: HybridConnectionPath, ref: ListenerRef, limit: int) -> bool:
        """Whether a new listener may listen: the cluster's count decides when Redis answers,
        this node's own otherwise (degraded: the limit holds per node)."""
        shared = await self.shared.register(path, ref.listener_id, limit)
        if shared is False:
            return False
        if not self.local.register(path, ref, limit):
            if shared:
                await self.shared.unregister(path, ref.listener_id)
            return False
        return True

    async def release(self, path: HybridConnectionPath, ref: ListenerRef) -> None:
        self.local.unregister(path, ref)
        await self.shared.unregister(path, ref.listener_id)

    async def candidates(self, path: HybridConnectionPath) -> list[ListenerRef]:
        """Up to :data:`MAX_ATTEMPTS` listeners of ``path``, this node's and live others',
        in random order (Azure: "random order, best effort"); only this node's while Redis
        is unreachable, so a sender never waits on a store that is not there."""
        refs = [*self.local.listeners(path), *(await self.shared.elsewhere(path) or ())]
        random.shuffle(refs)
        return refs[:MAX_ATTEMPTS]

    async def offer(
        self, path: HybridConnectionPath, targets: list[ListenerRef], command: Outgoing
    ) -> ControlChannel | ListenerRef:
        """Give ``command`` to the first of ``targets`` that takes it: the local channel it
        went on, or the remote listener whose node confirmed it. Raises
        :class:`NoListenerReached`.

        A remote listener gets the command's JSON alone: ``accept`` and the rendezvous-form
        ``request`` have no body, and anything with a body stays on this node.
        """
        for target in targets:
            channel = self.channels.get(target.listener_id)
            if channel is not None:
                try:
                    await channel.send(command)
                except ConnectionError:
                    continue
                return channel
            if command.body:
                continue
            body = {"listener": target.listener_id, "command": command.head}
            answer = await self.shared.ask(target.node_id, body, ACK_TIMEOUT)
            if answer is not None and answer.get("ok") is True:
                return target
            if answer is not None and answer.get("gone") is True:
                await self.shared.unregister(path, target.listener_id)  # a stale entry
            logger.info(
                "listener %s on node %s %s; trying another", target.listener_id[:8],
                target.node_id, "is gone" if answer is not None else "did not confirm in time",
            )  # fmt: skip
        raise NoListenerReached

    async def answer(self, ask: Mapping[str, Any]) -> Mapping[str, Any]:
        """Another node's ask: pass its command to our listener, and say whether we did."""
        channel = self.channels.get(str(ask.get("listener", "")))
        command = ask.get("command")
        if channel is None or not isinstance(command, str):
            return {"ok": False, "gone": True}
        try:
            await channel.send(Outgoing(command))
        except ConnectionError:
            return {"ok": False, "gone": True}
        return {"ok": True}

    def hosts(self) -> list[str]:
        """The hosts of the cluster's live nodes: a token naming any of them is the cluster's
        (as Azure's namespace host is shared by its gateways)."""
        return list(self.shared.node_hosts())

    async def reassert(self) -> None:
        """Put every listener this node holds back into the shared store."""
        held: dict[HybridConnectionPath, list[str]] = {}
        for listener_id, channel in list(self.channels.items()):
            held.setdefault(channel.path, []).append(listener_id)
        await self.shared.reassert(held)
