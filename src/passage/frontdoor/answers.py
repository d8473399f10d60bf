"""How the front door and its products answer an :class:`~passage.http_errors.HttpError`.

:func:`error_response` is the aiohttp response every product returns for one;
:func:`raw_answer` is the same answer as bytes, for the few moments the front
door writes to a connection itself (a refused connection, a request head that
timed out), with ``Connection: close``.
"""

from __future__ import annotations

from http import HTTPStatus

from aiohttp import web

from passage.http_errors import HttpError, error_body

__all__ = ["error_response", "raw_answer"]


def error_response(error: HttpError) -> web.Response:
    """``error`` as its status, its headers and the JSON error body."""
    return web.json_response(error_body(error), status=error.status, headers=error.headers)


def raw_answer(error: HttpError) -> bytes:
    """``error`` as a whole HTTP/1.1 response that closes the connection."""
    body = error_response(error).body
    assert isinstance(body, bytes)
    head = [
        f"HTTP/1.1 {error.status} {HTTPStatus(error.status).phrase}",
        "Content-Type: application/json; charset=utf-8",
        f"Content-Length: {len(body)}",
        "Connection: close",
        *(f"{name}: {value}" for name, value in error.headers.items()),
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body
