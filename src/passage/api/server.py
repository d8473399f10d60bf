"""The management API's aiohttp handler: authenticate, dispatch through the route table,
render ACS errors.

The front door hands :class:`ApiServer` the paths of the route table and every
path nobody else serves, on every listener. Order of checks per request, each failure answered
with the ACS error body: route (404/405), ``api-version`` (400), body size
(413), authentication on the raw request target (401), JSON body (400), then
the handler. Nothing a client sends can produce a 5xx except a bug, which is
logged with its traceback and answered with a generic 500.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from passage.api.call import Auth, Call, Reply
from passage.api.routes import USER_TOKEN_SCOPES, Route, match_route
from passage.api.service import IdentityService
from passage.frontdoor import read_body
from passage.frontdoor.guard import name_route
from passage.http_errors import HttpError, error_body
from passage.hybrid.admin import HybridAdmin
from passage.identity.errors import AuthenticationError
from passage.identity.hmac_auth import verify_request
from passage.identity.keys import AccessKey
from passage.identity.tokens import TokenClaims, verify_token
from passage.live import LiveView
from passage.store.database import is_unavailable
from passage.store.ledger import UsageLedger

__all__ = ["MAX_BODY_BYTES", "ApiServer"]

MAX_BODY_BYTES = 64 * 1024
"""Largest request body accepted; every API body is a small JSON object."""

STORE_RETRY_AFTER = 5
"""Seconds a client is told to wait (``Retry-After``) when the store cannot be reached."""
STORE_UNAVAILABLE = "The store is unreachable for now; retry later."

logger = logging.getLogger("passage.api")


class ApiServer:
    """Answers the route table's requests for one :class:`IdentityService`.

    Registered at the front door for :data:`~passage.api.routes.API_PATHS` and as
    its fallback (a path nobody serves is the API's 404).
    """

    def __init__(
        self,
        service: IdentityService,
        ledger: UsageLedger,
        *,
        hybrid_admin: HybridAdmin | None = None,
        live: LiveView | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.service = service
        self.ledger = ledger
        self.hybrid_admin = hybrid_admin
        self.live = live
        """Set by the app once the products it reads exist."""
        self.clock = clock

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """One API request, answered; every refusal is the ACS error body."""
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
        except Exception as error:
            if is_unavailable(error):  # the store: refused, cut or timed out
                logger.warning("%s %s: the store is unreachable (%s): 503", request.method,
                               request.path, type(error).__name__)  # fmt: skip
                failure = HttpError(503, "StoreUnavailable", STORE_UNAVAILABLE)
                headers = {"Retry-After": str(STORE_RETRY_AFTER)}
                reply = Reply(503, error_body(failure), headers)
            else:
                logger.exception("%s %s failed", request.method, request.path)
                failure = HttpError(
                    500, "InternalError", "The server failed to process the request."
                )
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
        name_route(request, route.operation_id)
        _check_api_version(route, request)
        body = await read_body(request, MAX_BODY_BYTES)
        if body is None:
            raise HttpError(413, "RequestEntityTooLarge", "Request Entity Too Large")
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
            live=self.live,
        )
        return await route.handler(call)

    async def call_as(
        self,
        key: AccessKey,
        method: str,
        path: str,
        query: Mapping[str, str],
        body: Mapping[str, object],
        client_ip: str | None,
    ) -> Reply:
        """One operation of the route table on behalf of ``key``, for a caller that has
        already proved it holds the key (the console's session): the same route,
        ``api-version`` check and handler as a signed request; a refusal is the ACS body."""
        try:
            route, params = match_route(method, path)
            if route.api_versions is not None:
                version = query.get("api-version")
                if version not in route.api_versions:
                    raise HttpError(400, "UnsupportedApiVersion", f"api-version {version!r}.")
            call = Call(
                service=self.service,
                ledger=self.ledger,
                key=key,
                user=None,
                params=params,
                query=query,
                body=body,
                client_ip=client_ip,
                hybrid=self.hybrid_admin,
                live=self.live,
            )
            return await route.handler(call)
        except HttpError as error:
            return Reply(error.status, error_body(error), error.headers)

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
