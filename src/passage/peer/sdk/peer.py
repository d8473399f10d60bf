"""``passage.peer.sdk.Peer``: two programs meet in a room and talk over the most direct path.

::

    peer = await Peer.connect("https://passage.example.com:8443/", token, "room-42")
    print(peer.path)            # relay-udp (relay 203.0.113.10:49200 ... <-> prflx ...)
    await peer.send(b"hello")   # datagrams over the nominated pair
    stream = peer.open_stream() # or reliable, ordered bytes (passage.peer.sdk.stream)
    await peer.close()

What :meth:`Peer.connect` does, in order:

1. asks the API for this user's ICE servers (the relay configuration, with the
   user access token as Bearer: a ``voip`` scope is needed);
2. joins ``/signal/{room}`` with the same token; the member already in the
   room when the other arrives is the controlling ICE agent, so the roles
   follow from the order of joining, with no negotiation;
3. gathers host, server-reflexive and relayed candidates (TURN over UDP, TCP
   and TLS) with :class:`~passage.peer.sdk.agent.IceAgent`;
4. the controlling peer sends an ``offer`` (ICE username fragment, password,
   every candidate and how each relayed one reaches its server), the other
   an ``answer``, as ``data`` of signaling messages (``docs/client.md``);
5. runs ICE; the pair nominated is the best that works
   (:mod:`passage.peer.nomination`), named by :mod:`passage.peer.path`.

Signaling is left once ICE completes (the room is free again), and every
socket and TURN allocation the nominated pair does not use is released.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import ssl
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import aioice

from passage.addresses import Transport
from passage.peer.errors import PeerError
from passage.peer.ice_servers import IceServers
from passage.peer.nomination import NominationPolicy
from passage.peer.path import Endpoint, Path, classify
from passage.peer.sdk.agent import CheckSummary, GatherSettings, IceAgent
from passage.peer.sdk.relay_configuration import fetch_ice_servers
from passage.peer.sdk.signaling import RoomMember, SignalingSession
from passage.peer.sdk.stream import PeerStream

__all__ = ["CheckSummary", "Peer", "PeerSettings"]

MAX_CANDIDATES = 64
"""Remote candidates accepted from one description; the rest are ignored."""


@dataclass(frozen=True, slots=True)
class PeerSettings:
    nomination: NominationPolicy = field(default_factory=NominationPolicy)
    gathering: GatherSettings = field(default_factory=GatherSettings)
    ice_timeout: float = 30.0
    """Seconds ICE may take once both descriptions are known."""
    use_ipv6: bool = False
    """Gather IPv6 host candidates too (the relays Passage hands out are IPv4 or IPv6 alike)."""


class Peer:
    """A connected peer: the chosen :attr:`path` and the datagrams over it."""

    def __init__(
        self, agent: IceAgent, path: Path, remote: RoomMember, session: aiohttp.ClientSession
    ) -> None:
        self._agent = agent
        self._session = session
        self.path = path
        """The nominated pair, named (``direct-lan`` ... ``relay-tls``)."""
        self.checks = tuple(agent.checks())
        """Every candidate pair ICE had when it completed, and its state then."""
        self.remote_identity = remote.identity
        """The other member's identity, as the signaling server vouched for it."""
        self.controlling = agent.ice_controlling
        self._stream: PeerStream | None = None

    @classmethod
    async def connect(
        cls,
        api_url: str,
        token: str,
        room: str,
        *,
        tls: ssl.SSLContext | None = None,
        settings: PeerSettings | None = None,
    ) -> Peer:
        """Meet the other member of ``room`` and connect; :class:`PeerError` if that fails.

        Waits for the other member as long as it takes to arrive (cancel to give
        up); ``tls`` is the context for the API, signaling and TURN over TLS
        (give it the deployment's CA when it is not a public one).
        """
        settings = settings or PeerSettings()
        session = aiohttp.ClientSession()
        try:
            servers = await fetch_ice_servers(session, api_url, token, tls)
            signaling = await SignalingSession.join(session, api_url, room, token, tls)
            try:
                agent, remote = await _negotiate(signaling, servers, tls, settings)
            finally:
                await signaling.close()
            try:
                path = await _run_ice(agent, settings)
                peer = cls(agent, path, remote, session)
                await agent.release_unused()  # after the check list was recorded
            except BaseException:
                await agent.close()
                raise
        except BaseException:
            await session.close()
            raise
        return peer

    async def send(self, data: bytes) -> None:
        """Send one datagram over the path (unreliable, as UDP: use a stream for bytes)."""
        try:
            await self._agent.send(data)
        except ConnectionError as error:
            raise PeerError(f"the path is lost: {error}") from None

    async def recv(self) -> bytes:
        """The next datagram from the peer; :class:`PeerError` once the path is lost."""
        try:
            data: bytes = await self._agent.recv()
        except ConnectionError as error:
            raise PeerError(f"the path is lost: {error}") from None
        return data

    def open_stream(self) -> PeerStream:
        """The reliable, ordered byte stream over this peer; it then owns :meth:`recv`, so
        there is one per peer (both sides open theirs)."""
        if self._stream is not None:
            raise PeerError("this peer already has its stream")
        self._stream = PeerStream(self)
        return self._stream

    async def close(self) -> None:
        """Release the path: TURN allocations are deleted, sockets closed."""
        try:
            await self._agent.close()
        finally:
            await self._session.close()


async def _negotiate(
    signaling: SignalingSession,
    servers: IceServers,
    tls: ssl.SSLContext | None,
    settings: PeerSettings,
) -> tuple[IceAgent, RoomMember]:
    """Agree on roles, swap descriptions; the agent with the remote side applied."""
    controlling = not signaling.members
    agent = IceAgent(
        controlling=controlling,
        stun_server=servers.stun[0] if servers.stun else None,
        turn_servers=servers.turn,
        tls=tls,
        policy=settings.nomination,
        gathering=settings.gathering,
        use_ipv6=settings.use_ipv6,
    )
    try:
        gathering = asyncio.ensure_future(agent.gather_candidates())
        try:
            if controlling:
                remote = await _wait_for_member(signaling)
                await gathering
                await signaling.send(_description(agent, "offer"), to=remote.member)
                description = await _wait_for(signaling, remote, "answer")
            else:
                remote = signaling.members[0]
                description = await _wait_for(signaling, remote, "offer")
                await gathering
                await signaling.send(_description(agent, "answer"), to=remote.member)
        finally:
            if not gathering.done():
                gathering.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await gathering
        await _apply(agent, description)
    except BaseException:
        await agent.close()
        raise
    return agent, remote


async def _wait_for_member(signaling: SignalingSession) -> RoomMember:
    while True:
        frame = await signaling.receive()
        if frame.get("type") == "joined":
            return RoomMember(str(frame["member"]), str(frame["identity"]))


async def _wait_for(signaling: SignalingSession, remote: RoomMember, kind: str) -> dict[str, Any]:
    """The ``kind`` description from ``remote``; PeerError if it leaves first."""
    while True:
        frame = await signaling.receive()
        if frame.get("type") == "left" and frame.get("member") == remote.member:
            raise PeerError("the other peer left the room before connecting")
        data = frame.get("data")
        if (
            frame.get("type") == "message"
            and frame.get("from") == remote.member
            and isinstance(data, dict)
            and data.get("kind") == kind
        ):
            return data


def _description(agent: IceAgent, kind: str) -> dict[str, Any]:
    candidates = []
    for candidate in agent.local_candidates:
        relay = agent.relay_transport_of(candidate)
        candidates.append({"sdp": candidate.to_sdp(), "relay": relay.value if relay else None})
    return {
        "kind": kind,
        "ufrag": agent.local_username,
        "pwd": agent.local_password,
        "candidates": candidates,
    }


async def _apply(agent: IceAgent, description: dict[str, Any]) -> None:
    """The remote credentials and candidates; what does not parse is skipped."""
    ufrag, pwd = description.get("ufrag"), description.get("pwd")
    if not isinstance(ufrag, str) or not isinstance(pwd, str):
        raise PeerError("the other peer's description has no ICE credentials")
    agent.remote_username, agent.remote_password = ufrag, pwd
    relays: dict[tuple[str, int], Transport] = {}
    listed = description.get("candidates")
    for item in (listed if isinstance(listed, list) else [])[:MAX_CANDIDATES]:
        try:
            candidate = aioice.Candidate.from_sdp(str(item["sdp"]))
            relay = Transport(item["relay"]) if item.get("relay") else None
            ipaddress.ip_address(candidate.host)  # no names: nothing to resolve for a peer
        except (KeyError, TypeError, ValueError, AttributeError):
            continue
        if candidate.component != 1 or not 0 < candidate.port < 65536:
            continue
        if relay is not None:
            relays[(candidate.host, candidate.port)] = relay
        await agent.add_remote_candidate(candidate)
    await agent.add_remote_candidate(None)
    agent.remote_relays = relays


async def _run_ice(agent: IceAgent, settings: PeerSettings) -> Path:
    try:
        async with asyncio.timeout(settings.ice_timeout):
            await agent.connect()
    except (ConnectionError, TimeoutError) as error:
        raise PeerError(f"ICE found no path that works: {error or 'timed out'}") from None
    selected = agent.selected()
    assert selected is not None, "connect() returns once a pair is nominated"
    local, remote = selected
    relay = agent.remote_relays.get((remote.host, remote.port))
    path = classify(
        agent.local_endpoint(local), Endpoint(remote.type, (remote.host, remote.port), relay)
    )
    return path
