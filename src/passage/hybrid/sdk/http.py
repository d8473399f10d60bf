"""HTTP requests a listener serves: what a handler receives and returns, and a forwarder.

The relay hands a listener each HTTP request with its method, target
(``/{hybrid connection}{suffix}?{query}``, ``sb-hc-*`` removed), headers
(hop-by-hop and relay tokens removed) and body (reference §2.5). A handler
answers with a :class:`RelayedResponse`, whose body may be bytes or an async
iterable of them, sent as it comes. A handler gets the request body whole in
``body`` (up to :data:`MAX_BUFFERED_BODY`, else the sender gets 413), unless
it says ``streams_bodies = True``: then it reads ``content`` as it arrives,
any size. :class:`ForwardingHandler` streams both ways: it makes the same
request to a local HTTP service, the way ``passage expose --http`` does, and
relays the answer as the service sends it, never holding a body whole.
"""

from __future__ import annotations

import http
import logging
import ssl as ssl_module
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field

import aiohttp
import yarl

from passage.hybrid.control import HOP_BY_HOP

__all__ = [
    "ForwardingHandler",
    "MAX_BUFFERED_BODY",
    "HttpHandler",
    "RelayedRequest",
    "RelayedResponse",
    "local_target",
    "response_for_relay",
]

logger = logging.getLogger("passage.hybrid.sdk")

RESERVED_STATUSES = frozenset({502, 504})
"""The relay's own answers (no listener, no response in time); a listener may not send them."""

MAX_BUFFERED_BODY = 16 * 1024 * 1024
"""Largest request body a handler that does not stream gets whole (else 413)."""


@dataclass(frozen=True, slots=True)
class RelayedRequest:
    request_id: str
    method: str
    target: str
    """The request-target the sender used: ``/{hybrid connection}{suffix}[?query]``."""
    path: str
    """``target`` without the hybrid connection's name: what a local service is asked for."""
    headers: Mapping[str, str]
    body: bytes
    """The whole body; empty when it is in :attr:`content` (a handler that streams)."""
    remote: tuple[str, int] | None = None
    content: AsyncIterator[bytes] | None = None
    """For a handler with ``streams_bodies = True``: the body as it arrives (read it once);
    None when the request has none. A sender that breaks it off raises ``ConnectionError``."""


@dataclass(frozen=True, slots=True)
class RelayedResponse:
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | AsyncIterable[bytes] = b""
    """The whole body, or an async iterable sent as it yields; if it raises, the sender's
    connection is cut (a short body never passes as whole)."""
    reason: str = ""
    """The status description; empty: the standard phrase."""


HttpHandler = Callable[[RelayedRequest], Awaitable[RelayedResponse]]


def local_target(target: str, name: str) -> str:
    """``target`` with the leading ``/{name}`` removed (compared case-insensitively)."""
    prefix = "/" + name.strip("/")
    if target.lower().startswith(prefix.lower()) and target[len(prefix) : len(prefix) + 1] in (
        "",
        "/",
        "?",
    ):
        rest = target[len(prefix) :]
        return rest if rest.startswith("/") else "/" + rest
    return target


def response_for_relay(response: RelayedResponse, method: str) -> RelayedResponse:
    """What may go back through the relay: no 502/504 (they are the relay's own,
    reference §2.3; sent as 500 with the original in ``x-passage-upstream-status``),
    no hop-by-hop headers, no body for HEAD, 204 or 304, a reason phrase always."""
    status, headers = response.status, dict(response.headers)
    if status in RESERVED_STATUSES:
        headers["x-passage-upstream-status"] = str(status)
        status = 500
    headers = {name: value for name, value in headers.items() if name.lower() not in HOP_BY_HOP}
    no_body = method.upper() == "HEAD" or status in (204, 304) or status < 200
    reason = response.reason if response.status == status and response.reason else _phrase(status)
    return RelayedResponse(status, headers, b"" if no_body else response.body, reason)


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


class ForwardingHandler:
    """Answers each relayed request by making it to ``base_url`` (``http://127.0.0.1:8080``).

    The path the local service sees is the sender's, without the hybrid
    connection's name; the client's address goes in ``X-Forwarded-For``. Both
    bodies stream: the request's goes to the service as it arrives, the
    service's answer back as it comes, any size, with back-pressure both
    ways; a sender that goes away mid-body closes the connection to the
    service. ``timeout`` bounds connecting and each wait for the service's
    next bytes, not a whole transfer. A local service that cannot be reached
    gives the sender 503. A :class:`HybridConnectionListener` closes the
    handler it was given when it closes (any handler with an ``aclose()``), so
    no session is left open.
    """

    streams_bodies = True
    """It reads ``RelayedRequest.content`` as it arrives (see :class:`RelayedRequest`)."""

    def __init__(
        self,
        base_url: str,
        *,
        ssl: ssl_module.SSLContext | None = None,
        timeout: float = 55.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._ssl: ssl_module.SSLContext | bool = ssl if ssl is not None else True
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeout, sock_read=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def __call__(self, request: RelayedRequest) -> RelayedResponse:
        if self._session is None:
            # Bodies pass through as the service encoded them (no gunzip on the way).
            self._session = aiohttp.ClientSession(auto_decompress=False, timeout=self._timeout)
        headers = {
            name: value for name, value in request.headers.items() if name.lower() not in HOP_BY_HOP
        }
        if request.remote is not None:
            headers["X-Forwarded-For"] = request.remote[0]
        url = yarl.URL(self.base_url + request.path, encoded=True)
        data = request.content if request.content is not None else (request.body or None)
        try:
            answer = await self._session.request(
                request.method,
                url,
                headers=headers,
                data=data,
                allow_redirects=False,
                ssl=self._ssl,
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
            )
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            logger.warning("could not reach %s: %s", self.base_url, error or type(error).__name__)
            return _error(503, "the service behind this hybrid connection is unreachable")
        return RelayedResponse(
            answer.status, _joined(answer.headers.items()), _body_of(answer), answer.reason or ""
        )

    @property
    def closed(self) -> bool:
        """True while it holds no HTTP session (before the first request, after ``aclose``)."""
        return self._session is None

    async def aclose(self) -> None:
        """Close its HTTP session; the listener it was given to does this when it closes."""
        if self._session is not None:
            await self._session.close()
            self._session = None


async def _body_of(answer: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    """The service's body as it comes. Stopped early (the sender went), it closes the
    connection, so the service sees the disconnect; cut by the service, it raises, so
    the listener cuts the relay's copy too."""
    whole = False
    try:
        async for chunk in answer.content.iter_any():
            yield chunk
        whole = True
    except (aiohttp.ClientError, TimeoutError) as error:
        raise ConnectionResetError(f"the local service's body was cut: {error}") from None
    finally:
        if whole:
            answer.release()
        else:
            answer.close()


def _joined(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Headers as one dict; a repeated header's values joined with ``, ``."""
    joined: dict[str, str] = {}
    for name, value in items:
        joined[name] = f"{joined[name]}, {value}" if name in joined else value
    return joined


def _error(status: int, message: str) -> RelayedResponse:
    return RelayedResponse(status, {"Content-Type": "text/plain; charset=utf-8"}, message.encode())
