"""Senders: open a WebSocket stream to a hybrid connection's listener, or send it an HTTP request.

Both go to the relay, which pairs them with a listener chosen at random
(reference §2.4, §2.5). A token is needed unless the hybrid connection lets
senders in without one (``passage hc create --no-client-auth``).
"""

from __future__ import annotations

import ssl as ssl_module
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import aiohttp
import yarl

from passage.hybrid.endpoint import RelayEndpoint
from passage.hybrid.sdk.errors import (
    MAX_MESSAGE,
    BodyTooLarge,
    HybridConnectionError,
    handshake_refusal,
)
from passage.hybrid.sdk.http import MAX_BUFFERED_BODY
from passage.hybrid.sdk.stream import HybridStream
from passage.hybrid.sdk.tokens import TokenProvider

__all__ = ["RelayedHttpReply", "connect", "request"]

AUTH_HEADER = "ServiceBusAuthorization"

READ_CHUNK = 64 * 1024
"""Bytes of a response body read at a time."""


async def connect(
    endpoint: RelayEndpoint,
    name: str,
    tokens: TokenProvider | None,
    *,
    suffix: str = "",
    query: Iterable[tuple[str, str]] = (),
    protocols: Iterable[str] = (),
    headers: Mapping[str, str] | None = None,
    ssl: ssl_module.SSLContext | None = None,
    tracking_id: str | None = None,
    max_message: int = MAX_MESSAGE,
) -> HybridStream:
    """A WebSocket stream to a listener of ``name``; close it when done.

    Raises :class:`HybridConnectionError`: 404 when the hybrid connection does
    not exist or has no listener, 401/403 for the token. The stream reads messages
    of at most ``max_message`` bytes (the relay's ``--hc-max-message``); past it,
    :class:`MessageTooLarge`.
    """
    tracking_id = tracking_id or str(uuid.uuid4())
    url = endpoint.connect_url(name, tracking_id, suffix, query)
    sent = dict(headers or {})
    if tokens is not None:
        sent[AUTH_HEADER] = tokens.token(endpoint.resource_uri(name))
    session = aiohttp.ClientSession()
    try:
        websocket = await session.ws_connect(
            yarl.URL(url, encoded=True),
            protocols=tuple(protocols),
            headers=sent,
            ssl=ssl if ssl is not None else True,
            max_msg_size=max_message,
        )
    except aiohttp.WSServerHandshakeError as error:
        await session.close()
        raise handshake_refusal(error.status, error.message) from None
    except (aiohttp.ClientError, OSError) as error:
        await session.close()
        raise HybridConnectionError(0, f"cannot reach {endpoint.base_url}: {error}") from None
    except BaseException:
        await session.close()
        raise
    return HybridStream(
        websocket, tracking_id=tracking_id, session=session, max_message=max_message
    )


@dataclass(frozen=True, slots=True)
class RelayedHttpReply:
    status: int
    reason: str
    headers: Mapping[str, str]
    body: bytes = field(repr=False)


async def request(
    endpoint: RelayEndpoint,
    name: str,
    tokens: TokenProvider | None,
    method: str = "GET",
    *,
    suffix: str = "",
    query: Iterable[tuple[str, str]] = (),
    headers: Mapping[str, str] | None = None,
    body: bytes = b"",
    ssl: ssl_module.SSLContext | None = None,
    session: aiohttp.ClientSession | None = None,
    max_body: int = MAX_BUFFERED_BODY,
) -> RelayedHttpReply:
    """One HTTP request to a listener of ``name``, and its whole response.

    The relay's own errors come back as responses too: 404 (no such hybrid
    connection), 502 (no listener), 504 (no response within 60 s). A response body
    larger than ``max_body`` bytes (16 MiB, as a listener takes a request's) raises
    :class:`BodyTooLarge` without being read whole.
    """
    sent = dict(headers or {})
    if tokens is not None:
        sent[AUTH_HEADER] = tokens.token(endpoint.resource_uri(name))
    url = yarl.URL(endpoint.http_url(name, suffix, query), encoded=True)
    owned = session is None
    client = session or aiohttp.ClientSession()
    try:
        async with client.request(
            method,
            url,
            headers=sent,
            data=body or None,
            ssl=ssl if ssl is not None else True,
            allow_redirects=False,
        ) as answer:
            data = await _read_body(answer, max_body)
            return RelayedHttpReply(answer.status, answer.reason or "", dict(answer.headers), data)
    finally:
        if owned:
            await client.close()


async def _read_body(answer: aiohttp.ClientResponse, limit: int) -> bytes:
    """The whole body, or :class:`BodyTooLarge` as soon as it is known to pass ``limit``
    (its ``Content-Length``, else the bytes read so far, decompressed)."""
    if answer.content_length is not None and answer.content_length > limit:
        raise BodyTooLarge(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in answer.content.iter_chunked(READ_CHUNK):
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)
