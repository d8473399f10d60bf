"""Every connection the front door accepts: admitted or refused, then held to its timeouts.

aiohttp serves a connection until the client goes, with one keep-alive timer;
nothing in it bounds a TLS handshake, a trickled request head or body, a
response nobody reads, or how many connections one client holds. This module
adds those, around aiohttp's own request handler:

- :class:`Gatekeeper` is shared by every listener of the door: the
  :class:`~passage.http_limits.ConnectionCounts`, what is left of the
  process's file descriptors, and the rate-limited log lines about clients.
- A connection is first a :class:`Gate`: as soon as it is accepted (before
  any TLS work) it is admitted or refused (a plain-HTTP client is answered
  503 with the JSON error body; a TLS one is closed); then the TLS handshake
  runs under ``tls_handshake_timeout``; then the connection is handed to a
  :class:`GuardedRequestHandler`.
- :class:`GuardedRequestHandler` is aiohttp's request handler with a
  :class:`~passage.http_timers.ConnectionClock`: one timer per connection,
  re-armed as the clock's deadline moves; malformed requests are answered
  414/431/400 with the JSON error body and cost one WARNING line, rate limited.

WebSockets are left to their products once upgraded (ping/pong and idle
rules of signaling and the relay); they still count against the caps.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import re
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any, Protocol, cast

from aiohttp import web, web_protocol
from aiohttp.http_exceptions import BadHttpMessage, LineTooLong
from aiohttp.http_websocket import WebSocketReader
from aiohttp.streams import StreamReader

from passage.frontdoor.access import UNROUTED, AccessRecorder
from passage.frontdoor.answers import error_response, raw_answer
from passage.http_errors import HttpError
from passage.http_limits import ConnectionCounts, HttpLimits, Refusal
from passage.http_timers import ConnectionClock, Expiry
from passage.log_limit import RateLimitedLog

__all__ = [
    "Descriptors",
    "Gate",
    "Gatekeeper",
    "GuardedRequestHandler",
    "accept_tls",
    "client_error",
    "name_route",
]

logger = logging.getLogger("passage.frontdoor")

REFUSED_ANSWER: dict[Refusal, HttpError] = {
    Refusal.DESCRIPTORS_LOW: HttpError(
        503, "ServerBusy", "The server is out of connections; retry later.",
        headers={"Retry-After": "1"},
    ),
    Refusal.TOO_MANY: HttpError(
        503, "TooManyConnections", "The server has too many connections open; retry later.",
        headers={"Retry-After": "1"},
    ),
    Refusal.TOO_MANY_FROM_SOURCE: HttpError(
        503, "TooManyConnections", "Too many connections from your address; close some first.",
        headers={"Retry-After": "1"},
    ),
}  # fmt: skip
"""What a refused plain-HTTP client is told (a TLS client is closed before its handshake)."""

ACCEPT_RETRY_DELAY = 0.1
"""Seconds the TLS listener waits after accept() failed (out of file descriptors)."""

REQUEST_TIMEOUT = HttpError(408, "RequestTimeout", "The request head took too long to arrive.")

_REQUEST_LINE = re.compile(rb"^(?:[A-Z]+ +)?(?:/|\*|https?://)")
"""How a too-long line that is the request line starts (aiohttp reports either the whole
line or only its target), as opposed to a header line."""


class Descriptors(Protocol):
    """What the gatekeeper needs of :class:`passage.descriptors.DescriptorBudget`."""

    def left(self, now: float) -> int | None: ...
    def limit(self) -> int: ...
    def opened(self) -> None: ...
    def closed(self) -> None: ...


class Gatekeeper:
    """What every connection of one front door shares: limits, counts, logs."""

    def __init__(
        self,
        limits: HttpLimits,
        *,
        descriptors: Descriptors | None = None,
        clock: Callable[[], float] = time.monotonic,
        access_log: bool = False,
    ) -> None:
        self.limits = limits
        self.counts = ConnectionCounts(limits)
        self.descriptors = descriptors
        self.clock = clock
        self.refused: collections.Counter[str] = collections.Counter()
        """Connections refused or cut, by reason (``too_many_connections``, ``idle_timeout``)."""
        self.refusal_log = RateLimitedLog(logger)
        self.client_log = RateLimitedLog(logger)
        self.timeout_log = RateLimitedLog(logger)
        self.handshakes: set[asyncio.Task[None]] = set()
        self.access = AccessRecorder(clock, log=access_log)
        """Every answered request, counted by route and status (and logged if asked)."""

    def admit(self, ip: str) -> Refusal | None:
        """Count a connection from ``ip`` now accepted, or say why it may not stay."""
        descriptors = self.descriptors
        left = descriptors.left(self.clock()) if descriptors is not None else None
        limit = descriptors.limit() if descriptors is not None else None
        refusal = self.counts.admit(ip, left, limit)
        if refusal is None:
            if self.descriptors is not None:
                self.descriptors.opened()
            return None
        self.refused[refusal.reason] += 1
        self.refusal_log.warning(
            self.clock(), "refused an HTTP connection from %s: %s", ip, _why(refusal, left)
        )
        return refusal

    def release(self, ip: str) -> None:
        """A connection :meth:`admit` let in has ended."""
        self.counts.release(ip)
        if self.descriptors is not None:
            self.descriptors.closed()

    def cut(self, ip: str, expiry: Expiry) -> None:
        self.refused[expiry.reason] += 1
        self.timeout_log.info(self.clock(), "closed an HTTP connection from %s: %s", ip,
                              expiry.reason.replace("_", " "))  # fmt: skip


def _why(refusal: Refusal, left: int | None) -> str:
    limits_text = {
        Refusal.DESCRIPTORS_LOW: f"only {left} file descriptors left, fewer than the reserve",
        Refusal.TOO_MANY: "the server's cap of HTTP connections is reached",
        Refusal.TOO_MANY_FROM_SOURCE: "its address holds as many HTTP connections as allowed",
    }
    return f"{limits_text[refusal]} ({refusal.setting})"


def client_error(request: web.BaseRequest, what: str) -> None:
    """One WARNING line (rate limited) saying what the client of ``request`` did wrong;
    nothing if the front door cut the connection itself (it has said why)."""
    protocol = request.protocol
    if isinstance(protocol, GuardedRequestHandler):
        if protocol.cut is None:
            keeper = protocol.keeper
            keeper.client_log.warning(keeper.clock(), "HTTP client %s: %s", request.remote, what)
    else:
        logger.warning("HTTP client %s: %s", request.remote, what)


def name_route(request: web.BaseRequest, route: str) -> None:
    """Count ``request`` under ``route`` (an operation's name: bounded, never client text)."""
    protocol = request.protocol
    if isinstance(protocol, GuardedRequestHandler):
        protocol.route = route


def describe(error: BaseException) -> str:
    """An exception a client caused, in one short line (never its full text: it may quote
    kilobytes of what the client sent)."""
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text[:120]}" if text else type(error).__name__


def malformed_answer(error: BaseException | None) -> HttpError:
    """The answer to a request the HTTP parser refused."""
    if isinstance(error, LineTooLong):
        line = error.args[0] if error.args else b""
        raw = bytes(line) if isinstance(line, bytes | bytearray) else str(line).encode()
        if _REQUEST_LINE.match(raw):
            return HttpError(414, "UriTooLong", "The request line is too long.")
        return HttpError(431, "RequestHeaderFieldsTooLarge", "A header line is too long.")
    if isinstance(error, BadHttpMessage) and "too many headers" in str(error).lower():
        return HttpError(431, "RequestHeaderFieldsTooLarge", "The request has too many headers.")
    return HttpError(400, "BadRequest", "The request is not valid HTTP/1.1.")


class GuardedRequestHandler(web_protocol.RequestHandler):
    """aiohttp's request handler for one admitted connection, held to its timeouts."""

    __slots__ = ("_clock", "_payload", "_released", "_timer", "_timer_at", "began", "cut",
                 "keeper", "route", "source")  # fmt: skip

    def __init__(self, manager: Any, keeper: Gatekeeper, source: str, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self.keeper = keeper
        self.source = source
        """The client's IP address, as admitted and counted."""
        self.cut: Expiry | None = None
        """Why the front door closed this connection itself, if it did."""
        self._clock: ConnectionClock | None = None
        self._payload: StreamReader | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._released = False
        self.route = UNROUTED
        """What the request being answered is counted under (:func:`name_route`)."""
        self.began: float | None = None
        """When the handler of the request being answered started (the keeper's clock)."""

    # --- what the front door tells it ----------------------------------------------

    def request_started(self, payload: StreamReader, route: str) -> None:
        """A request's handler is about to run; ``payload`` is its body, ``route`` what it
        is counted under unless the handler names it more precisely."""
        self.route = route
        self.began = self.keeper.clock()
        if self._clock is None:
            return
        complete = payload.is_eof()
        self._payload = None if complete else payload
        self._clock.request_started(self.keeper.clock(), body_complete=complete)
        self._rearm()

    # --- asyncio protocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._clock = ConnectionClock(self.keeper.limits, self.keeper.clock())
        super().connection_made(transport)
        self._rearm()

    def connection_lost(self, exc: BaseException | None) -> None:
        try:
            super().connection_lost(exc)
        finally:
            self._stop_timer()
            self._clock = None
            self.release()

    def release(self) -> None:
        """Give back this connection's place in the counts (once, however it ends)."""
        if not self._released:
            self._released = True
            self.keeper.release(self.source)

    def data_received(self, data: bytes) -> None:
        clock = self._clock
        if clock is not None:
            clock.received(len(data), self.keeper.clock())
        super().data_received(data)
        if clock is not None:
            if self._payload is not None and self._payload.is_eof():
                self._payload = None
                clock.body_complete()
            self._rearm()

    def pause_reading(self) -> None:
        super().pause_reading()
        if self._clock is not None:
            self._clock.reading_paused(True, self.keeper.clock())

    def resume_reading(self, resume_parser: bool = True) -> None:
        super().resume_reading(resume_parser)
        if self._clock is not None:
            self._clock.reading_paused(False, self.keeper.clock())
            self._rearm()

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._clock is not None:
            self._clock.writing_paused(True, self.keeper.clock())
            self._rearm()

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._clock is not None:
            self._clock.writing_paused(False, self.keeper.clock())

    # --- aiohttp's hooks ----------------------------------------------------------------

    def set_parser(
        self, parser: WebSocketReader, data_received_cb: Callable[[], None] | None = None
    ) -> None:
        """The connection became a WebSocket: its product's rules apply from now on, and the
        clock is dropped (nothing more to do per message)."""
        super().set_parser(parser, data_received_cb)
        self._stop_timer()
        self._clock = None

    def log_access(
        self, request: web.BaseRequest, response: web.StreamResponse, time: float | None
    ) -> None:
        """aiohttp calls this once a response is out whole: the connection is idle again."""
        super().log_access(request, response, time)
        self.keeper.access.answered(request, response, self.route, self.began)
        self.route, self.began = UNROUTED, None
        if self._clock is not None:
            self._payload = None
            self._clock.response_finished(self.keeper.clock())
            self._rearm()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """A request the parser refused: one WARNING line, the JSON error, and close."""
        if status >= 500:
            return super().handle_error(request, status, exc, message)
        client_error(request, f"malformed request ({describe(exc) if exc else status})")
        if request.writer.output_size > 0:
            raise ConnectionError("a response was already started")
        response = error_response(malformed_answer(exc))
        response.force_close()
        return response

    # --- the timer ----------------------------------------------------------------------

    def _rearm(self) -> None:
        """Arm the timer for the clock's deadline, unless it is armed for an earlier one
        (then it fires early, finds nothing due, and re-arms)."""
        clock = self._clock
        deadline = clock.deadline() if clock is not None else None
        if deadline is None:
            self._stop_timer()
            return
        if self._timer is not None and self._timer_at <= deadline:
            return
        self._stop_timer()
        self._timer_at = deadline
        delay = max(0.0, deadline - self.keeper.clock())
        self._timer = self._loop.call_later(delay, self._on_timer)

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_timer(self) -> None:
        self._timer = None
        clock = self._clock
        if clock is None or self.transport is None:
            return
        expiry = clock.expired(self.keeper.clock())
        if expiry is None:
            self._rearm()
            return
        self.cut = expiry
        self.keeper.cut(self.source, expiry)
        transport = self.transport
        if expiry.answer_408:
            transport.write(raw_answer(REQUEST_TIMEOUT))
            self.force_close()  # flushes the few bytes above, then closes
        else:
            transport.abort()  # nothing worth flushing, maybe a client that does not read


class Gate(asyncio.Protocol):
    """A plain-HTTP connection just accepted: admitted and handed to a
    :class:`GuardedRequestHandler` at once, or answered 503 and closed."""

    def __init__(
        self, keeper: Gatekeeper, make_handler: Callable[[str], GuardedRequestHandler]
    ) -> None:
        self.keeper = keeper
        self.make_handler = make_handler

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's is not an asyncio.Transport
        peer = transport.get_extra_info("peername")
        source = str(peer[0]) if peer else ""
        refusal = self.keeper.admit(source)
        if refusal is not None:
            transport.write(raw_answer(REFUSED_ANSWER[refusal]))
            transport.close()
            return
        handler = self.make_handler(source)
        # Before the loop reads anything (uvloop starts reading once this returns).
        transport.set_protocol(handler)
        handler.connection_made(transport)


async def accept_tls(
    listener: socket.socket,
    keeper: Gatekeeper,
    make_handler: Callable[[str], GuardedRequestHandler],
    tls: ssl.SSLContext,
) -> None:
    """Accept TLS connections on ``listener`` until cancelled: each is admitted or closed
    before any TLS work, then its handshake runs under ``tls_handshake_timeout``.

    The door accepts these itself, rather than letting the loop's server do the
    handshake, to count and refuse a connection before its handshake and to
    release it when a handshake fails (nothing tells a protocol that).
    """
    loop = asyncio.get_running_loop()
    while True:
        try:
            connection, peer = await loop.sock_accept(listener)
        except OSError as error:  # out of descriptors or buffers: wait, as asyncio's server does
            keeper.refusal_log.warning(keeper.clock(), "cannot accept HTTPS connections: %s",
                                       describe(error))  # fmt: skip
            await asyncio.sleep(ACCEPT_RETRY_DELAY)
            continue
        source = str(peer[0])
        if keeper.admit(source) is not None:
            connection.close()
            continue
        task = asyncio.ensure_future(_handshake(connection, make_handler(source), keeper, tls))
        keeper.handshakes.add(task)
        task.add_done_callback(keeper.handshakes.discard)


async def _handshake(
    connection: socket.socket,
    handler: GuardedRequestHandler,
    keeper: Gatekeeper,
    tls: ssl.SSLContext,
) -> None:
    """The TLS handshake of an admitted connection; the handler takes it over once done."""
    try:
        await asyncio.get_running_loop().connect_accepted_socket(
            lambda: handler, connection, ssl=tls,
            ssl_handshake_timeout=keeper.limits.tls_handshake_timeout,
        )  # fmt: skip
    except (OSError, ssl.SSLError, TimeoutError) as error:  # ConnectionAbortedError: timed out
        handler.release()
        logger.debug("TLS handshake with %s failed: %s", handler.source, describe(error))
    except BaseException:
        handler.release()
        connection.close()
        raise
