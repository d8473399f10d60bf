"""One worker process of ``passage serve --workers N``: ``python -m passage.worker_main FD
POST_FD``.

``FD`` is its end of the channel to the parent (``passage.workers.protocol``), ``POST_FD``
its end of the pair that kept ports move over (``passage.workers.aio.post``). The parent
sends a :class:`~passage.workers.protocol.Start` first: the configuration, the nonce
key, the identity state and the client-facing sockets it inherited. The worker relays
TURN on them until the parent says :class:`~passage.workers.protocol.Stop` (or is
gone, or SIGTERM comes), then ends its allocations, sends their last usage and exits.
SIGINT is the parent's to handle: a Ctrl-C at a terminal reaches every process of
the group, and the parent stops the workers in order.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass

from passage.app import credential_source, turn_edge
from passage.cli.logging import configure_logging, set_log_format
from passage.cli.serve import loop_factory
from passage.config import Config
from passage.datadir import DataDir
from passage.identity.state import IdentityState
from passage.scrape import turn_families
from passage.tlscontexts import ServerContexts
from passage.tlsmaterial import TlsMaterialError
from passage.turn.aio.edge import TurnEdge
from passage.turn.alternate import Alternates
from passage.workers.aio.channel import Channel
from passage.workers.aio.link import ParentLink, ParentOrders
from passage.workers.aio.post import SocketPost
from passage.workers.protocol import (
    ClusterView,
    ListenerSocket,
    Ready,
    Snapshot,
    Start,
    Stopped,
    reservation_prefix,
)

logger = logging.getLogger("passage.workers")

EXIT_NO_START = 3
"""The parent sent no usable start: nothing to serve."""


@dataclass(frozen=True, slots=True)
class _Assignment:
    index: int
    nonce_key: bytes
    config: Config
    datadir: DataDir
    state: IdentityState
    listeners: tuple[ListenerSocket, ...]


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    channel_fd, post_fd = int(argv[1]), int(argv[2])
    runner = asyncio.Runner(loop_factory=loop_factory())
    with runner:
        return runner.run(_serve(socket.socket(fileno=channel_fd), socket.socket(fileno=post_fd)))


async def _serve(channel_socket: socket.socket, post_socket: socket.socket) -> int:
    channel = await Channel.open(channel_socket)
    assignment = await _assignment(channel)
    if assignment is None:
        return EXIT_NO_START
    config = assignment.config
    tag = f"worker {assignment.index}"
    configure_logging(config.log_level, config.log_format, tag=tag)
    link = ParentLink(channel, SocketPost(post_socket))
    edge = turn_edge(
        config,
        assignment.datadir,
        assignment.state,
        nonce_key=assignment.nonce_key,
        usage_sink=link.usage,
        on_quota=link.holding,
    )
    edge.quota_gate = link.admit
    edge.core.reservation_prefix = reservation_prefix(assignment.index)
    edge.reservation_finder = link.claim
    edge.stats_level = logging.DEBUG  # the parent logs every worker's sum
    tls = ServerContexts(assignment.datadir.tls_cert, assignment.datadir.tls_key)
    await _adopt(edge, assignment, tls)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    orders = ParentOrders(
        identity=_identity_updater(assignment.state),
        end_allocation=edge.end_allocation,  # type: ignore[arg-type]  # its bool is unused
        hand_over=edge.hand_over_reservation,
        reload=lambda config, datadir: _reload(edge, tls, assignment.state, tag, config, datadir),
        cluster=lambda view: _cluster(edge, view),
        drain=lambda alternates: _drain(edge, alternates),
        stop=stop.set,
    )
    reading = asyncio.create_task(link.serve(orders))
    reporting = asyncio.create_task(
        _report(channel, edge, config.usage_flush_interval, metrics=bool(config.metrics_port))
    )
    channel.send(Ready(os.getpid()))
    await stop.wait()
    reporting.cancel()
    await edge.stop()  # ends every allocation; its last usage goes to the parent
    channel.send(Stopped())
    await channel.drain()
    reading.cancel()
    await channel.close()
    return 0


async def _report(channel: Channel, edge: TurnEdge, interval: float, *, metrics: bool) -> None:
    """Tell the parent what the console shows of this worker, every ``interval`` seconds,
    and its metric families when the parent serves ``/metrics``."""
    while True:
        families = tuple(turn_families(edge)) if metrics else ()
        channel.send(Snapshot(tuple(edge.live_allocations()), edge.turn_counters(), families))
        await asyncio.sleep(interval)


def _cluster(edge: TurnEdge, view: ClusterView) -> None:
    """Cluster mode, as the parent sees it: where a new Allocate goes when the node is full,
    and whether identities' credentials may allocate (the store's staleness)."""
    if isinstance(view.full_alternates, Alternates):
        edge.core.full_alternates = view.full_alternates
    edge.core.store_stale = view.store_stale


def _drain(edge: TurnEdge, alternates: object) -> None:
    """The parent drains: new Allocates get 300 Try Alternate; live ones carry on."""
    if isinstance(alternates, Alternates):
        edge.core.start_draining(alternates)
        logger.info("draining: new Allocates go elsewhere; %d live allocations carry on",
                    len(edge.core.allocations))  # fmt: skip


def _reload(
    edge: TurnEdge,
    tls: ServerContexts,
    state: IdentityState,
    tag: str,
    config: object,
    datadir: object,
) -> None:
    """The parent's reload, applied here: TURN policy and credentials, certificate, log level."""
    if not isinstance(config, Config) or not isinstance(datadir, DataDir):
        return
    edge.core.reconfigure(config.turn, credential_source(config, datadir, state))
    try:
        tls.reload(datadir.tls_cert, datadir.tls_key)
    except TlsMaterialError as error:  # the parent read it a moment ago; say so, keep the old
        logger.error("reload: the certificate could not be loaded here: %s", error.message)
    logging.getLogger().setLevel(config.log_level.upper())
    set_log_format(config.log_format, tag)


async def _assignment(channel: Channel) -> _Assignment | None:
    """The parent's :class:`Start`, checked: the first message, with the right kinds."""
    async for message in channel.messages():
        if not isinstance(message, Start):
            break
        config, datadir, state = message.config, message.datadir, message.identity
        if (
            isinstance(config, Config)
            and isinstance(datadir, DataDir)
            and isinstance(state, IdentityState)
        ):
            return _Assignment(
                message.index, message.nonce_key, config, datadir, state, message.listeners
            )
        break
    sys.stderr.write("passage worker: the parent sent no start; exiting\n")
    return None


async def _adopt(edge: TurnEdge, assignment: _Assignment, tls: ServerContexts) -> None:
    """Serve on every inherited socket (TLS ones with the data directory's certificate)."""
    for listener in assignment.listeners:
        kind = socket.SOCK_DGRAM if listener.transport == "udp" else socket.SOCK_STREAM
        sock = socket.socket(fileno=listener.fd)
        assert sock.type == kind, f"descriptor {listener.fd} is not a {listener.transport} socket"
        if listener.transport == "udp":
            await edge.adopt_udp(sock)
        elif listener.transport == "tcp":
            await edge.adopt_stream(sock)
        else:
            await edge.adopt_stream(sock, tls.context())


def _identity_updater(state: IdentityState) -> Callable[[object], None]:
    """Keys and revocations from the parent replace this worker's, in the object its
    credential source reads."""

    def update(new: object) -> None:
        if isinstance(new, IdentityState):
            state.keys = new.keys
            state.revocations = new.revocations

    return update


if __name__ == "__main__":
    sys.exit(main(sys.argv))
