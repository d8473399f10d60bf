"""The signaling WebSocket on the API port: ``/signal/{room}`` (aiohttp adapter).

A thin pump around :class:`passage.signal.Rooms`: admit the token, join,
feed every text frame to the core with the clock, and send what it returns.
Each member has an outbox drained by its own writer task, so one member that
does not read never holds up the others; past
:attr:`~passage.signal.SignalLimits.queued_bytes` it is closed with
``SLOW_READER``. Once a second the sweep closes sessions whose token expired,
was revoked (or its identity deleted) or whose signing key was rotated.

Every refusal of a well-formed upgrade is an accepted WebSocket closed at once
with its 4xxx code (browsers cannot read an HTTP status here); a request that
is not a WebSocket upgrade is answered 426 with the ACS error body.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import Counter, deque
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from passage.frontdoor import Prefix, error_response
from passage.http_errors import HttpError
from passage.identity.ids import IdentityId
from passage.identity.state import IdentityState
from passage.identity.tokens import TokenClaims
from passage.live import RoomSummary
from passage.signal import (
    SUBPROTOCOL,
    CloseCode,
    Delivery,
    Member,
    MemberId,
    RoomName,
    Rooms,
    SignalError,
    SignalLimits,
    admit,
    offered_token,
    parse_room_name,
    standing,
)
from passage.signal.homing import HOME_GONE, JOIN_TIMEOUT, RoomDirectory

__all__ = ["SIGNAL_PATHS", "SignalingServer"]

SIGNAL_PATHS = Prefix("/signal/", owner="signaling")
"""What signaling answers at the front door: ``/signal/...`` in any case, before anything
else, so no hybrid connection can shadow it (``signal`` is a reserved name)."""
SWEEP_INTERVAL = 1.0
"""Seconds between checks of every session's token: how long a revocation takes to bite."""
CLOSE_TIMEOUT = 5.0
"""Seconds a close handshake may take before the connection is cut (a member that does
not read cannot take our close frame either)."""
HEARTBEAT = 30.0
"""Seconds between WebSocket pings; a client that misses the pong is dropped."""
FRAME_LIMIT_FACTOR = 4
"""aiohttp refuses frames beyond this many times the message limit itself (close 1009);
between the two, the core answers ``TOO_BIG`` (4009)."""

logger = logging.getLogger("passage.signal")


@dataclass(eq=False, slots=True)
class _Session:
    websocket: web.WebSocketResponse
    member: Member
    claims: TokenClaims
    transport: asyncio.Transport | None
    """The connection, cut if a close handshake does not finish."""
    closes: Counter[int]
    """The server's count of sessions closed, by code, which :meth:`close_with` adds to."""
    outbox: deque[str] = field(default_factory=deque)
    queued: int = 0
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    writer: asyncio.Task[None] | None = None
    closer: asyncio.Task[None] | None = None
    """Set once the session is being closed; the writer is stopped by then."""
    home: str | None = None
    """Cluster mode: the node whose room this member is proxied to; None: the room is here."""

    def close_with(self, error: SignalError) -> None:
        """Stop sending and close with ``error``'s code, whatever the writer was doing.

        The writer may be stuck waiting for a member that does not read, so it is
        cancelled rather than asked; the close handshake then gets
        :data:`CLOSE_TIMEOUT` before the connection is cut.
        """
        if self.closer is not None:
            return
        self.closes[error.code] += 1
        level = logging.DEBUG if error.code is CloseCode.GOING_AWAY else logging.INFO
        logger.log(level, "signal: closing %s (%s): %d %s", self.member.id, self.member.identity,
                   error.code, error.reason)  # fmt: skip
        if self.writer is not None:
            self.writer.cancel()
        self.closer = asyncio.create_task(self._close(error))

    async def _close(self, error: SignalError) -> None:
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await self.websocket.close(code=error.code, message=error.reason.encode())
        except (ConnectionError, RuntimeError):
            pass
        except TimeoutError:
            if self.transport is not None:
                self.transport.abort()


DRAINING = "server draining; reconnect"
"""The close reason of :attr:`CloseCode.SERVICE_RESTART`."""


class SignalingServer:
    """Every signaling session of this process."""

    def __init__(
        self,
        state: IdentityState,
        limits: SignalLimits | None = None,
        *,
        clock: Callable[[], float] = time.time,
        new_member_id: Callable[[], str] = lambda: secrets.token_hex(8),
    ) -> None:
        self.state = state
        self.rooms = Rooms(limits or SignalLimits())
        self.clock = clock
        self.new_member_id = new_member_id
        self._sessions: dict[MemberId, _Session] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self.messages = 0
        """Text frames members sent that the rooms accepted."""
        self.deliveries = 0
        """Frames queued for members (welcome, joined, left, relayed, errors)."""
        self.closes: Counter[int] = Counter()
        """Sessions ended, by close code: the server's (refusals included), or the client's
        when it closed first (codes outside 1000-1015 and :class:`CloseCode` count as 0)."""
        self.draining = False
        """Set by :meth:`drain`: no session is admitted any more."""
        self.directory: RoomDirectory | None = None
        """Cluster mode: rooms homed on the node of their first member (:meth:`join_cluster`)."""
        self._remote: dict[MemberId, str] = {}
        """Members of rooms homed here who are connected to another node: that node."""

    def join_cluster(self, directory: RoomDirectory) -> None:
        """Cluster mode: home rooms across nodes (:mod:`passage.signal.homing`)."""
        self.directory = directory
        directory.serve(self._answer_node, self._hear)

    @property
    def members(self) -> int:
        """Sessions open now."""
        return len(self._sessions)

    def live_rooms(self) -> list[RoomSummary]:
        """Every room with members now, busiest first."""
        sizes = sorted(self.rooms.sizes().items(), key=lambda item: (-item[1], item[0]))
        return [RoomSummary(str(room), members) for room, members in sizes]

    @property
    def limits(self) -> SignalLimits:
        return self.rooms.limits

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        """Serve one ``/signal/{room}`` request until the session ends."""
        websocket = web.WebSocketResponse(
            protocols=(SUBPROTOCOL,),
            heartbeat=HEARTBEAT,
            compress=False,
            max_msg_size=self.limits.message_bytes * FRAME_LIMIT_FACTOR,
        )
        if not websocket.can_prepare(request).ok:
            upgrade = "Signaling is a WebSocket: send an upgrade."
            return error_response(HttpError(426, "UpgradeRequired", upgrade))
        await websocket.prepare(request)
        if self.draining:
            self.closes[CloseCode.SERVICE_RESTART] += 1
            await websocket.close(code=CloseCode.SERVICE_RESTART, message=DRAINING.encode())
            return websocket
        try:
            session = await self._admit(request, websocket)
        except SignalError as refused:
            self.closes[refused.code] += 1
            logger.info("signal %s from %s: %d %s", request.path, request.remote, refused.code,
                        refused.reason)  # fmt: skip
            await websocket.close(code=refused.code, message=refused.reason.encode())
            return websocket
        try:
            await self._read(session)
        finally:
            await self._leave(session)
        return websocket

    async def _admit(self, request: web.Request, websocket: web.WebSocketResponse) -> _Session:
        room = parse_room_name(request.path[len(SIGNAL_PATHS.path) :])
        protocols = [
            p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")
        ]
        token = offered_token(
            request.headers.get("Authorization"), request.query.get("access_token"), protocols
        )
        now = self.clock()
        claims = admit(token, self.state, now)
        member = Member(MemberId(self.new_member_id()), claims.identity)
        transport = request.transport
        if self.directory is not None:
            home = await self.directory.claim(room)
            if home is not None and home != self.directory.node:
                proxied = _Session(websocket, member, claims, transport, self.closes, home=home)
                return await self._join_elsewhere(room, proxied)
        deliveries = self.rooms.join(room, member, now)
        session = _Session(websocket, member, claims, transport, self.closes)
        session.writer = asyncio.create_task(self._write(session))
        self._sessions[member.id] = session
        self._deliver(deliveries)
        self._start_sweeper()
        logger.debug("signal: %s joined %s as %s", claims.identity, room, member.id)
        return session

    async def _join_elsewhere(self, room: RoomName, session: _Session) -> _Session:
        """Proxy ``session`` to the room's home: it runs the room, this node the WebSocket."""
        assert self.directory is not None and session.home is not None
        member = session.member
        session.writer = asyncio.create_task(self._write(session))
        self._sessions[member.id] = session  # deliveries may come before the answer
        body = {"op": "join", "room": room, "member": member.id, "identity": member.identity,
                "node": self.directory.node}  # fmt: skip
        answer = await self.directory.ask(session.home, body, JOIN_TIMEOUT)
        if answer is None or answer.get("ok") is not True:
            self._sessions.pop(member.id, None)
            session.writer.cancel()
            if answer is None:
                raise SignalError(CloseCode.SERVICE_RESTART, HOME_GONE)
            raise SignalError(_close_code(answer.get("code")), str(answer.get("reason", "")))
        self._start_sweeper()
        logger.debug("signal: %s joined %s as %s, homed on node %s", member.identity, room,
                     member.id, session.home)  # fmt: skip
        return session

    async def _read(self, session: _Session) -> None:
        member = session.member.id
        async for message in session.websocket:
            if message.type is WSMsgType.ERROR:  # aiohttp closes it (1009 for a huge frame)
                break
            try:
                if message.type is not WSMsgType.TEXT:
                    raise SignalError(CloseCode.MALFORMED, "only JSON text frames are accepted")
                if session.home is not None:
                    assert self.directory is not None
                    self.directory.tell(session.home, {"op": "frame", "member": member,
                                                       "text": message.data})  # fmt: skip
                    continue
                deliveries = self.rooms.receive(member, message.data, self.clock())
                self.messages += 1
                self._deliver(deliveries)
            except SignalError as refused:
                session.close_with(refused)
                break

    async def _write(self, session: _Session) -> None:
        """Send the member's outbox in order until the session closes."""
        with contextlib.suppress(ConnectionError, RuntimeError):  # it went away mid-send
            while True:
                if not session.outbox:
                    session.wake.clear()
                    await session.wake.wait()
                    continue
                text = session.outbox.popleft()
                session.queued -= len(text)
                await session.websocket.send_str(text)

    async def _leave(self, session: _Session) -> None:
        self._sessions.pop(session.member.id, None)
        if session.home is not None:
            assert self.directory is not None
            self.directory.tell(session.home, {"op": "leave", "member": session.member.id})
        else:
            self._member_left(session.member.id)
        if session.writer is not None:
            session.writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await session.writer
        if session.closer is not None:
            await session.closer
        else:
            self.closes[_client_close_code(session.websocket.close_code)] += 1
            if not session.websocket.closed:
                await session.websocket.close()

    def _member_left(self, member: MemberId) -> None:
        """``member`` of a room homed here left: tell the others; an empty room is released."""
        room = self.rooms.room_of(member)
        self._deliver(self.rooms.leave(member))
        if self.directory is not None and room is not None and room not in self.rooms.sizes():
            self._spawn(self.directory.release(room))

    def _deliver(self, deliveries: list[Delivery]) -> None:
        for delivery in deliveries:
            node = self._remote.get(delivery.to)
            if node is not None and self.directory is not None:
                self.directory.tell(node, {"op": "deliver", "member": delivery.to,
                                           "text": delivery.text})  # fmt: skip
                self.deliveries += 1
                continue
            session = self._sessions.get(delivery.to)
            if session is not None:
                self._enqueue(session, delivery.text)

    def _enqueue(self, session: _Session, text: str) -> None:
        if session.closer is not None:
            return
        session.outbox.append(text)
        session.queued += len(text)
        self.deliveries += 1
        if session.queued > self.limits.queued_bytes:
            session.close_with(SignalError(CloseCode.SLOW_READER, "too much unread"))
        else:
            session.wake.set()

    # --- cluster mode: between a room's home and the nodes proxying to it ---------------

    async def _answer_node(self, ask: Mapping[str, Any]) -> Mapping[str, Any]:
        """The home's side of a join from another node."""
        try:
            room = parse_room_name(str(ask["room"]))
            member = Member(MemberId(str(ask["member"])), IdentityId(str(ask["identity"])))
            deliveries = self.rooms.join(room, member, self.clock())
        except SignalError as refused:
            return {"ok": False, "code": int(refused.code), "reason": refused.reason}
        except (KeyError, ValueError):
            return {"ok": False, "code": int(CloseCode.MALFORMED), "reason": "bad join"}
        self._remote[member.id] = str(ask.get("node", ""))
        self._deliver(deliveries)
        self._start_sweeper()
        return {"ok": True}

    def _hear(self, node: str, body: dict[str, Any]) -> None:
        """One message from another node: a proxied member's frame or leave (here, its
        room's home), or a delivery or close for a member proxied from here."""
        op, member = body.get("op"), MemberId(str(body.get("member", "")))
        if op == "frame" and self._remote.get(member) == node:
            try:
                self._deliver(self.rooms.receive(member, str(body.get("text", "")), self.clock()))
                self.messages += 1
            except SignalError as refused:
                self._remote.pop(member, None)
                self._member_left(member)
                close = {"op": "close", "member": member, "code": int(refused.code),
                         "reason": refused.reason}  # fmt: skip
                assert self.directory is not None
                self.directory.tell(node, close)
        elif op == "leave" and self._remote.get(member) == node:
            self._remote.pop(member, None)
            self._member_left(member)
        elif op in ("deliver", "close"):
            session = self._sessions.get(member)
            if session is None or session.home != node:
                return
            if op == "deliver":
                self._enqueue(session, str(body.get("text", "")))
            else:
                code = _close_code(body.get("code"))
                session.close_with(SignalError(code, str(body.get("reason", ""))))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _start_sweeper(self) -> None:
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.create_task(self._sweep())

    async def _sweep(self) -> None:
        """Close sessions whose token no longer stands; stop when there are none left. In
        cluster mode also keep this node's rooms claimed, and close proxied members whose
        room's home died (they rejoin, and the room is homed afresh)."""
        while self._sessions or self._remote:
            await asyncio.sleep(SWEEP_INTERVAL)
            self.sweep_once()
            if self.directory is not None:
                self._close_orphans(self.directory)
                await self.directory.keep(list(self.rooms.sizes()))

    def sweep_once(self) -> int:
        """Close every session whose token lost its standing now; how many."""
        now = self.clock()
        closed = 0
        for session in list(self._sessions.values()):
            problem = standing(session.claims, self.state, now)
            if problem is not None and session.closer is None:
                session.close_with(problem)
                closed += 1
        return closed

    def _close_orphans(self, directory: RoomDirectory) -> None:
        for session in list(self._sessions.values()):
            if session.home is not None and directory.is_live(session.home) is False:
                session.close_with(SignalError(CloseCode.SERVICE_RESTART, HOME_GONE))

    async def drain(self) -> None:
        """Tell every member to reconnect (1012), and every newcomer from now on: with this
        node out of the load balancer, they meet again on another one."""
        self.draining = True
        for session in list(self._sessions.values()):
            session.close_with(SignalError(CloseCode.SERVICE_RESTART, DRAINING))
        closers = [s.closer for s in self._sessions.values() if s.closer is not None]
        if closers:
            await asyncio.wait(closers)

    async def close(self) -> None:
        """Close every session with 1001 (the server is going away)."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        for session in list(self._sessions.values()):
            session.close_with(SignalError(CloseCode.GOING_AWAY, "server shutting down"))
        closers = [s.closer for s in self._sessions.values() if s.closer is not None]
        if closers:
            await asyncio.wait(closers)


def _client_close_code(code: int | None) -> int:
    """The code a client closed with, as counted: one RFC 6455 defines (1000-1015) or one of
    ours; anything else (another application code, none at all: the connection dropped)
    is 0, so that clients cannot make the count grow a label per code they invent."""
    if code is not None and (1000 <= code <= 1015 or code in _OUR_CODES):
        return code
    return 0


_OUR_CODES = frozenset(int(code) for code in CloseCode)


def _close_code(value: object) -> CloseCode:
    """A close code another node sent, as one of ours (anything else: service restart)."""
    try:
        return CloseCode(int(value))  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return CloseCode.SERVICE_RESTART
