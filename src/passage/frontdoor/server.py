"""The front door's aiohttp server: every HTTP listener of this node, one router behind them.

:class:`FrontDoor` serves every path of every listener (the HTTPS API port,
the optional plain-HTTP port) through one :class:`~.routes.Router`. It knows
no product: a failure a product did not answer itself is logged with its
traceback and answered 500 with the JSON error body, in the product's name.
:func:`error_response` and :func:`read_body` are what every product uses to
answer an :class:`~passage.http_errors.HttpError` and to read a bounded body.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from passage.addresses import Address
from passage.frontdoor.routes import Handler, Paths, Prefix, Resolver, Router
from passage.http_errors import HttpError, error_body

__all__ = ["FrontDoor", "error_response", "read_body"]

logger = logging.getLogger("passage.frontdoor")


def error_response(error: HttpError) -> web.Response:
    """``error`` as its status, its headers and the JSON error body."""
    return web.json_response(error_body(error), status=error.status, headers=error.headers)


async def read_body(request: web.Request, limit: int) -> bytes | None:
    """The whole request body, or None once it passes ``limit`` bytes (read no further)."""
    body = bytearray()
    async for chunk in request.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


class FrontDoor:
    """The HTTP(S) listeners of this node and the router that picks a product per request."""

    def __init__(self, router: Router | None = None) -> None:
        self.router = router if router is not None else Router()
        self.app = web.Application()
        # Every path, even one whose decoded form holds a newline ("." would not match it).
        self.app.router.add_route("*", r"/{tail:[\s\S]*}", self._handle)
        self._runner: web.AppRunner | None = None

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
        if self._runner is None:
            self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
            await self._runner.setup()
        site = web.TCPSite(self._runner, ip, port, ssl_context=tls, reuse_address=True)
        await site.start()
        server: Any = site._server  # aiohttp keeps the asyncio server private
        name = server.sockets[0].getsockname()
        return (str(name[0]), int(name[1]))

    async def stop(self) -> None:
        """Stop every listener; requests in progress are cut."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        owner, handler = self.router.route(request.path)
        try:
            return await handler(request)
        except Exception:
            logger.exception("%s %s failed (%s)", request.method, request.path, owner)
            message = f"{owner[:1].upper()}{owner[1:]} failed to process the request."
            return error_response(HttpError(500, "InternalError", message))
