"""``HybridConnectionListener``: a service's outbound connection to the relay.

It opens the control channel (``/$hc/{name}?sb-hc-action=listen``) and keeps
it: it renews its token before expiry (``renewToken``), and reconnects with
backoff when the channel drops. Each ``accept`` becomes a
:class:`HybridStream` that :meth:`HybridConnectionListener.accept` (or
``async for``) yields; each ``request`` is answered by the HTTP handler,
inline on the control channel up to 64 kB, over the request's rendezvous
socket above, both bodies streamed there frame by frame
(:mod:`passage.hybrid.framesocket`; reference §2.4, §2.5)::

    async with HybridConnectionListener(endpoint, "myhc", tokens) as listener:
        async for stream in listener:
            ...
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl as ssl_module
import urllib.parse
import uuid
import weakref
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Coroutine,
    Mapping,
    Sequence,
)
from types import TracebackType
from typing import Any, Self

import aiohttp
import yarl

from passage.hybrid import framesocket
from passage.hybrid.control import (
    INLINE_LIMIT,
    Accept,
    ControlMessageError,
    RequestHead,
    parse_service_message,
    renew_token_message,
    response_message,
    strip_relay_query,
)
from passage.hybrid.endpoint import RelayEndpoint
from passage.hybrid.framesocket import BodyBroken, FrameSocket
from passage.hybrid.framing import (
    Command,
    CommandReader,
    MissingBody,
    Outgoing,
    Unreadable,
    listener_reader,
)
from passage.hybrid.sdk.errors import (
    MAX_MESSAGE,
    HybridConnectionError,
    ListenerClosed,
    MessageTooLarge,
    handshake_refusal,
    too_large,
)
from passage.hybrid.sdk.http import (
    MAX_BUFFERED_BODY,
    HttpHandler,
    RelayedRequest,
    RelayedResponse,
    local_target,
    response_for_relay,
)
from passage.hybrid.sdk.stream import HybridStream
from passage.hybrid.sdk.tokens import TokenProvider

__all__ = ["RECONNECT_DELAYS", "HybridConnectionListener"]

logger = logging.getLogger("passage.hybrid.sdk")

AUTH_HEADER = "ServiceBusAuthorization"

RECONNECT_DELAYS = (0.0, 1.0, 2.0, 5.0, 10.0, 30.0)
"""Seconds before each reconnect attempt (the last repeats), as hyco-https waits; reset
once a control channel is open again."""

RENDEZVOUS_LINGER = 10.0
"""Seconds a listener waits for the relay to close a rendezvous it delivered a response on."""

KEEPALIVE = 30.0
"""Seconds between our pings on the control channel; a relay that misses one is redialled."""


class HybridConnectionListener:
    """Listens on hybrid connection ``name`` at ``endpoint`` with tokens from ``tokens``.

    ``http_handler`` answers HTTP senders (without one they get 501);
    ``protocols`` are the WebSocket subprotocols this listener speaks, the
    first one a sender also offers being chosen. ``ssl`` is the context for
    ``wss://`` (None: the system's trust store).
    """

    def __init__(
        self,
        endpoint: RelayEndpoint,
        name: str,
        tokens: TokenProvider,
        *,
        http_handler: HttpHandler | None = None,
        protocols: Sequence[str] = (),
        ssl: ssl_module.SSLContext | None = None,
        reconnect_delays: Sequence[float] = RECONNECT_DELAYS,
        backlog: int = 256,
        max_message: int = MAX_MESSAGE,
    ) -> None:
        """``max_message``: the largest message read from the relay, on the control
        channel and on each accepted stream (the relay's ``--hc-max-message``); a larger
        one closes that socket with 1009 (:class:`MessageTooLarge` from a stream)."""
        self.endpoint = endpoint
        self.name = name.strip("/")
        self.tokens = tokens
        self.http_handler = http_handler
        self.protocols = tuple(protocols)
        self.reconnect_delays = tuple(reconnect_delays) or (1.0,)
        self.max_message = max_message
        self.connections = 0
        """Control channels opened so far (1 + the reconnects)."""
        self._ssl: ssl_module.SSLContext | bool = ssl if ssl is not None else True
        self._accepted: asyncio.Queue[HybridStream | None] = asyncio.Queue(backlog)
        self._streams: weakref.WeakSet[HybridStream] = weakref.WeakSet()
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None
        self._control: aiohttp.ClientWebSocketResponse | None = None
        self._send_lock = asyncio.Lock()
        self._runner: asyncio.Task[None] | None = None
        self._closing = False
        self._online = asyncio.Event()

    # --- lifecycle ----------------------------------------------------------------

    async def open(self) -> None:
        """Open the control channel; :class:`HybridConnectionError` if the relay refuses."""
        # Every accepted stream holds a connection of this session: no pool limit
        # (aiohttp's default of 100 would stall the 101st sender).
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        try:
            self._control = await self._connect()
        except BaseException:
            await self._session.close()
            raise
        self._runner = asyncio.create_task(self._run())

    async def close(self) -> None:
        """Close the control channel and every stream this listener accepted."""
        if self._closing:
            return
        self._closing = True
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        for stream in list(self._streams):
            await stream.close(1001, "listener shutting down")
        if self._control is not None:
            await self._control.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        while not self._accepted.empty():
            self._accepted.get_nowait()
        self._accepted.put_nowait(None)
        if self._session is not None:
            await self._session.close()
        # A handler that holds resources (ForwardingHandler's HTTP session) ends with us.
        aclose = getattr(self.http_handler, "aclose", None)
        if aclose is not None:
            await aclose()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def online(self) -> bool:
        """Whether a control channel is open right now."""
        return self._online.is_set()

    # --- streams ------------------------------------------------------------------

    async def accept(self) -> HybridStream:
        """The next WebSocket sender; :class:`ListenerClosed` once the listener is closed."""
        stream = await self._accepted.get()
        if stream is None:
            self._accepted.put_nowait(None)  # every later accept() ends the same way
            raise ListenerClosed(f"listener on {self.name!r} is closed")
        return stream

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> HybridStream:
        try:
            return await self.accept()
        except ListenerClosed:
            raise StopAsyncIteration from None

    # --- the control channel -------------------------------------------------------

    async def _connect(self) -> aiohttp.ClientWebSocketResponse:
        assert self._session is not None
        url = self.endpoint.listen_url(self.name, str(uuid.uuid4()))
        token = self.tokens.token(self.endpoint.resource_uri(self.name))
        try:
            control = await self._session.ws_connect(
                yarl.URL(url, encoded=True),
                headers={AUTH_HEADER: token},
                ssl=self._ssl,
                heartbeat=KEEPALIVE,
                max_msg_size=self.max_message,
            )
        except aiohttp.WSServerHandshakeError as error:
            raise handshake_refusal(error.status, error.message) from None
        except (aiohttp.ClientError, OSError) as error:
            raise HybridConnectionError(
                0, f"cannot reach {self.endpoint.base_url}: {error}"
            ) from None
        self.connections += 1
        self._online.set()
        logger.info("listening on %s at %s", self.name, self.endpoint.base_url)
        return control

    async def _run(self) -> None:
        """Serve the control channel; when it drops, reconnect with backoff, forever."""
        while True:
            assert self._control is not None
            await self._serve(self._control)
            self._online.clear()
            code = self._control.close_code
            logger.warning("control channel of %s closed (%s); reconnecting", self.name, code)
            self._control = await self._reconnect()

    async def _reconnect(self) -> aiohttp.ClientWebSocketResponse:
        attempt = 0
        while True:
            delay = self.reconnect_delays[min(attempt, len(self.reconnect_delays) - 1)]
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            try:
                return await self._connect()
            except HybridConnectionError as error:
                logger.warning("listener %s: reconnect refused: %s", self.name, error)
                attempt += 1

    async def _serve(self, control: aiohttp.ClientWebSocketResponse) -> None:
        renewal = self._spawn(self._renew(control)) if self.tokens.renew_every else None
        reader = listener_reader(max_message=self.max_message)
        try:
            async for message in control:
                if too_large(message):
                    logger.warning("listener %s: %s", self.name, MessageTooLarge(self.max_message))
                for command in _commands(self.name, reader, message):
                    self._on_command(control, command)
        finally:
            if renewal is not None:
                renewal.cancel()

    def _on_command(
        self, control: aiohttp.ClientWebSocketResponse, command: Command[Accept | RequestHead]
    ) -> None:
        head = command.head
        if isinstance(head, Accept):
            self._spawn(self._on_accept(head))
        elif head.method is None:  # too large for the control channel: fetch it
            self._spawn(self._serve_rendezvous(head))
        else:
            self._spawn(self._answer_inline(control, head, command.body))

    async def _renew(self, control: aiohttp.ClientWebSocketResponse) -> None:
        assert self.tokens.renew_every is not None
        while True:
            await asyncio.sleep(self.tokens.renew_every)
            token = self.tokens.token(self.endpoint.resource_uri(self.name))
            async with self._send_lock:
                await control.send_str(renew_token_message(token))
            logger.debug("listener %s renewed its token", self.name)

    # --- WebSocket senders ------------------------------------------------------------

    async def _on_accept(self, accept: Accept) -> None:
        if self._accepted.full():
            await self._reject(accept, 503, "the listener has too many streams waiting")
            return
        offered = _offered_protocols(accept.connect_headers)
        chosen = next((protocol for protocol in self.protocols if protocol in offered), None)
        assert self._session is not None
        try:
            websocket = await self._session.ws_connect(
                yarl.URL(accept.address, encoded=True),
                protocols=(chosen,) if chosen else (),
                ssl=self._ssl,
                max_msg_size=self.max_message,
            )
        except (aiohttp.ClientError, OSError) as error:
            logger.warning("listener %s: could not meet a sender: %s", self.name, error)
            return
        stream = HybridStream(
            websocket,
            tracking_id=accept.tracking_id,
            headers=accept.connect_headers,
            remote=accept.remote,
            target=_target_of(accept.address),
            max_message=self.max_message,
        )
        self._streams.add(stream)
        await self._accepted.put(stream)

    async def _reject(self, accept: Accept, status: int, description: str) -> None:
        """Decline a sender: the accept address with ``sb-hc-statusCode`` (answered 410)."""
        assert self._session is not None
        query = urllib.parse.urlencode(
            [("sb-hc-statusCode", str(status)), ("sb-hc-statusDescription", description)]
        )
        with contextlib.suppress(aiohttp.ClientError, OSError):
            websocket_url = yarl.URL(f"{accept.address}&{query}", encoded=True)
            async with self._session.get(websocket_url.with_scheme(_http(websocket_url.scheme))):
                pass

    # --- HTTP senders -----------------------------------------------------------------

    async def _answer_inline(
        self, control: aiohttp.ClientWebSocketResponse, head: RequestHead, body: bytes
    ) -> None:
        """Answer a request that came on the control channel: there up to 64 kB, else by
        the request's rendezvous address, where the listener speaks first (reference §4.3)."""
        response = await self._respond(head, body, None)
        first, rest = await _first_bytes(response.body, INLINE_LIMIT)
        answer = Outgoing.response(
            head.request_id, response.status, response.reason, response.headers, first
        )
        if rest is None and answer.size <= INLINE_LIMIT and not control.closed:
            async with self._send_lock:
                await _send(control, answer)
            return
        try:
            rendezvous = await framesocket.connect(head.address, self._ssl)
        except OSError as error:
            logger.warning("listener %s: could not deliver a response: %s", self.name, error)
            await _close_body(rest)
            return
        await self._send_response(rendezvous, head, response, _chain(first, rest))
        # The relay closes once it has the response; leaving first could cut it short.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(rendezvous.receive_text(), RENDEZVOUS_LINGER)
        rendezvous.abort()

    async def _serve_rendezvous(self, head: RequestHead) -> None:
        """A request too large (or too long) for the control channel: fetch it over its
        rendezvous socket, its body as it comes, and answer there as the answer comes."""
        try:
            rendezvous = await framesocket.connect(head.address, self._ssl)
        except OSError as error:
            logger.warning("listener %s: request rendezvous failed: %s", self.name, error)
            return
        try:
            text = await rendezvous.receive_text()
            request = _request_head(text)
            if request is None:
                return
            content = rendezvous.receive_body() if request.has_body else None
            response = await self._respond(request, b"", content)
            await self._send_response(rendezvous, request, response, response.body)
            with contextlib.suppress(TimeoutError):  # the relay closes once it has it all
                await asyncio.wait_for(rendezvous.receive_text(), RENDEZVOUS_LINGER)
        except (ConnectionError, BodyBroken) as error:
            logger.info("listener %s: a request rendezvous was cut: %s", self.name, error)
        finally:
            rendezvous.abort()

    async def _send_response(
        self,
        rendezvous: FrameSocket,
        head: RequestHead,
        response: RelayedResponse,
        body: bytes | AsyncIterable[bytes],
    ) -> None:
        """The ``response`` head, then its body frame by frame as it comes. A body that
        fails leaves the message open and drops the socket: the sender sees it cut."""
        chunks = _iterate(body)
        try:
            has_body = not isinstance(body, bytes) or bool(body)
            await rendezvous.send_text(
                response_message(
                    head.request_id, response.status, response.reason, response.headers, has_body
                )
            )
            if has_body:
                await rendezvous.send_body(chunks)
        except (ConnectionError, BodyBroken) as error:
            logger.info("listener %s: a response was cut: %s", self.name, error)
            rendezvous.abort()
        finally:
            await chunks.aclose()

    async def _respond(
        self, head: RequestHead, body: bytes, content: AsyncIterator[bytes] | None
    ) -> RelayedResponse:
        """The handler's answer to ``head``, fit for the relay; 501 without a handler."""
        assert head.method is not None
        streams = bool(getattr(self.http_handler, "streams_bodies", False))
        if self.http_handler is None:
            response = RelayedResponse(501, body=b"this listener does not serve HTTP requests")
        elif content is not None and not streams:
            whole = await _read_whole(content, MAX_BUFFERED_BODY)
            if whole is None:
                response = RelayedResponse(413, body=b"the request body is too large")
            else:
                response = await self._handle(head, whole, None)
        else:
            if streams and content is None and body:
                content = _iterate(body)
                body = b""
            response = await self._handle(head, body, content)
        relayed = response_for_relay(response, head.method)
        if relayed.body is not response.body and not isinstance(response.body, bytes):
            await _close_body(response.body)
        return relayed

    async def _handle(
        self, head: RequestHead, body: bytes, content: AsyncIterator[bytes] | None
    ) -> RelayedResponse:
        assert head.method is not None and self.http_handler is not None
        request = RelayedRequest(
            request_id=head.request_id,
            method=head.method,
            target=head.target,
            path=local_target(head.target, self.name),
            headers=head.headers,
            body=body,
            remote=head.remote,
            content=content,
        )
        try:
            return await self.http_handler(request)
        except Exception:
            logger.exception("listener %s: the HTTP handler failed", self.name)
            return RelayedResponse(500, body=b"the listener's handler failed")

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


def _offered_protocols(headers: Mapping[str, str]) -> list[str]:
    offered = next(
        (value for name, value in headers.items() if name.lower() == "sec-websocket-protocol"), ""
    )
    return [protocol.strip() for protocol in offered.split(",") if protocol.strip()]


def _target_of(address: str) -> str:
    """The sender's path and query, as the accept address carries them, relay parts removed."""
    parsed = urllib.parse.urlsplit(address)
    path = parsed.path.removeprefix("/$hc")
    query = strip_relay_query(urllib.parse.parse_qsl(parsed.query, keep_blank_values=True))
    return path + (f"?{urllib.parse.urlencode(query)}" if query else "")


def _http(scheme: str) -> str:
    return "https" if scheme == "wss" else "http"


def _commands(
    name: str, reader: CommandReader[Accept | RequestHead], message: aiohttp.WSMessage
) -> list[Command[Accept | RequestHead]]:
    """The commands ``message`` completes; what is not one is logged and dropped."""
    if message.type is aiohttp.WSMsgType.TEXT:
        events = reader.receive_text(message.data)
    elif message.type is aiohttp.WSMsgType.BINARY:
        events = reader.receive_binary(message.data)
    else:
        return []
    commands = []
    for event in events:
        if isinstance(event, Command):
            commands.append(event)
        elif isinstance(event, Unreadable):
            logger.debug("listener %s: ignored a control message: %s", name, event.error)
        elif isinstance(event, MissingBody):
            logger.warning("listener %s: a request's body never came; not answered", name)
    return commands


async def _send(websocket: aiohttp.ClientWebSocketResponse, command: Outgoing) -> None:
    """The messages of ``command``; the caller keeps anything else off the socket meanwhile."""
    for message in command.messages:
        if isinstance(message, str):
            await websocket.send_str(message)
        else:
            await websocket.send_bytes(message)


def _request_head(text: str | None) -> RequestHead | None:
    """The full ``request`` a rendezvous socket starts with; None if it is not one."""
    if text is None:
        return None
    try:
        head = parse_service_message(text)
    except ControlMessageError:
        return None
    return head if isinstance(head, RequestHead) and head.method is not None else None


async def _iterate(body: bytes | AsyncIterable[bytes]) -> AsyncGenerator[bytes, None]:
    if isinstance(body, bytes):
        if body:
            yield body
        return
    try:
        async for chunk in body:
            yield chunk
    finally:  # stopped early, the body's owner (a local service's response) lets go at once
        await _close_body(body)


async def _chain(first: bytes, rest: AsyncIterable[bytes] | None) -> AsyncGenerator[bytes, None]:
    if first:
        yield first
    if rest is not None:
        try:
            async for chunk in rest:
                yield chunk
        finally:
            await _close_body(rest)


async def _first_bytes(
    body: bytes | AsyncIterable[bytes], limit: int
) -> tuple[bytes, AsyncIterator[bytes] | None]:
    """Up to about ``limit`` bytes of ``body``, and the rest (None if that was all)."""
    if isinstance(body, bytes):
        return (body, None) if len(body) <= limit else (b"", _iterate(body))
    chunks = aiter(body)
    first = bytearray()
    async for chunk in chunks:
        first += chunk
        if len(first) > limit:
            return bytes(first), chunks
    return bytes(first), None


async def _read_whole(content: AsyncIterator[bytes], limit: int) -> bytes | None:
    """All of ``content``, or None once it passes ``limit`` bytes."""
    whole = bytearray()
    async for chunk in content:
        whole += chunk
        if len(whole) > limit:
            return None
    return bytes(whole)


async def _close_body(body: object) -> None:
    """Close an async generator body we will not read to its end (its owner cleans up)."""
    aclose = getattr(body, "aclose", None)
    if aclose is not None:
        with contextlib.suppress(Exception):
            await aclose()
