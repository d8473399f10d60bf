"""HTTP bodies through the relay as they come, both ways, never held whole.

A request whose body is small and of known length goes inline on the control
channel; any other (large, chunked, slow) goes by rendezvous (reference §2.5):
the listener opens the request's address, gets the ``request`` head and then
the body as one binary message, frame by frame as the sender sends it. The
response comes back the same way and is written to the sender as it arrives
(chunked when it streams). Back-pressure runs end to end: a slow sender or
listener stops the relay reading the other side, so a transfer takes at most
a window of memory whatever its size (:mod:`passage.hybrid.framesocket`).

A body cut anywhere stays cut: a listener whose response ends before its last
frame, or that goes quiet for ``idle`` seconds inside it, makes the relay drop
the sender's connection (no clean end of a chunked body); a sender that breaks
its upload off makes the relay drop the rendezvous, so the listener (and the
service behind it) sees the cut too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from passage.frontdoor.server import CLIENT_FAILURES
from passage.hybrid.aio.channel import (
    Body,
    HttpExchange,
    InvalidResponse,
    ListenerGone,
    SenderGone,
)
from passage.hybrid.aio.upgrade import upgrade
from passage.hybrid.control import HOP_BY_HOP, ControlMessageError, ResponseHead
from passage.hybrid.control import parse_listener_message as parse_listener
from passage.hybrid.framesocket import FRAME, BodyBroken, FrameSocket

__all__ = ["request_body", "send_response", "serve_rendezvous", "wait_for_response"]

logger = logging.getLogger("passage.relay")


async def request_body(
    request: web.Request, exchange: HttpExchange, clock: Callable[[], float]
) -> AsyncIterator[bytes]:
    """The sender's body as it arrives; :class:`BodyBroken` if the sender breaks it off."""
    try:
        async for chunk in request.content.iter_chunked(FRAME):
            exchange.last_upload = clock()
            if exchange.traffic is not None:
                exchange.traffic.to_listener += len(chunk)
            yield chunk
    except CLIENT_FAILURES:
        raise BodyBroken("the sender broke its request body off") from None
    exchange.last_upload = clock()


async def wait_for_response(
    exchange: HttpExchange, deadline: float, clock: Callable[[], float]
) -> tuple[ResponseHead, Body]:
    """The listener's response head, within ``deadline`` s of the request body's last move
    (a long upload is not a silent listener); :class:`TimeoutError` past it."""
    while True:
        wait = exchange.last_upload + deadline - clock()
        if wait <= 0:
            raise TimeoutError
        with contextlib.suppress(TimeoutError):
            return await asyncio.wait_for(asyncio.shield(exchange.response), min(wait, deadline))


async def serve_rendezvous(request: web.Request, exchange: HttpExchange) -> web.StreamResponse:
    """The listener at a request's rendezvous address: the request (head, then body as it
    comes) unless it had it inline, then its response, handed to the sender's side as a
    stream; returns once the sender's side is done with it."""
    socket, response = await upgrade(request)
    upload: asyncio.Task[None] | None = None
    try:
        if not exchange.sent:
            exchange.sent = True
            await socket.send_text(exchange.head)
            if exchange.body is not None:
                upload = asyncio.create_task(_upload(socket, exchange, exchange.body))
        await _read_response(socket, exchange)
        await exchange.finished.wait()
    except (ConnectionError, BodyBroken) as error:
        exchange.fail(ListenerGone(str(error)))
    finally:
        if upload is not None:
            upload.cancel()
            await asyncio.gather(upload, return_exceptions=True)
        if exchange.relayed:
            await socket.close()
        else:  # the listener (and its service) must see the response was not taken
            socket.abort()
    return response


async def _upload(socket: FrameSocket, exchange: HttpExchange, body: Body) -> None:
    try:
        await socket.send_body(body)
    except BodyBroken:
        exchange.fail(SenderGone())
        socket.abort()
    except ConnectionError:
        pass  # the listener went; the response side finds out


async def _read_response(socket: FrameSocket, exchange: HttpExchange) -> None:
    text = await socket.receive_text()
    if text is None:
        exchange.fail(ListenerGone("the rendezvous closed before a response"))
        return
    try:
        head = parse_listener(text)
    except ControlMessageError as error:
        exchange.fail(InvalidResponse(str(error)))
        return
    if not isinstance(head, ResponseHead) or head.request_id != exchange.request_id:
        exchange.fail(InvalidResponse("the rendezvous carried no response to this request"))
        return
    exchange.complete(head, socket.receive_body() if head.has_body else b"")


async def send_response(
    request: web.Request, exchange: HttpExchange, head: ResponseHead, body: Body, idle: float
) -> web.StreamResponse:
    """The listener's response to the sender: whole, or streamed as it comes."""
    try:
        if isinstance(body, bytes):
            answer = _whole_response(request, head, body)
            if exchange.traffic is not None:
                exchange.traffic.to_sender += len(body)
            exchange.relayed = True
            return answer
        return await _stream_response(request, exchange, head, body, idle)
    finally:
        exchange.finished.set()


def _headers(request: web.Request, head: ResponseHead) -> dict[str, str]:
    headers = {
        name: value for name, value in head.headers.items() if name.lower() not in HOP_BY_HOP
    }
    via = headers.get("Via") or headers.pop("via", "")
    headers["Via"] = f"{via}, 1.1 {request.host}" if via else f"1.1 {request.host}"
    return headers


def _no_body(request: web.Request, head: ResponseHead) -> bool:
    return request.method == "HEAD" or head.status in (204, 304) or head.status < 200


def _reason(head: ResponseHead) -> str | None:
    return " ".join(head.description.split()) or None


def _whole_response(request: web.Request, head: ResponseHead, body: bytes) -> web.Response:
    return web.Response(
        status=head.status, reason=_reason(head), headers=_headers(request, head),
        body=None if _no_body(request, head) else body,
    )  # fmt: skip


async def _stream_response(
    request: web.Request,
    exchange: HttpExchange,
    head: ResponseHead,
    body: AsyncIterator[bytes],
    idle: float,
) -> web.StreamResponse:
    answer = web.StreamResponse(status=head.status, reason=_reason(head))
    answer.headers.update(_headers(request, head))
    if _no_body(request, head):
        await answer.prepare(request)
        exchange.relayed = True  # a body after HEAD/204/304 is not relayed, not cut
        return answer
    if request.version >= (1, 1):
        answer.enable_chunked_encoding()
    else:
        answer.force_close()  # HTTP/1.0: the body ends where the connection does
    await answer.prepare(request)
    try:
        while True:
            chunk = await asyncio.wait_for(anext(body, None), idle)
            if chunk is None:
                break
            await answer.write(chunk)
            if exchange.traffic is not None:
                exchange.traffic.to_sender += len(chunk)
        await answer.write_eof()
        exchange.relayed = True
    except (BodyBroken, TimeoutError) as error:
        logger.info("a listener's response to %s was cut: %s", request.path, error or "idle")
        _drop(request)
    except ConnectionError:  # the sender went; the rendezvous is dropped behind it
        _drop(request)
    return answer


def _drop(request: web.Request) -> None:
    """Cut the sender's connection: no chunked terminator, so a cut body never looks whole."""
    if request.transport is not None:
        request.transport.abort()
