"""The front door's aiohttp server: every HTTP listener of this node, one router behind them.

:class:`FrontDoor` serves every path of every listener (the HTTPS API port,
the optional plain-HTTP port) through one :class:`~.routes.Router`. It knows
no product: a failure a product did not answer itself is logged with its
traceback and answered 500 with the JSON error body, in the product's name;
a client that breaks off or sends a malformed request costs one WARNING line
(rate limited) and gets the JSON error if it is still there to read it.
Each connection is admitted, timed and capped by :mod:`.guard` under the
door's :class:`~passage.http_limits.HttpLimits`.
:func:`~.answers.error_response` and :func:`read_body` are what every product
uses to answer an :class:`~passage.http_errors.HttpError` and to read a
bounded body.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from passage.addresses import Address
from passage.frontdoor.answers import error_response
from passage.frontdoor.guard import (
    Descriptors,
    Gate,
    Gatekeeper,
    GuardedRequestHandler,
    accept_tls,
    client_error,
    describe,
)
from passage.frontdoor.routes import Handler, Paths, Prefix, Resolver, Router
from passage.http_errors import HttpError
from passage.http_limits import HttpLimits

__all__ = ["FrontDoor", "IncompleteBody", "read_body"]

logger = logging.getLogger("passage.frontdoor")

BACKLOG = 128
"""Connections the kernel queues for each listener before the door accepts them."""

CLIENT_FAILURES = (ConnectionError, RequestPayloadError, HttpProcessingError,
                   asyncio.IncompleteReadError)  # fmt: skip
"""What reading from a client raises when the client, not the server, broke something."""


class IncompleteBody(HttpError):
    """The client broke its request body off, or sent one that is not valid HTTP framing."""

    def __init__(self) -> None:
        super().__init__(400, "IncompleteBody", "The request body was cut off or malformed.")


async def read_body(request: web.Request, limit: int) -> bytes | None:
    """The whole request body, or None once it passes ``limit`` bytes (read no further).

    Raises :class:`IncompleteBody` (400) if the client breaks it off or frames it
    wrongly; that costs one WARNING line, not a traceback.
    """
    body = bytearray()
    try:
        async for chunk in request.content.iter_chunked(64 * 1024):
            body += chunk
            if len(body) > limit:
                return None
    except CLIENT_FAILURES as error:
        client_error(request, f"request body broken off ({describe(error)})")
        raise IncompleteBody() from None
    return bytes(body)


class FrontDoor:
    """The HTTP(S) listeners of this node and the router that picks a product per request."""

    def __init__(
        self,
        router: Router | None = None,
        *,
        limits: HttpLimits | None = None,
        descriptors: Descriptors | None = None,
        access_log: bool = False,
    ) -> None:
        """``access_log``: one INFO line per answered request on ``passage.access``."""
        self.router = router if router is not None else Router()
        self.limits = limits if limits is not None else HttpLimits()
        self.keeper = Gatekeeper(self.limits, descriptors=descriptors, access_log=access_log)
        """Counts, refusals and timeouts of every connection (``keeper.refused`` by reason)."""
        self.app = web.Application()
        # Every path, even one whose decoded form holds a newline ("." would not match it).
        self.app.router.add_route("*", r"/{tail:[\s\S]*}", self._handle)
        self._runner: web.AppRunner | None = None
        self._servers: list[asyncio.Server] = []
        """Plain-HTTP listeners."""
        self._listeners: list[socket.socket] = []
        """TLS listeners, each with its accepting task."""
        self._accepting: list[asyncio.Task[None]] = []

    def add(self, claim: Prefix | Paths, handler: Handler) -> None:
        self.router.add(claim, handler)

    def add_resolver(self, claim: Resolver, resolve: Callable[[str], Handler | None]) -> None:
        self.router.add_resolver(claim, resolve)

    def set_fallback(self, owner: str, handler: Handler) -> None:
        self.router.set_fallback(owner, handler)

    @property
    def reserved_names(self) -> Mapping[str, str]:
        return self.router.reserved_names

    async def listen(self, ip: str, port: int, tls: ssl.SSLContext | None) -> Address:
        """Start serving on ``ip:port`` (TLS when ``tls`` is given); the bound address."""
        runner = self._runner
        if runner is None:
            runner = self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
            await runner.setup()
        if tls is None:
            server = await asyncio.get_running_loop().create_server(
                lambda: Gate(self.keeper, self._handler_for),
                ip, port, reuse_address=True, backlog=BACKLOG,
            )  # fmt: skip
            self._servers.append(server)
            name = server.sockets[0].getsockname()
        else:
            family = socket.AF_INET6 if ":" in ip else socket.AF_INET
            listener = socket.create_server((ip, port), family=family, backlog=BACKLOG)
            listener.setblocking(False)
            self._listeners.append(listener)
            self._accepting.append(
                asyncio.ensure_future(accept_tls(listener, self.keeper, self._handler_for, tls))
            )
            name = listener.getsockname()
        return (str(name[0]), int(name[1]))

    async def stop(self) -> None:
        """Stop every listener; requests in progress are cut."""
        for server in self._servers:
            server.close()
        self._servers.clear()
        for accepting in self._accepting:
            accepting.cancel()
        await asyncio.gather(*self._accepting, return_exceptions=True)
        self._accepting.clear()
        for listener in self._listeners:
            listener.close()
        self._listeners.clear()
        for handshake in list(self.keeper.handshakes):
            handshake.cancel()
        if self.keeper.handshakes:
            await asyncio.wait(list(self.keeper.handshakes))
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _handler_for(self, source: str) -> GuardedRequestHandler:
        """aiohttp's request handler for an admitted connection from ``source``."""
        runner = self._runner
        assert runner is not None and runner.server is not None
        limits = self.limits
        return GuardedRequestHandler(
            runner.server,
            self.keeper,
            source,
            loop=asyncio.get_running_loop(),
            access_log=None,
            # Our timers close first; aiohttp's keep-alive timer stays as a backstop.
            keepalive_timeout=limits.idle_timeout + limits.request_head_timeout,
            lingering_time=limits.body_timeout,
            max_line_size=limits.max_request_line,
            max_field_size=limits.max_header_size,
            max_headers=limits.max_headers,
        )

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        owner, handler = self.router.route(request.path)
        protocol: Any = request.protocol
        if isinstance(protocol, GuardedRequestHandler):
            protocol.request_started(request.content, route_label(owner))
        try:
            return await handler(request)
        except web.HTTPException:
            raise  # aiohttp's own answer (a WebSocket handshake it refused, say)
        except HttpError as error:
            return error_response(error)
        except CLIENT_FAILURES as error:
            client_error(request, f"went away during {request.method} ({describe(error)})")
            return error_response(HttpError(400, "ClientGone", "The connection broke off."))
        except Exception:
            logger.exception("%s %s failed (%s)", request.method, request.path, owner)
            message = f"{owner[:1].upper()}{owner[1:]} failed to process the request."
            return error_response(HttpError(500, "InternalError", message))


def route_label(owner: str) -> str:
    """A product's name as requests are counted under it: ``the relay`` → ``relay``."""
    name = owner.removeprefix("the ").strip().lower()
    return "_".join(name.split()) or "unnamed"
