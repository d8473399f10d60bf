"""The full Passage server in-process, and a client that signs requests as the ACS SDKs do.

:func:`api_server` starts the server of ``passage_server.in_process``, with a
plain-HTTP API port besides the HTTPS one, and a client session. :meth:`Api.request`
sends one request over a real socket, signed with HMAC-SHA256 over exactly the
method, path and query, ``Host`` and body bytes it sends (reference §2), unless
the test asks for something else to be signed or sent.
"""

from __future__ import annotations

import email.utils
import json
import socket
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yarl

from passage.identity.hmac_auth import sign_request
from passage.identity.keys import AccessKey
from passage_server import Server, free_port, in_process

IDENTITY_VERSION = "2023-10-01"
RELAY_VERSION = "2022-03-01-preview"
RELAY_PATH = f"/networkTraversal/:issueRelayConfiguration?api-version={RELAY_VERSION}"


def identity_path(suffix: str = "") -> str:
    """``/identities{suffix}?api-version=2023-10-01``."""
    return f"/identities{suffix}?api-version={IDENTITY_VERSION}"


def now_date(offset: float = 0.0) -> str:
    """An RFC 1123 ``x-ms-date``, ``offset`` seconds from now."""
    return email.utils.formatdate(time.time() + offset, usegmt=True)


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any
    """The decoded JSON body, or None when the response has none."""
    headers: Mapping[str, str]


_NO_BODY = object()


@dataclass
class Api(Server):
    """A started server and a client session for it."""

    session: aiohttp.ClientSession = field(kw_only=True)
    authorizations: list[str] = field(default_factory=list, kw_only=True)
    """Every Authorization header sent, for tests that look for it in the logs."""

    @property
    def key(self) -> AccessKey:
        """The current primary access key (re-read: a rotation replaces it)."""
        return self.running.api.service.state.keys.primary

    async def request(
        self,
        method: str,
        path_and_query: str,
        body: object = _NO_BODY,
        *,
        secret: bytes | None = None,
        https: bool = False,
        date: str | None = None,
        signed_body: bytes | None = None,
        signed_path: str | None = None,
        authorization: str | None = None,
        sign: bool = True,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        """Send one request with ``path_and_query`` exactly as given (no re-encoding).

        ``body`` is bytes as is, or anything else as compact JSON. It is signed
        with ``secret`` (default: the primary key) over what is sent, unless
        ``signed_body`` / ``signed_path`` / ``date`` say otherwise;
        ``authorization`` replaces the Authorization header, ``sign=False``
        sends none of the HMAC headers.
        """
        if body is _NO_BODY:
            data = b""
        elif isinstance(body, bytes):
            data = body
        else:
            data = json.dumps(body, separators=(",", ":")).encode()
        base = self.https_base if https else self.http_base
        url = yarl.URL(base + path_and_query, encoded=True)
        sent: dict[str, str] = {"Content-Type": "application/json"} if data else {}
        if sign:
            sent |= sign_request(
                method,
                signed_path if signed_path is not None else path_and_query,
                f"{url.host}:{url.port}",
                signed_body if signed_body is not None else data,
                secret if secret is not None else self.key.secret,
                date if date is not None else now_date(),
            )
        if authorization is not None:
            sent["Authorization"] = authorization
        sent |= headers or {}
        if "Authorization" in sent:
            self.authorizations.append(sent["Authorization"])
        tls = self.tls_context() if https else None
        async with self.session.request(method, url, data=data, headers=sent, ssl=tls) as response:
            raw = await response.read()
            return Answer(response.status, json.loads(raw) if raw else None, dict(response.headers))

    async def create_identity(self) -> str:
        answer = await self.request("POST", identity_path())
        assert answer.status == 201, answer
        identity: str = answer.body["identity"]["id"]
        return identity

    async def issue_token(self, identity: str, scopes: list[str]) -> str:
        answer = await self.request(
            "POST", identity_path(f"/{identity}/:issueAccessToken"), {"scopes": scopes}
        )
        assert answer.status == 200, answer
        token: str = answer.body["token"]
        return token


@asynccontextmanager
async def api_server(
    tmp_path: Path, environ: Mapping[str, str] | None = None, **settings: Any
) -> AsyncIterator[Api]:
    """A started server on loopback, with HTTPS and plain-HTTP API ports, and a client.

    ``environ`` is read as ``passage serve`` reads its ``PASSAGE_*`` variables.
    """
    http_port = free_port((socket.SOCK_STREAM,))
    async with (
        in_process(tmp_path, environ=environ, http_port=http_port, **settings) as server,
        aiohttp.ClientSession() as session,
    ):
        yield Api(server.running, server.datadir, server.config, session=session)
