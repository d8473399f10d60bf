"""The aiohttp adapter: authenticate, dispatch through the route table, render ACS errors.

One :class:`ApiServer` serves every listener (the HTTPS API port and the
optional plain-HTTP port). Order of checks per request, each failure answered
with the ACS error body: route (404/405), ``api-version`` (400), body size
(413), authentication on the raw request target (401), JSON body (400), then
the handler. Nothing a client sends can produce a 5xx except a bug, which is
logged with its traceback and answered with a generic 500.
"""

from __future__ import annotations

import json
import logging
import ssl
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from passage.addresses import Address
from passage.api.call import Auth, Call, Reply
from passage.api.routes import ROUTES, USER_TOKEN_SCOPES, Route, match_route
from passage.api.service import IdentityService
from passage.http_errors import HttpError, error_body
from passage.hybrid.admin import HybridAdmin
from passage.hybrid.aio.relay import HC_PREFIX, HybridRelay
from passage.identity.errors import AuthenticationError
from passage.identity.hmac_auth import verify_request
from passage.identity.keys import AccessKey
from passage.identity.tokens import TokenClaims, verify_token
from passage.signal.aio import SignalingServer, is_signal_path
from passage.store.ledger import UsageLedger

__all__ = ["MAX_BODY_BYTES", "ApiServer"]

MAX_BODY_BYTES = 64 * 1024
"""Largest request body accepted; every API body is a small JSON object."""

logger = logging.getLogger("passage.api")


class ApiServer:
    """Serves the route table for one :class:`IdentityService`."""

    def __init__(
        self,
        service: IdentityService,
        ledger: UsageLedger,
        *,
        relay: HybridRelay | None = None,
        hybrid_admin: HybridAdmin | None = None,
        signaling: SignalingServer | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.service = service
        self.ledger = ledger
        self.relay = relay
        self.hybrid_admin = hybrid_admin
        self.signaling = signaling
        self.clock = clock
        self.app = web.Application(client_max_size=MAX_BODY_BYTES)
        # Every path, even one whose decoded form holds a newline ("." would not match it).
        self.app.router.add_route("*", r"/{tail:[\s\S]*}", self._handle)
        self._runner: web.AppRunner | None = None

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
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if self.signaling is not None and is_signal_path(request.path):
            return await self._signal(self.signaling, request)
        if self.relay is not None:
            relayed = await self._relay(self.relay, request)
            if relayed is not None:
                return relayed
        return await self._api(request)

    async def _signal(self, signaling: SignalingServer, request: web.Request) -> web.StreamResponse:
        """``/signal/{room}``: before the relay, so no hybrid connection can shadow it."""
        try:
            return await signaling.websocket(request)
        except Exception:
            logger.exception("signal %s failed", request.path)
            failure = HttpError(500, "InternalError", "Signaling failed to process the request.")
            return web.json_response(error_body(failure), status=500)

    async def _relay(self, relay: HybridRelay, request: web.Request) -> web.StreamResponse | None:
        """The relay's answer for ``/$hc/...`` and hybrid connection paths; None for the API.

        API routes win over a hybrid connection of the same name.
        """
        path = request.path
        try:
            if path.startswith(HC_PREFIX):
                return await relay.websocket(request)
            if any(route.pattern.fullmatch(path) for route in ROUTES):
                return None
            resolved = relay.resolve(path.lstrip("/"))
            return await relay.http(request, resolved) if resolved is not None else None
        except Exception:
            logger.exception("relay %s %s failed", request.method, path)
            failure = HttpError(500, "InternalError", "The relay failed to process the request.")
            return web.json_response(error_body(failure), status=500)

    async def _api(self, request: web.Request) -> web.StreamResponse:
        started = time.monotonic()
        try:
            reply = await self._dispatch(request)
        except HttpError as error:
            reply = Reply(error.status, error_body(error), error.headers)
            level = logging.INFO if error.status in (401, 403) else logging.DEBUG
            logger.log(
                level,
                "%s %s from %s: %d %s",
                request.method,
                request.path,
                request.remote,
                error.status,
                error.message,
            )
        except web.HTTPException as error:  # the body was too large, the request malformed
            code = error.reason.title().replace(" ", "")  # "RequestEntityTooLarge", like ours
            reply = Reply(error.status, error_body(HttpError(error.status, code, error.reason)))
        except Exception:
            logger.exception("%s %s failed", request.method, request.path)
            failure = HttpError(500, "InternalError", "The server failed to process the request.")
            reply = Reply(500, error_body(failure))
        logger.debug(
            "%s %s %d in %.1f ms",
            request.method,
            request.path,
            reply.status,
            (time.monotonic() - started) * 1000,
        )
        return _render(reply, request)

    async def _dispatch(self, request: web.Request) -> Reply:
        path = "/" + request.path.lstrip("/")
        route, params = match_route(request.method, path)
        _check_api_version(route, request)
        body = await request.read()
        key, user = self._authenticate(route, request, body)
        call = Call(
            service=self.service,
            ledger=self.ledger,
            key=key,
            user=user,
            params=params,
            query={name: request.query[name] for name in request.query},
            body=_json_object(body),
            client_ip=request.remote,
            hybrid=self.hybrid_admin,
        )
        return await route.handler(call)

    def _authenticate(
        self, route: Route, request: web.Request, body: bytes
    ) -> tuple[AccessKey | None, TokenClaims | None]:
        if route.auth is Auth.NONE:
            return None, None
        authorization = request.headers.get("Authorization", "")
        state = self.service.state
        if route.auth is Auth.HMAC_OR_USER_TOKEN and authorization[:7].lower() == "bearer ":
            claims = verify_token(
                authorization[7:].strip(), state.keys, state.revocations, now=self.clock()
            )
            if not USER_TOKEN_SCOPES.intersection(claims.scopes):
                raise HttpError(403, "Forbidden", "The access token has no voip scope.")
            key = state.keys.by_id(claims.key_id)
            if key is None:  # rotated between the two look-ups
                raise AuthenticationError("The access token was not issued with a current key.")
            return key, claims
        key = verify_request(
            method=request.method,
            raw_target=request.raw_path,
            host=request.host,
            scheme=request.scheme,
            headers=request.headers,
            body=body,
            keys=state.keys,
            now=self.clock(),
        )
        return key, None


def _check_api_version(route: Route, request: web.Request) -> None:
    if route.api_versions is None:
        return
    version = request.query.get("api-version")
    if version is None:
        raise HttpError(
            400, "MissingApiVersionParameter", "The api-version query parameter is required."
        )
    if version not in route.api_versions:
        raise HttpError(
            400,
            "UnsupportedApiVersion",
            f"The HTTP resource that matches the request URI does not support the API version "
            f"'{version}'. Supported: {', '.join(route.api_versions)}.",
        )


def _json_object(body: bytes) -> dict[str, Any]:
    """The request's JSON object; an empty body is ``{}`` (``create_user`` sends none)."""
    if not body.strip():
        return {}
    try:
        value = json.loads(body, parse_float=_json_number)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: [[[[...
        raise HttpError(400, "InvalidRequest", "The request body is not valid JSON.") from None
    if not isinstance(value, dict):
        raise HttpError(400, "InvalidRequest", "The request body must be a JSON object.")
    return value


def _json_number(text: str) -> int | float:
    """``60.0`` or ``6e1`` is the integer 60: JSON has one number type, and JSON Schema's
    ``integer`` (which ``/openapi.json`` promises) is any number without a fraction."""
    number = float(text)
    return int(number) if number.is_integer() else number


def _render(reply: Reply, request: web.Request) -> web.Response:
    headers = dict(reply.headers)
    request_id = request.headers.get("x-ms-client-request-id")
    if request_id is not None and len(request_id) <= 200:
        headers["x-ms-client-request-id"] = request_id
    if reply.text is not None:
        return web.Response(status=reply.status, text=reply.text, headers=headers)
    if reply.body is None:
        return web.Response(status=reply.status, headers=headers)
    return web.json_response(reply.body, status=reply.status, headers=headers)
