"""The Hybrid Connections relay, served on the API port (reference §2, checklist §4.5).

WebSocket upgrades at ``/$hc/{name}[/{suffix}]`` carry ``sb-hc-action``:

- ``listen``: a listener's control channel (Listen right). Failing attempts
  from one address are throttled (429): hyco-ws retries thousands of times a
  second against a 401; a valid listener from that address still gets in.
  At most ``max_listeners`` per hybrid connection.
- ``connect``: a WebSocket sender (Send right unless the hybrid connection
  allows anonymous senders), paired with a listener chosen at random: the
  listener gets ``accept`` and meets the sender at the accept address; the
  relay then copies messages both ways until one side closes.
- ``accept`` and ``request``: the listener meeting a sender at a rendezvous
  address (no token: the address is the capability, single-use, 30 s).

Plain HTTP at ``/{name}[/{suffix}]`` is an HTTP sender: relayed as
``request``/``response``, inline up to 64 kB, else streamed by rendezvous both
ways (:mod:`passage.hybrid.aio.http_stream`); 502 with no listener (before any
body is read), 503 past the bytes-in-flight bounds, 504 after
``response_timeout`` seconds without a response head.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from passage.addresses import format_address
from passage.frontdoor import Handler, Prefix, Resolver, error_response, read_body
from passage.http_errors import HttpError
from passage.hybrid.aio.channel import (
    BridgeMeter,
    ControlChannel,
    HttpExchange,
    InvalidResponse,
    ListenerGone,
    PendingAccept,
    Rejected,
    SenderGone,
)
from passage.hybrid.aio.http_stream import (
    request_body,
    send_response,
    serve_rendezvous,
    wait_for_response,
)
from passage.hybrid.aio.meters import ANONYMOUS, RelayMeters, Traffic
from passage.hybrid.aio.routing import ClusterRouting, NoListenerReached
from passage.hybrid.aio.standing import Standing, Standings
from passage.hybrid.control import (
    INLINE_LIMIT,
    RenewToken,
    ResponseHead,
    accept_message,
    forwarded_headers,
    rendezvous_address,
    request_message,
    response_request_id,
    strip_relay_query,
)
from passage.hybrid.entities import HybridConnectionPath, Namespace, Resolved
from passage.hybrid.framing import (
    Event,
    MissingBody,
    Outgoing,
    StrayBody,
    Unreadable,
    relay_reader,
)
from passage.hybrid.gateway import GatewayStore, ListenerRef, SharedGateway
from passage.hybrid.inflight import STREAM_RESERVATION, InFlight, InFlightLimits
from passage.hybrid.rendezvous import RENDEZVOUS_LIFETIME, RendezvousTable
from passage.hybrid.sas import CLOCK_SKEW, Rights, SasError, SasToken, verify_sas_token
from passage.limiter import FailureLimiter
from passage.live import LiveBridge, LiveListener
from passage.log_limit import RateLimitedLog

__all__ = ["HYBRID_CONNECTION_PATHS", "WEBSOCKET_PATHS", "HybridRelay", "RelaySettings"]

logger = logging.getLogger("passage.relay")

WEBSOCKET_PATHS = Prefix("/$hc/", owner="the relay", ignore_case=False)
"""The relay's WebSockets at the front door: listeners, senders and rendezvous, ``/$hc/...``."""

HYBRID_CONNECTION_PATHS = Resolver(owner="the relay")
"""HTTP senders at the front door: paths under a registered hybrid connection, asked after
the API's routes (an API route wins over a hybrid connection of the same name)."""
GOING_AWAY = 1001
"""Close code when one side of a stream went away without a close frame of its own."""
AUTH_HEADER = "ServiceBusAuthorization"
DRAIN_POLL = 0.1
"""Seconds between looks at a draining control channel's bridges."""


@dataclass(frozen=True, slots=True)
class Grant:
    """What let a request in: the authorization rule that signed its token."""

    rule: str
    """The rule's name; :data:`~passage.hybrid.aio.meters.ANONYMOUS` when none was asked."""
    from_authorization: bool
    """The token came from ``Authorization`` (an HTTP sender's), to strip before relaying."""


@dataclass(frozen=True, slots=True)
class RelaySettings:
    node_id: str
    """This gateway node's id in the gateway store."""
    public_url: str | None = None
    """``ws(s)://host:port`` listeners reach this node at (``--public-url``); None: ``bases``."""
    bases: Mapping[int, str] = field(default_factory=dict)
    """Local port → ``ws(s)://host:port``, this node's advertised endpoint on that port: a
    listener that came in on a port is told to meet its senders there. Never a Host header:
    a sender could then make a listener behind a firewall dial any host and port."""
    audience_hosts: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")
    """Hosts a token's ``sr`` may name besides the request's own Host."""
    max_listeners: int = 25
    """Listeners per hybrid connection (Azure's limit)."""
    response_timeout: float = 60.0
    """Seconds an HTTP sender waits for the listener's response before 504."""
    max_body: int = 16 * 1024 * 1024
    """Largest message a listener may send on its control channel (an inline response), in
    bytes; HTTP bodies by rendezvous stream and have no such bound."""
    heartbeat: float = 30.0
    """Seconds between pings on control channels and on both sockets of every bridge; a peer
    that misses the pong (half this) is dropped, and a bridge with it."""
    in_flight: InFlightLimits = field(default_factory=InFlightLimits)
    """Bytes HTTP exchanges may hold here, per hybrid connection and in total (else 503)."""
    max_message: int = 1024 * 1024
    """Bytes of the largest message a bridge carries either way: a larger one closes its
    sender with 1009 as soon as its frame header says so (nothing of it is buffered)."""
    max_token_lifetime: float = 30 * 24 * 3600.0
    """Seconds a SAS token's expiry (``se``) may lie ahead when it is presented; a later
    one is refused with 401 (a token valid for a century is a key by another name)."""
    listen_failures_per_minute: int = 30
    """Failed listen attempts one address may make per minute before 429."""


class HybridRelay:
    def __init__(
        self,
        namespace: Callable[[], Namespace],
        gateway: GatewayStore,
        settings: RelaySettings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.namespace = namespace
        self.gateway = gateway
        self.settings = settings
        self.clock = clock
        self.channels: dict[str, ControlChannel] = {}
        self.rendezvous: RendezvousTable[HttpExchange | PendingAccept] = RendezvousTable()
        self.listen_failures = FailureLimiter(settings.listen_failures_per_minute, 60.0)
        self.in_flight = InFlight(settings.in_flight)
        self.standings = Standings(self._still_granted)
        """What let each live listener and sender in, re-checked when the namespace changes."""
        self._swept = namespace()
        self._watcher: asyncio.Task[None] | None = None
        self._busy_log = RateLimitedLog(logger, rate=1.0, burst=10)
        """Bytes held for HTTP senders, per hybrid connection and in total."""
        self.meters = RelayMeters()
        """Refusals, senders and bytes carried, read by ``/metrics`` and the usage ledger."""
        self.cluster: ClusterRouting | None = None
        """Cluster mode's routing to listeners on other nodes (:meth:`join`); None: alone."""
        self.remote_bridges: dict[web.WebSocketResponse, tuple[ListenerRef, str, BridgeMeter]] = {}
        """Senders bridged here to a listener another node holds: its ref, path, meter."""
        self._tasks: set[asyncio.Task[None]] = set()
        self.draining = False
        """Set by :meth:`drain`: listeners are turned away, senders meet no new listener here."""

    def join(self, shared: SharedGateway) -> None:
        """Cluster mode: listeners counted across nodes, senders paired with listeners
        wherever they are (:mod:`passage.hybrid.aio.routing`)."""
        self.cluster = ClusterRouting(shared, self.gateway, self.channels)

    # --- entry points -------------------------------------------------------------

    def resolve(self, path: str) -> Resolved | None:
        return self.namespace().resolve(path)

    def handler_for(self, path: str) -> Handler | None:
        """The HTTP sender's handler when ``path`` is under a registered hybrid connection."""
        resolved = self.resolve(path.lstrip("/"))
        if resolved is None:
            return None
        return lambda request: self.http(request, resolved)

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        """A request to ``/$hc/...``: dispatch on ``sb-hc-action``."""
        action = request.query.get("sb-hc-action", "").lower()
        handler = {
            "listen": self._listen,
            "connect": self._connect,
            "accept": self._accept,
            "request": self._request_rendezvous,
        }.get(action)
        if handler is None:
            return self._refuse(400, "BadRequest", f"unknown sb-hc-action {action!r}")
        return await handler(request)

    async def http(self, request: web.Request, resolved: Resolved) -> web.StreamResponse:
        """An HTTP sender at ``/{name}[/{suffix}]``: no listener is 502 before any body is
        read; a small body of known length goes inline, any other streams by rendezvous."""
        grant = Grant(ANONYMOUS, from_authorization=False)
        if resolved.connection.requires_client_authorization:
            authorized = self._authorize(request, resolved, Rights.SEND, http=True)
            if isinstance(authorized, web.Response):
                return authorized
            grant = authorized
        path = resolved.connection.path
        channel = self._pick(resolved) if self.cluster is None else None
        targets = await self._candidates(path)
        if channel is None and not targets:
            return self._refuse(
                502, "BadGateway", "no listener is connected to this hybrid connection"
            )
        length = request.content_length
        inline = not request.body_exists or (length is not None and length <= INLINE_LIMIT)
        # What this exchange may hold here: an inline body and an inline response, or the
        # windows of a streamed one. Reserved before the body is read.
        held = (length or 0) + INLINE_LIMIT if inline else STREAM_RESERVATION
        refused = self.in_flight.reserve(path, held)
        if refused is not None:
            return self._in_flight_refusal(path, refused)
        try:
            return await self._relay_http(request, resolved, grant, channel, targets, inline)
        finally:
            self.in_flight.release(path, held)

    async def _relay_http(
        self,
        request: web.Request,
        resolved: Resolved,
        grant: Grant,
        channel: ControlChannel | None,
        targets: list[ListenerRef],
        inline: bool,
    ) -> web.StreamResponse:
        """The request to a listener (inline, or streamed by rendezvous), its response back."""
        path = resolved.connection.path
        request_id = secrets.token_urlsafe(16)
        address = rendezvous_address(
            channel.base_url if channel is not None else self._cluster_base(),
            resolved.connection.path,
            [("sb-hc-action", "request"), ("sb-hc-id", request_id)],
        )
        traffic = self.meters.traffic_of(resolved.connection.path, grant.rule)
        exchange = HttpExchange(request_id, "", None, last_upload=self.clock(), traffic=traffic)
        body: bytes | AsyncIterator[bytes] | None
        if inline:
            body = await read_body(request, INLINE_LIMIT) if request.body_exists else b""
            if body is None:  # more than its Content-Length said: not valid HTTP framing
                return self._refuse(400, "BadRequest", "the body is longer than its Content-Length")
            traffic.to_listener += len(body)
        else:
            body = request_body(request, exchange, self.clock)
        headers = forwarded_headers(
            request.headers.items(), strip_authorization=grant.from_authorization
        )
        exchange.head = request_message(
            address=address, request_id=request_id,
            target=request.path + _query_string(strip_relay_query(request.query.items())),
            method=request.method, headers=headers, remote=_remote(request), has_body=bool(body),
        )  # fmt: skip
        exchange.body = body or None
        if not self.rendezvous.add(request_id, exchange, self.clock()):
            return self._rendezvous_full()
        short = Outgoing(request_message(address=address, request_id=request_id))
        try:
            if channel is not None:
                channel.exchanges[request_id] = exchange
                await _send_request(channel, exchange, short)
            else:  # cluster mode: the rendezvous form, which works through any node
                assert self.cluster is not None
                taken = await self.cluster.offer(path, targets, short)
                if isinstance(taken, ControlChannel):
                    channel = taken
                    channel.exchanges[request_id] = exchange
            head, data = await wait_for_response(
                exchange, self.settings.response_timeout, self.clock
            )
        except NoListenerReached:
            exchange.finished.set()
            return self._refuse(502, "BadGateway", "no listener of this hybrid connection answered")
        except TimeoutError:
            exchange.finished.set()
            return self._refuse(504, "GatewayTimeout", "the listener did not respond in time")
        except InvalidResponse:
            exchange.finished.set()
            return self._refuse(
                500, "InvalidListenerResponse", "the listener's response was invalid"
            )
        except SenderGone:
            exchange.finished.set()
            return self._refuse(400, "BadRequest", "the request body was broken off")
        except Exception:  # the listener went away (or its channel broke)
            exchange.finished.set()
            return self._refuse(502, "BadGateway", "the listener went away before responding")
        finally:
            if channel is not None:
                channel.exchanges.pop(request_id, None)
            self.rendezvous.discard(request_id)
        self.meters.senders["http"] += 1
        traffic.requests += 1
        return await send_response(request, exchange, head, data, self.settings.response_timeout)

    def live_listeners(self) -> list[LiveListener]:
        """Every listener connected to this node now."""
        return [
            LiveListener(
                id=channel.ref.listener_id,
                hybrid_connection=str(channel.path),
                address=channel.address,
                connected_at=channel.connected_at,
                bridges=len(channel.bridges),
            )
            for channel in self.channels.values()
        ]

    def live_bridges(self) -> list[LiveBridge]:
        """Every WebSocket sender paired through a listener of this node now."""
        return [
            LiveBridge(
                hybrid_connection=str(channel.path),
                listener_id=channel.ref.listener_id,
                sender=meter.sender,
                opened_at=meter.opened_at,
                bytes_to_listener=meter.bytes_to_listener,
                bytes_to_sender=meter.bytes_to_sender,
            )
            for channel in self.channels.values()
            for meter in channel.bridges.values()
        ] + [
            LiveBridge(
                hybrid_connection=path,
                listener_id=ref.listener_id,
                sender=meter.sender,
                opened_at=meter.opened_at,
                bytes_to_listener=meter.bytes_to_listener,
                bytes_to_sender=meter.bytes_to_sender,
            )
            for ref, path, meter in self.remote_bridges.values()
        ]

    async def drain(self, poll: float = DRAIN_POLL) -> None:
        """Hand the listeners to other nodes without cutting a stream: take no listener any
        more (503), pair no new sender with one here, and close each control channel with
        1001 (the SDKs reconnect, through the load balancer, elsewhere) once its bridges and
        HTTP exchanges in flight are done. Returns when every channel is closed."""
        self.draining = True
        channels = list(self.channels.values())
        for channel in channels:
            await self._release(channel.path, channel.ref)
        await asyncio.gather(*(self._close_when_idle(channel, poll) for channel in channels))

    async def _close_when_idle(self, channel: ControlChannel, poll: float) -> None:
        # Bridges and exchanges end in many places (either side closing, a timeout): a
        # look every ``poll`` seconds is simpler than a hook in each, and only runs in a drain.
        while True:
            if not channel.bridges and not channel.exchanges:
                break
            await asyncio.sleep(poll)
        await channel.websocket.close(code=GOING_AWAY, message=b"relay draining; reconnect")

    @property
    def bridges_in_flight(self) -> int:
        """Sender streams bridged to a listener here, and HTTP requests waiting on one."""
        here = sum(len(c.bridges) + len(c.exchanges) for c in self.channels.values())
        return here + len(self.remote_bridges)

    async def close(self) -> None:
        """Close every control channel (1001) and what waits on them."""
        for channel in list(self.channels.values()):
            await channel.websocket.close(code=1001, message=b"relay shutting down")
        for task in list(self._tasks):
            task.cancel()

    # --- listeners ------------------------------------------------------------------

    async def _listen(self, request: web.Request) -> web.StreamResponse:
        if self.draining:
            return _error(503, "ServiceUnavailable", "this node is draining: connect to another")
        resolved = self.resolve(_entity_path(request))
        if resolved is None or resolved.suffix:
            return self._listen_failed(
                request, self._refuse(404, "EndpointNotFound", "no such hybrid connection")
            )
        authorized = self._authorize(request, resolved, Rights.LISTEN, http=False)
        if isinstance(authorized, web.Response):
            return self._listen_failed(request, authorized)
        source = request.remote or ""
        path = resolved.connection.path
        ref = ListenerRef(secrets.token_hex(16), self.settings.node_id)
        if not await self._admit(path, ref):
            return self._refuse(
                403,
                "QuotaExceeded",
                f"MaximumListenersPerEndpoint: {self.settings.max_listeners} listeners already",
            )
        websocket = web.WebSocketResponse(
            heartbeat=self.settings.heartbeat, compress=False, max_msg_size=self.settings.max_body
        )
        try:
            await websocket.prepare(request)
            reader = relay_reader(self.settings.max_body)
            channel = ControlChannel(
                path, ref, websocket, self._token_expiry(request), reader,
                self._rendezvous_base(request),
                address=_address_text(request), connected_at=self.clock(),
            )  # fmt: skip
            self.channels[ref.listener_id] = channel
            self._stand(websocket, request, resolved, Rights.LISTEN, f"listener on {path}")
            self.meters.listeners_accepted += 1
            logger.info("listener %s on %s from %s", ref.listener_id[:8], path, source)
            expiry = self._spawn(self._close_on_expiry(channel))
            try:
                await self._serve_control_channel(channel, resolved)
            finally:
                expiry.cancel()
        finally:
            self.standings.discard(websocket)
            await self._release(path, ref)
            closed = self.channels.pop(ref.listener_id, None)
            if closed is not None:
                await closed.end()
                logger.info("listener %s on %s gone", ref.listener_id[:8], path)
        return websocket

    def _listen_failed(self, request: web.Request, refusal: web.Response) -> web.Response:
        """``refusal``, counted against the source; 429 instead once it has failed too often.

        Only failures are throttled (as the TURN core does): a valid listener from
        an address that a storm of bogus attempts shares (a NAT, a proxy) still
        gets in, so nobody there can keep a service offline.
        """
        now, source = self.clock(), request.remote or ""
        if self.listen_failures.blocked(source, now):
            return self._refuse(429, "TooManyRequests", "too many failed listen attempts; back off")
        self.listen_failures.record_failure(source, now)
        return refusal

    async def _serve_control_channel(self, channel: ControlChannel, resolved: Resolved) -> None:
        async for message in channel.websocket:
            if message.type is WSMsgType.TEXT:
                events = channel.reader.receive_text(message.data)
            elif message.type is WSMsgType.BINARY:
                events = channel.reader.receive_binary(message.data)
            else:
                continue
            for event in events:
                await self._on_listener_event(channel, resolved, event)

    async def _on_listener_event(
        self,
        channel: ControlChannel,
        resolved: Resolved,
        event: Event[ResponseHead | RenewToken],
    ) -> None:
        listener = channel.ref.listener_id[:8]
        if isinstance(event, StrayBody):  # hyco-https's empty message after body:false
            return
        if isinstance(event, Unreadable | MissingBody):
            logger.debug("listener %s sent %s; ignored", listener, _describe(event))
            refused = channel.exchanges.get(_request_id_of(event) or "")
            if refused is not None:  # its sender is told at once, not after the timeout
                refused.fail(InvalidResponse(_describe(event)))
        elif isinstance(event.head, RenewToken):
            try:
                self._verify(event.head.token, resolved, Rights.LISTEN, host=None)
            except SasError as error:
                logger.info("listener %s renewToken refused: %s", listener, error)
                await channel.websocket.close(code=1008, message=b"invalid token")
                return
            channel.token_expiry = SasToken.parse(event.head.token).expiry
            self.standings.renew(channel.websocket, event.head.token)
        else:
            exchange = channel.exchanges.get(event.head.request_id)
            if exchange is not None:
                exchange.complete(event.head, event.body)

    async def _close_on_expiry(self, channel: ControlChannel) -> None:
        """Close the control channel with 1008 once its token (plus grace) has expired."""
        while True:
            wait = channel.token_expiry + CLOCK_SKEW - self.clock()
            if wait <= 0:
                logger.info("listener %s token expired", channel.ref.listener_id[:8])
                await channel.websocket.close(code=1008, message=b"token expired")
                return
            await asyncio.sleep(min(wait, 60.0))

    # --- WebSocket senders ------------------------------------------------------------

    async def _connect(self, request: web.Request) -> web.StreamResponse:
        resolved = self.resolve(_entity_path(request))
        if resolved is None:
            return self._refuse(404, "EndpointNotFound", "no such hybrid connection")
        rule = ANONYMOUS
        authorized_by_token = resolved.connection.requires_client_authorization
        if authorized_by_token:
            authorized = self._authorize(request, resolved, Rights.SEND, http=False)
            if isinstance(authorized, web.Response):
                return authorized
            rule = authorized.rule
        path = resolved.connection.path
        channel = self._pick(resolved) if self.cluster is None else None
        targets = await self._candidates(path)
        if channel is None and not targets:
            return self._refuse(404, "EndpointNotFound", "no listener is connected")
        rendezvous_id = secrets.token_urlsafe(16)
        pending = PendingAccept()
        if not self.rendezvous.add(rendezvous_id, pending, self.clock()):
            return self._rendezvous_full()
        query = strip_relay_query(request.query.items())
        address = rendezvous_address(
            channel.base_url if channel is not None else self._cluster_base(),
            resolved.connection.path + resolved.suffix,
            [*query, ("sb-hc-action", "accept"), ("sb-hc-id", rendezvous_id)],
        )
        headers = {
            name: value
            for name, value in request.headers.items()
            if name.lower() not in ("servicebusauthorization", "authorization")
        }
        tracking_id = request.query.get("sb-hc-id") or rendezvous_id
        try:
            accept = Outgoing(accept_message(address, tracking_id, headers, _remote(request)))
            taken: ControlChannel | ListenerRef
            if channel is not None:
                await channel.send(accept)
                taken = channel
            else:
                assert self.cluster is not None
                taken = await self.cluster.offer(path, targets, accept)
            met = await asyncio.wait_for(asyncio.shield(pending.met), RENDEZVOUS_LIFETIME)
        except NoListenerReached:
            return self._refuse(404, "EndpointNotFound", "no listener could be reached")
        except TimeoutError:
            return self._refuse(504, "GatewayTimeout", "the listener did not accept in time")
        except ConnectionError:
            return self._refuse(502, "BadGateway", "the listener went away")
        finally:
            self.rendezvous.discard(rendezvous_id)
        if isinstance(met, Rejected):
            pending.finished.set()
            return self._refuse(met.status, "Rejected", met.description or "the listener declined")
        protocols = (met.ws_protocol,) if met.ws_protocol else ()
        sender = self._bridge_socket(protocols)
        try:
            await sender.prepare(request)
            meter = BridgeMeter(_address_text(request), self.clock())
            if isinstance(taken, ControlChannel):
                taken.bridges[sender] = meter
            else:
                self.remote_bridges[sender] = (taken, path, meter)
            if authorized_by_token:
                self._stand(sender, request, resolved, Rights.SEND, f"sender to {path}")
            self.meters.senders["websocket"] += 1
            traffic = self.meters.traffic_of(resolved.connection.path, rule)
            traffic.requests += 1
            await _bridge(sender, met, meter, traffic)
        finally:
            if isinstance(taken, ControlChannel):
                taken.bridges.pop(sender, None)
            self.remote_bridges.pop(sender, None)
            self.standings.discard(sender)
            pending.finished.set()
        return sender

    async def _accept(self, request: web.Request) -> web.StreamResponse:
        pending = self.rendezvous.take(request.query.get("sb-hc-id", ""), self.clock())
        if not isinstance(pending, PendingAccept):
            return self._refuse(403, "Forbidden", "the rendezvous address is invalid or expired")
        status = request.query.get("sb-hc-statusCode")
        if status is not None:
            description = request.query.get("sb-hc-statusDescription", "")
            numeric = status.isascii() and status.isdigit()  # '²'.isdigit(), int('²') fails
            code = int(status) if numeric and 400 <= int(status) <= 599 else 403
            pending.met.set_result(Rejected(code, description))
            return web.Response(status=410)
        # The listener asks for one subprotocol, the one it chose from the sender's offer.
        requested = request.headers.get("Sec-WebSocket-Protocol", "").split(",")[0].strip()
        listener = self._bridge_socket((requested,) if requested else ())
        await listener.prepare(request)
        pending.met.set_result(listener)
        await pending.finished.wait()
        return listener

    def _bridge_socket(self, protocols: tuple[str, ...]) -> web.WebSocketResponse:
        """One side of a bridge: messages up to ``max_message`` (else 1009, RFC 6455
        §7.4.1), pinged every ``heartbeat`` s so a dead peer ends the bridge. aiohttp
        reads at most a window ahead and waits for the far side to drain before sending
        on, so a slow reader slows its writer instead of filling the relay."""
        return web.WebSocketResponse(
            protocols=protocols,
            compress=False,
            max_msg_size=self.settings.max_message,
            heartbeat=self.settings.heartbeat,
        )

    # --- HTTP rendezvous --------------------------------------------------------------

    async def _request_rendezvous(self, request: web.Request) -> web.StreamResponse:
        exchange = self.rendezvous.take(request.query.get("sb-hc-id", ""), self.clock())
        if not isinstance(exchange, HttpExchange):
            return self._refuse(403, "Forbidden", "the rendezvous address is invalid or expired")
        try:
            return await serve_rendezvous(request, exchange)
        except HttpError as error:
            exchange.fail(ListenerGone(error.message))
            return error_response(error)

    # --- shared -----------------------------------------------------------------------

    async def _admit(self, path: HybridConnectionPath, ref: ListenerRef) -> bool:
        if self.cluster is not None:
            return await self.cluster.admit(path, ref, self.settings.max_listeners)
        return self.gateway.register(path, ref, self.settings.max_listeners)

    async def _release(self, path: HybridConnectionPath, ref: ListenerRef) -> None:
        if self.cluster is not None:
            await self.cluster.release(path, ref)
        else:
            self.gateway.unregister(path, ref)

    async def _candidates(self, path: HybridConnectionPath) -> list[ListenerRef]:
        """Cluster mode: listeners here and on live nodes to offer a sender (a draining node
        released its own, so they go to other nodes)."""
        if self.cluster is None:
            return []
        return await self.cluster.candidates(path)

    def _pick(self, resolved: Resolved) -> ControlChannel | None:
        ref = self.gateway.pick(resolved.connection.path)
        return self.channels.get(ref.listener_id) if ref is not None else None

    def _authorize(
        self, request: web.Request, resolved: Resolved, needed: Rights, *, http: bool
    ) -> Grant | web.Response:
        """What let the request in if its token grants ``needed``, else the error response.

        An HTTP sender's token may come from ``Authorization`` when neither
        relay-specific place holds one (:attr:`Grant.from_authorization`).
        """
        token = request.query.get("sb-hc-token") or request.headers.get(AUTH_HEADER)
        from_authorization = False
        if not token and http:
            authorization = request.headers.get("Authorization", "")
            if authorization.startswith("SharedAccessSignature "):
                token, from_authorization = authorization, True
        if not token:
            return self._refuse(401, "TokenMissingOrInvalid", "a SAS token is required")
        try:
            rule = self._verify(token, resolved, needed, host=request.host)
        except SasError as error:
            self.meters.refused[error.code] += 1
            return error_response(error)
        return Grant(rule, from_authorization)

    def _refuse(self, status: int, code: str, message: str) -> web.Response:
        """The error answer, counted by ``code`` in :attr:`meters`."""
        self.meters.refused[code] += 1
        return _error(status, code, message)

    def _in_flight_refusal(self, path: str, limit: str) -> web.Response:
        """503 for an HTTP sender past a bound on bytes in flight, saying which."""
        limits = self.in_flight.limits
        if limit == "per_connection":
            what = (
                f"hybrid connection {path!r} has {limits.per_connection} bytes of HTTP "
                "exchanges in flight (--hc-http-in-flight-per-connection)"
            )
        else:
            what = (
                f"this relay has {limits.total} bytes of HTTP exchanges in flight "
                "(--hc-http-in-flight)"
            )
        self.meters.refused["ServerBusy"] += 1
        self._busy_log.log(
            self.clock(), logging.WARNING, "HTTP sender to %s turned away: %s in flight",
            path, "the hybrid connection's bytes" if limit == "per_connection" else "all bytes",
        )  # fmt: skip
        return error_response(
            HttpError(503, "ServerBusy", f"{what}; retry later", headers={"Retry-After": "1"})
        )

    def _rendezvous_full(self) -> web.Response:
        logger.warning("rendezvous table full: a sender was turned away")
        return self._refuse(
            503, "ServerBusy", "too many senders are waiting for listeners; retry later"
        )

    def _verify(
        self,
        token: str,
        resolved: Resolved,
        needed: Rights,
        host: str | None,
        *,
        now: float | None = None,
        bound_lifetime: bool = True,
    ) -> str:
        """The name of the rule that signed ``token``; raises :class:`SasError`."""
        hosts = list(self.settings.audience_hosts)
        if host:
            hosts.append(_hostname(f"//{host}") or host)
        if self.settings.public_url:
            hosts.append(_hostname(self.settings.public_url) or "")
        if self.cluster is not None:
            hosts += self.cluster.hosts()
        rules = self.namespace().rules_for(resolved.connection)
        return verify_sas_token(
            token, rules, hosts=hosts, entity=resolved.connection.path, needed=needed,
            now=self.clock() if now is None else now,
            max_lifetime=self.settings.max_token_lifetime if bound_lifetime else None,
        ).name  # fmt: skip

    def _still_granted(self, standing: Standing) -> None:
        """Raise :class:`SasError` if ``standing``'s token no longer verifies against the
        namespace as it is now (its rule deleted, its keys changed); its expiry and
        lifetime are not looked at again."""
        expiry = float(SasToken.parse(standing.token).expiry)
        self._verify(
            standing.token, standing.resolved, standing.needed, standing.host,
            now=min(self.clock(), expiry), bound_lifetime=False,
        )  # fmt: skip

    def _stand(
        self,
        websocket: web.WebSocketResponse,
        request: web.Request,
        resolved: Resolved,
        needed: Rights,
        what: str,
    ) -> None:
        """Remember what let ``websocket`` in, so it goes when its rule does."""
        token = request.query.get("sb-hc-token") or request.headers.get(AUTH_HEADER) or ""

        async def close(code: int, why: str) -> None:
            await websocket.close(code=code, message=_close_reason(why))

        self.standings.add(websocket, Standing(token, request.host, resolved, needed), close, what)
        if self._watcher is None:
            self._watcher = self._spawn(self.watch_namespace())

    async def revalidate(self) -> int:
        """Close the listeners and senders whose rule was deleted or whose key changed
        (1008); how many. Run by :meth:`watch_namespace` whenever the namespace changes."""
        self._swept = self.namespace()
        return await self.standings.sweep()

    async def watch_namespace(self, every: float = 1.0) -> None:
        """Until cancelled: :meth:`revalidate` after each change of the namespace (a rule
        deleted or rotated here, by the CLI on the store, or on another node)."""
        while True:
            await asyncio.sleep(every)
            if self.namespace() is not self._swept and len(self.standings):
                try:
                    await self.revalidate()
                except Exception:
                    logger.exception("could not re-check live listeners and senders")

    def _token_expiry(self, request: web.Request) -> float:
        token = request.query.get("sb-hc-token") or request.headers.get(AUTH_HEADER) or ""
        return float(SasToken.parse(token).expiry)

    def _rendezvous_base(self, request: web.Request) -> str:
        """Where the listener of ``request`` (its control channel) meets its senders: the
        configured public URL, else this node's advertised endpoint on the port the
        listener came in on. Nothing of it comes from a request header."""
        if self.settings.public_url:
            return self.settings.public_url
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        port = int(sockname[1]) if sockname else 0
        bases = self.settings.bases
        return bases.get(port) or next(iter(bases.values()), "ws://127.0.0.1")

    def _cluster_base(self) -> str:
        """Where a listener on any node meets a sender that came in here: this node's
        public URL, which cluster mode requires."""
        return self.settings.public_url or next(
            iter(self.settings.bases.values()), "ws://127.0.0.1"
        )

    def _spawn(self, work: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


async def _send_request(channel: ControlChannel, exchange: HttpExchange, short: Outgoing) -> None:
    """The full request inline when it fits, else the rendezvous form (the listener
    fetches it over the rendezvous socket)."""
    body = exchange.body
    if body is None or (isinstance(body, bytes) and len(exchange.head) + len(body) <= INLINE_LIMIT):
        exchange.sent = True
        await channel.send(Outgoing(exchange.head, body or b""))
    else:
        await channel.send(short)


def _describe(event: Unreadable | MissingBody[ResponseHead | RenewToken]) -> str:
    if isinstance(event, Unreadable):
        return str(event.error)
    return "a response announced a body that never came"


def _request_id_of(event: Unreadable | MissingBody[ResponseHead | RenewToken]) -> str | None:
    """The request a bad response was for, even one the parser refused."""
    if isinstance(event, Unreadable):
        return response_request_id(event.text)
    return event.head.request_id if isinstance(event.head, ResponseHead) else None


def _hostname(url: str) -> str | None:
    """The host ``url`` names; None for one a URL parser refuses (a sender's ``Host: [::1``)."""
    try:
        return urllib.parse.urlsplit(url).hostname
    except ValueError:
        return None


def _entity_path(request: web.Request) -> str:
    return request.path[len(WEBSOCKET_PATHS.path) :]


def _address_text(request: web.Request) -> str:
    """``ip:port`` of the request's peer, for an operator's eyes; ``""`` if unknown."""
    remote = _remote(request)
    return format_address(remote) if remote is not None else ""


def _remote(request: web.Request) -> tuple[str, int] | None:
    peer = request.transport.get_extra_info("peername") if request.transport else None
    return (str(peer[0]), int(peer[1])) if peer else None


def _query_string(query: list[tuple[str, str]]) -> str:
    return "?" + urllib.parse.urlencode(query) if query else ""


def _close_reason(text: str) -> bytes:
    """``text`` as a close frame's reason: UTF-8, at most 123 bytes, never cut inside a
    character (RFC 6455 §5.5.1)."""
    return text.encode()[:123].decode("utf-8", "ignore").encode()


def _sendable_close_code(code: int) -> int:
    """``code`` if a close frame may carry it, else 1001 (RFC 6455 §7.4: 1005, 1006 and
    1015 only report what happened locally; 1004 and unassigned codes are not for use)."""
    if code in (1000, 1001, 1002, 1003) or 1007 <= code <= 1014 or 3000 <= code <= 4999:
        return code
    return GOING_AWAY


def _error(status: int, code: str, message: str) -> web.Response:
    return error_response(HttpError(status, code, message))


async def _bridge(
    sender: web.WebSocketResponse,
    listener: web.WebSocketResponse,
    meter: BridgeMeter,
    traffic: Traffic,
) -> None:
    """Copy messages both ways until one side closes, then close the other with its code;
    ``meter`` (this bridge) and ``traffic`` (its hybrid connection and rule) count the
    payload bytes of each message, as it is forwarded: a scrape after the far side has
    it sees it."""

    async def pump(source: web.WebSocketResponse, sink: web.WebSocketResponse) -> None:
        to_listener = sink is listener
        while True:
            message = await source.receive()
            if message.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                data = message.data
                size = len(data.encode()) if message.type is WSMsgType.TEXT else len(data)
                if to_listener:
                    meter.bytes_to_listener += size
                    traffic.to_listener += size
                else:
                    meter.bytes_to_sender += size
                    traffic.to_sender += size
            if message.type is WSMsgType.TEXT:
                await sink.send_str(message.data)
            elif message.type is WSMsgType.BINARY:
                await sink.send_bytes(message.data)
            elif message.type is WSMsgType.CLOSE:
                await sink.close(code=_sendable_close_code(int(message.data)))
                return
            elif message.type in (WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                # aiohttp closed ``source`` itself (1009 for a message over the limit,
                # 1006 for a missed pong); the other side is told it went away.
                why = f"the other side was closed ({source.close_code})"
                await sink.close(code=GOING_AWAY, message=why.encode())
                return

    tasks = [
        asyncio.ensure_future(pump(sender, listener)),
        asyncio.ensure_future(pump(listener, sender)),
    ]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        await asyncio.wait(tasks, timeout=5.0)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
