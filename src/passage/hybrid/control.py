"""The JSON control messages of the Hybrid Connections protocol, and what goes in them.

Service → listener: ``accept`` (a WebSocket sender waits at ``address``) and
``request`` (an HTTP request; with ``method`` and ``body`` inline, or only
``address`` and ``id`` when it must be fetched over a rendezvous socket).
Listener → service: ``response`` and ``renewToken``. Each is one JSON object
in one text message; an HTTP body is exactly one binary message right after
its JSON (reference §2.3, §2.5), a rule :mod:`passage.hybrid.framing` keeps
for both ends. Both sides are here: the relay builds the first two and reads
the others, the listener SDK the reverse.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

__all__ = [
    "HOP_BY_HOP",
    "INLINE_LIMIT",
    "Accept",
    "ControlMessageError",
    "RenewToken",
    "RequestHead",
    "ResponseHead",
    "accept_message",
    "forwarded_headers",
    "parse_listener_message",
    "parse_service_message",
    "renew_token_message",
    "request_message",
    "response_message",
    "response_request_id",
    "strip_relay_query",
]

INLINE_LIMIT = 64 * 1024
"""Largest request (JSON plus body) sent on the control channel; larger goes by rendezvous."""

HOP_BY_HOP = frozenset(
    {"connection", "content-length", "host", "te", "trailer", "transfer-encoding", "upgrade",
     "close", "keep-alive", "proxy-connection"}
)  # fmt: skip
"""RFC 7230 connection headers, never forwarded in either direction."""

RELAY_AUTH_HEADERS = frozenset({"servicebusauthorization"})


class ControlMessageError(ValueError):
    """A listener sent something that is not a control message we understand."""


@dataclass(frozen=True, slots=True)
class ResponseHead:
    request_id: str
    status: int
    description: str
    headers: Mapping[str, str]
    has_body: bool


@dataclass(frozen=True, slots=True)
class RenewToken:
    token: str


def _dump(message: object) -> str:
    return json.dumps(message, separators=(",", ":"))


def strip_relay_query(query: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The query without ``sb-hc-*`` parameters, which belong to the relay, not the app."""
    return [(name, value) for name, value in query if not name.lower().startswith("sb-hc-")]


def forwarded_headers(
    headers: Iterable[tuple[str, str]], *, strip_authorization: bool
) -> dict[str, str]:
    """Headers a listener sees: no hop-by-hop, no relay token (nor ``Authorization``
    when it carried the relay token). Repeated headers are joined with ``,``."""
    kept: dict[str, str] = {}
    for name, value in headers:
        lower = name.lower()
        if lower in HOP_BY_HOP or lower in RELAY_AUTH_HEADERS:
            continue
        if strip_authorization and lower == "authorization":
            continue
        kept[name] = f"{kept[name]},{value}" if name in kept else value
    return kept


def accept_message(
    address: str,
    rendezvous_id: str,
    connect_headers: Mapping[str, str],
    remote: tuple[str, int] | None,
) -> str:
    accept: dict[str, object] = {
        "address": address,
        "id": rendezvous_id,
        "connectHeaders": dict(connect_headers),
    }
    if remote is not None:
        accept["remoteEndpoint"] = {"address": remote[0], "port": remote[1]}
    return _dump({"accept": accept})


def request_message(
    *,
    address: str,
    request_id: str,
    target: str | None = None,
    method: str | None = None,
    headers: Mapping[str, str] | None = None,
    remote: tuple[str, int] | None = None,
    has_body: bool = False,
) -> str:
    """A ``request``; without ``method`` it is the rendezvous-only form ``{address, id}``.

    hyco-https tells the two apart by ``method``, .NET by ``body``: the short
    form must carry neither.
    """
    request: dict[str, object] = {"address": address, "id": request_id}
    if method is not None:
        request["requestTarget"] = target or "/"
        request["method"] = method
        if remote is not None:
            request["remoteEndpoint"] = {"address": remote[0], "port": remote[1]}
        request["requestHeaders"] = dict(headers or {})
        request["body"] = has_body
    return _dump({"request": request})


def parse_listener_message(text: str) -> ResponseHead | RenewToken | None:
    """A listener's text message; None for a command we do not know (ignored, §4.5).

    Raises :class:`ControlMessageError` for text that is not a JSON object, or a
    ``response``/``renewToken`` missing what it needs.
    """
    message = _object(text)
    if "response" in message:
        return _response(message["response"])
    if "renewToken" in message:
        renew = message["renewToken"]
        token = renew.get("token") if isinstance(renew, dict) else None
        if not isinstance(token, str):
            raise ControlMessageError("renewToken without a token")
        return RenewToken(token)
    return None


def response_request_id(text: str) -> str | None:
    """The ``requestId`` of a ``response``, even one :func:`parse_listener_message` refuses,
    so its sender can be told at once rather than left waiting."""
    try:
        message = json.loads(text)
    except (ValueError, RecursionError):
        return None
    response = message.get("response") if isinstance(message, dict) else None
    request_id = response.get("requestId") if isinstance(response, dict) else None
    return request_id if isinstance(request_id, str) else None


def _response(response: object) -> ResponseHead:
    if not isinstance(response, dict):
        raise ControlMessageError("response is not an object")
    request_id = response.get("requestId")
    status = _status(response.get("statusCode"))
    headers = response.get("responseHeaders") or {}
    if not isinstance(request_id, str) or not isinstance(headers, dict):
        raise ControlMessageError("response without requestId or with bad responseHeaders")
    description = response.get("statusDescription")
    return ResponseHead(
        request_id=request_id,
        status=status,
        description=description if isinstance(description, str) else "",
        headers={str(k): str(v) for k, v in headers.items()},
        has_body=response.get("body") is True,
    )


def _status(value: object) -> int:
    """``statusCode`` as a number (hyco, .NET) or a numeric string (the docs' example)."""
    try:
        status = int(value) if isinstance(value, int | str) and not isinstance(value, bool) else 0
    except ValueError:
        status = 0
    if not 100 <= status <= 599 or status in (502, 504):  # 502/504 are the relay's own
        raise ControlMessageError(f"bad statusCode {value!r}")
    return status


def rendezvous_address(base_url: str, path: str, query: Iterable[tuple[str, str]]) -> str:
    """``{base}/$hc/{path}?{query}``; ``base_url`` is ``ws://`` or ``wss://host:port``.

    ``path`` is a decoded path (a sender's suffix may hold ``?`` or ``#``): it is
    percent-encoded, so nothing in it can add to the query or cut it off."""
    encoded = urllib.parse.quote(path.lstrip("/"), safe="/")
    return f"{base_url.rstrip('/')}/$hc/{encoded}?{urllib.parse.urlencode(list(query))}"


# --- the listener's side ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Accept:
    """``accept``: a WebSocket sender waits at ``address`` (use it verbatim, once, within 30 s)."""

    address: str
    tracking_id: str
    connect_headers: Mapping[str, str]
    remote: tuple[str, int] | None


@dataclass(frozen=True, slots=True)
class RequestHead:
    """``request``: an HTTP request for the listener.

    ``method`` is None for the rendezvous-only form: the listener opens
    ``address`` and the full request arrives there. Otherwise ``has_body``
    says whether exactly one binary message (the body) follows.
    """

    address: str
    request_id: str
    method: str | None = None
    target: str = "/"
    headers: Mapping[str, str] = field(default_factory=dict)
    remote: tuple[str, int] | None = None
    has_body: bool = False


def parse_service_message(text: str) -> Accept | RequestHead | None:
    """A text message the relay sent a listener; None for a command we do not know.

    Raises :class:`ControlMessageError` for text that is not a JSON object, or
    an ``accept``/``request`` missing its address or id.
    """
    message = _object(text)
    if "accept" in message:
        accept = _member(message, "accept")
        return Accept(
            address=_text(accept, "address"),
            tracking_id=_text(accept, "id"),
            connect_headers=_headers(accept.get("connectHeaders")),
            remote=_endpoint(accept.get("remoteEndpoint")),
        )
    if "request" in message:
        request = _member(message, "request")
        method = request.get("method")
        if not isinstance(method, str):
            return RequestHead(_text(request, "address"), _text(request, "id"))
        target = request.get("requestTarget")
        return RequestHead(
            address=_text(request, "address"),
            request_id=_text(request, "id"),
            method=method,
            target=target if isinstance(target, str) and target else "/",
            headers=_headers(request.get("requestHeaders")),
            remote=_endpoint(request.get("remoteEndpoint")),
            has_body=request.get("body") is True,
        )
    return None


def response_message(
    request_id: str, status: int, description: str, headers: Mapping[str, str], has_body: bool
) -> str:
    """The listener's ``response``; a body, if any, goes in one binary message right after."""
    return _dump(
        {
            "response": {
                "requestId": request_id,
                "statusCode": status,
                "statusDescription": description,
                "responseHeaders": dict(headers),
                "body": has_body,
            }
        }
    )


def renew_token_message(token: str) -> str:
    return _dump({"renewToken": {"token": token}})


def _object(text: str) -> dict[str, object]:
    try:
        message = json.loads(text)
    except (ValueError, RecursionError):
        raise ControlMessageError("not JSON") from None
    if not isinstance(message, dict):
        raise ControlMessageError("not a JSON object")
    return message


def _member(message: Mapping[str, object], name: str) -> dict[str, object]:
    value = message[name]
    if not isinstance(value, dict):
        raise ControlMessageError(f"{name} is not an object")
    return value


def _text(message: Mapping[str, object], name: str) -> str:
    value = message.get(name)
    if not isinstance(value, str) or not value:
        raise ControlMessageError(f"{name} is missing")
    return value


def _headers(value: object) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ControlMessageError("headers are not an object")
    return {str(name): str(text) for name, text in value.items()}


def _endpoint(value: object) -> tuple[str, int] | None:
    if not isinstance(value, dict):
        return None
    address, port = value.get("address"), value.get("port")
    if isinstance(address, str) and isinstance(port, int) and not isinstance(port, bool):
        return (address, port)
    return None
