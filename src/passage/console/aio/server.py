"""The console over aiohttp: sign-in, sessions, pages, live updates, and the API behind them.

Everything under ``/console/`` on the HTTPS API port. Without a session a page
answers with the sign-in page (a redirect to it) and anything else with 401;
only the sign-in forms and the static files answer without one. A session is
an ``HttpOnly; Secure; SameSite=Strict`` cookie (``__Host-`` prefixed), and
every change carries the session's CSRF token (a form field, or the
``X-CSRF-Token`` header) and, when the browser sends one, an ``Origin`` of
this server. Failed sign-ins are counted per address (:mod:`passage.limiter`):
past the limit the form answers 429 until the window ends; each failure is
one log line, rate limited.

What a page shows comes from the API's route table, called in-process on
behalf of the session's access key (:meth:`ApiServer.call_as`): the console
can show nothing the REST API cannot. ``/console/api/PATH`` is that table
for the page's script; ``/console/events`` streams a page's live parts as
Server-Sent Events.
"""

from __future__ import annotations

import asyncio
import datetime
import importlib.resources
import json
import logging
import secrets
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from passage.api.server import ApiServer
from passage.console import LinkBook, Session, SessionLimits, Sessions, key_named_by, pasted_key
from passage.console.html import page, signin_page
from passage.console.pages import (
    FRAGMENTS,
    hc_page,
    identities_page,
    identity_usage_page,
    overview_page,
    relays_page,
    settings_page,
)
from passage.frontdoor import Paths, read_body
from passage.identity.keys import AccessKey
from passage.limiter import FailureLimiter
from passage.log_limit import RateLimitedLog

__all__ = ["CONSOLE_PATHS", "COOKIE", "Console", "ConsoleLimits"]

logger = logging.getLogger("passage.console")

COOKIE = "__Host-passage-console"
"""The session cookie: ``__Host-`` makes browsers insist on Secure, Path=/ and no Domain."""

MAX_FORM_BYTES = 4096
MAX_API_BODY = 64 * 1024
STATIC_FILES = {
    "console.css": "text/css; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
}
"""Every file ``/console/static/`` serves, from ``passage/console/static``."""

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # not no-referrer: Chromium would send Origin: null
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def _matches(path: str) -> bool:
    lower = path.lower()
    return lower == "/console" or lower.startswith("/console/")


CONSOLE_PATHS = Paths(names=frozenset({"console"}), matches=_matches, owner="the console")
"""What the console answers at the front door: ``/console`` and everything under it."""


@dataclass(frozen=True, slots=True)
class ConsoleLimits:
    sessions: SessionLimits = SessionLimits()
    signin_failures: int = 5
    """Failed sign-ins (wrong key, bad link) per address per window before 429."""
    signin_window: float = 300.0
    """Seconds of that window."""
    event_interval: float = 1.0
    """Seconds between live updates of a page."""
    max_streams: int = 100
    """Event streams open at once (every session together)."""


Page = Callable[[web.Request, Session, AccessKey], Awaitable[web.StreamResponse]]


class Console:
    """The console's pages and sign-in, over one :class:`ApiServer`."""

    def __init__(
        self,
        api: ApiServer,
        *,
        limits: ConsoleLimits | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.api = api
        self.limits = limits or ConsoleLimits()
        self.clock = clock
        self.sessions = Sessions(self.limits.sessions)
        self.links = LinkBook()
        self.failures = FailureLimiter(self.limits.signin_failures, self.limits.signin_window)
        self.refusal_log = RateLimitedLog(logger, rate=5.0, burst=20)
        self.streams = 0
        self._closing = asyncio.Event()
        self._pages: dict[str, Page] = {
            "": self._overview,
            "relays": self._relays,
            "identities": self._identities,
            "identities/usage": self._identity_usage,
            "hc": self._hc,
            "settings": self._settings,
            "events": self._events,
            "export/usage.csv": self._export,
        }

    async def close(self) -> None:
        """End every live page's event stream (the server is stopping: it must not wait
        for them)."""
        self._closing.set()

    @property
    def keys(self) -> list[AccessKey]:
        return list(self.api.service.state.keys)

    # --- the door ---------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Any request under ``/console``."""
        response = await self._route(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    async def _route(self, request: web.Request) -> web.StreamResponse:
        if request.scheme != "https":
            return _html(
                403, signin_page("The console is served over HTTPS only: use the API port.")
            )
        path = request.path[len("/console") :]
        if path == "":
            return _redirect("/console/", 308)
        name = path[1:]
        if name.startswith("static/"):
            return self._static(name[len("static/") :])
        forms = {"signin": self._signin, "link": self._link}
        if name in forms:
            return await forms[name](request)
        session = self.sessions.find(
            request.cookies.get(COOKIE), self.api.service.state.keys, self.clock()
        )
        if name.startswith("api/"):
            return await self._api(request, session, "/" + name[len("api/") :])
        handler = self._pages.get(name) if request.method == "GET" else None
        if name == "signout" and request.method == "POST":
            return await self._signout(request, session)
        if handler is None:
            return _html(404 if request.method == "GET" else 405, "<p>Not found.</p>")
        if session is None:
            if name in ("events", "export/usage.csv"):
                return _json(401, _error("SignInRequired", "Sign in to the console first."))
            return _redirect("/console/signin")
        key = self.api.service.state.keys.named(session.key_name)
        return await handler(request, session, key)

    # --- signing in and out ---------------------------------------------------------------

    async def _signin(self, request: web.Request) -> web.StreamResponse:
        if request.method == "GET":
            return _html(200, signin_page())
        if request.method != "POST":
            return _html(405, signin_page())
        refused = self._refuse_form(request)
        if refused is not None:
            return refused
        form = await _form(request)
        secret = pasted_key(form.get("key", ""))
        name = key_named_by(secret, self.keys) if secret is not None else None
        if name is None:
            return self._failed(
                request, "wrong access key", "That is not an access key of this server."
            )
        return self._open_session(request, self.api.service.state.keys.named(name), "access key")

    async def _link(self, request: web.Request) -> web.StreamResponse:
        if request.method == "GET":
            token = request.query.get("token", "")
            return _html(200, signin_page(link_token=token[:512]) if token else signin_page())
        if request.method != "POST":
            return _html(405, signin_page())
        refused = self._refuse_form(request)
        if refused is not None:
            return refused
        form = await _form(request)
        name = self.links.take(form.get("token", "")[:512], self.keys, self.clock())
        if name is None:
            return self._failed(
                request,
                "invalid or used sign-in link",
                "This sign-in link "
                "is not valid: it was used, it expired, or its key was "
                "rotated. Print a new one with passage console-link.",
            )
        return self._open_session(request, self.api.service.state.keys.named(name), "link")

    def _refuse_form(self, request: web.Request) -> web.Response | None:
        """429 while this address has failed too often; 403 for a form posted from
        another origin."""
        if not _same_origin(request):
            return _html(403, signin_page("This form was sent from another site."))
        now = self.clock()
        if self.failures.blocked(request.remote or "", now):
            self.refusal_log.log(
                now,
                logging.WARNING,
                "console sign-in from %s refused: too many failures",
                request.remote,
            )
            minutes = max(1, round(self.limits.signin_window / 60))
            response = _html(
                429,
                signin_page(
                    f"Too many failed sign-ins from your address. Try again in {minutes} minutes."
                ),
            )
            response.headers["Retry-After"] = str(round(self.limits.signin_window))
            return response
        return None

    def _failed(self, request: web.Request, why: str, message: str) -> web.Response:
        now = self.clock()
        self.failures.record_failure(request.remote or "", now)
        self.refusal_log.log(
            now, logging.WARNING, "console sign-in from %s failed: %s", request.remote, why
        )
        return _html(401, signin_page(message))

    def _open_session(self, request: web.Request, key: AccessKey, how: str) -> web.Response:
        session_id = secrets.token_urlsafe(32)
        self.sessions.open(key, session_id, secrets.token_urlsafe(32), self.clock())
        logger.info(
            "console: signed in from %s with the %s key (%s)", request.remote, key.name.value, how
        )
        response = _redirect("/console/")
        response.set_cookie(
            COOKIE, session_id, path="/", secure=True, httponly=True, samesite="Strict"
        )
        return response

    async def _signout(self, request: web.Request, session: Session | None) -> web.Response:
        form = await _form(request)
        if session is None:
            return _redirect("/console/signin")
        if not _same_origin(request) or not session.csrf_matches(form.get("csrf")):
            return _html(403, "<p>Refused: the form did not carry this session's token.</p>")
        self.sessions.close(request.cookies.get(COOKIE))
        response = _redirect("/console/signin")
        response.del_cookie(COOKIE, path="/", secure=True, httponly=True, samesite="Strict")
        return response

    # --- the API, for the page's script --------------------------------------------------

    async def _api(self, request: web.Request, session: Session | None, path: str) -> web.Response:
        if session is None:
            return _json(401, _error("SignInRequired", "Sign in to the console first."))
        if request.method not in ("GET", "HEAD") and not (
            _same_origin(request) and session.csrf_matches(request.headers.get("X-CSRF-Token"))
        ):
            return _json(
                403,
                _error("CsrfTokenMissing", "A change needs this session's X-CSRF-Token header."),
            )
        raw = await read_body(request, MAX_API_BODY)
        if raw is None:
            return _json(413, _error("RequestEntityTooLarge", "Request Entity Too Large"))
        try:
            body = json.loads(raw) if raw.strip() else {}
        except (ValueError, UnicodeDecodeError, RecursionError):
            body = None
        if not isinstance(body, dict):
            return _json(400, _error("InvalidRequest", "The body must be a JSON object."))
        key = self.api.service.state.keys.named(session.key_name)
        query = {name: request.query[name] for name in request.query}
        reply = await self.api.call_as(key, request.method, path, query, body, request.remote)
        if request.method != "GET" and reply.status < 400:
            logger.info(
                "console: %s %s (%d) from %s", request.method, path, reply.status, request.remote
            )
        if reply.text is not None:
            return web.Response(status=reply.status, text=reply.text, headers=dict(reply.headers))
        if reply.body is None:
            return web.Response(status=reply.status)
        return _json(reply.status, reply.body)

    async def _get(self, key: AccessKey, path: str, **query: str) -> dict[str, Any]:
        """The JSON body of ``GET path`` as ``key``; ``{}`` if the API refused it."""
        reply = await self.api.call_as(key, "GET", path, query, {}, None)
        if reply.status != 200 or not isinstance(reply.body, dict):
            logger.debug("console: GET %s answered %d", path, reply.status)
            return {}
        return reply.body

    async def _live_data(self, key: AccessKey, page_name: str) -> dict[str, dict[str, Any]]:
        paths = {
            "overview": {
                "turn": "/live/turn",
                "throughput": "/live/throughput",
                "listeners": "/live/listeners",
                "bridges": "/live/bridges",
                "rooms": "/live/rooms",
                "nodes": "/live/nodes",
            },
            "relays": {"allocations": "/live/allocations"},
            "hc": {"listeners": "/live/listeners", "bridges": "/live/bridges"},
        }[page_name]
        return {name: await self._get(key, path) for name, path in paths.items()}

    # --- pages ----------------------------------------------------------------------------

    async def _overview(
        self, request: web.Request, session: Session, key: AccessKey
    ) -> web.Response:
        data = await self._live_data(key, "overview")
        return _html(200, page("overview", "Overview", session.csrf, overview_page(data)))

    async def _relays(self, request: web.Request, session: Session, key: AccessKey) -> web.Response:
        data = await self._live_data(key, "relays")
        return _html(200, page("relays", "Relays", session.csrf, relays_page(data["allocations"])))

    async def _identities(
        self, request: web.Request, session: Session, key: AccessKey
    ) -> web.Response:
        search = request.query.get("search", "")[:200]
        listed = await self._get(key, "/identities", search=search)
        body = identities_page(listed, search)
        return _html(200, page("identities", "Identities", session.csrf, body))

    async def _identity_usage(
        self, request: web.Request, session: Session, key: AccessKey
    ) -> web.Response:
        identity = request.query.get("id", "")[:300]
        now = int(self.clock())  # whole seconds: bucket starts must match the API's exactly
        hour_end = now - now % 3600 + 3600
        day_end = now - now % 86400 + 86400
        hours = [_iso(hour_end - 3600 * (24 - index)) for index in range(24)]
        days = [_iso(day_end - 86400 * (30 - index)) for index in range(30)]
        hourly = await self._get(
            key,
            "/usage",
            identity=identity,
            granularity="hour",
            **{"from": hours[0], "to": _iso(hour_end)},
        )
        daily = await self._get(
            key,
            "/usage",
            identity=identity,
            granularity="day",
            **{"from": days[0], "to": _iso(day_end)},
        )
        body = identity_usage_page(identity, hourly, hours, daily, days)
        return _html(200, page("identities", "Usage of an identity", session.csrf, body))

    async def _hc(self, request: web.Request, session: Session, key: AccessKey) -> web.Response:
        connections = await self._get(key, "/hybridConnections")
        rules: dict[str | None, list[Any]] = {
            None: (await self._get(key, "/authorizationRules")).get("value", [])
        }
        for connection in connections.get("value", []):
            name = connection["name"]
            rules[name] = (await self._get(key, "/authorizationRules", entity=name)).get(
                "value", []
            )
        data = await self._live_data(key, "hc")
        usage = await self._get(key, "/usage", kind="hybridConnection")  # the last 24 hours
        body = hc_page(connections, rules, data["listeners"], data["bridges"], usage)
        return _html(200, page("hc", "Hybrid Connections", session.csrf, body))

    async def _settings(
        self, request: web.Request, session: Session, key: AccessKey
    ) -> web.Response:
        body = settings_page(await self._get(key, "/settings"))
        return _html(200, page("settings", "Settings", session.csrf, body))

    async def _export(self, request: web.Request, session: Session, key: AccessKey) -> web.Response:
        """``GET /usage?format=csv`` over the last ``days`` days (1-366)."""
        days_text = request.query.get("days", "1")
        days = int(days_text) if days_text.isascii() and days_text.isdigit() else 0
        if not 1 <= days <= 366:
            return _json(400, _error("ValidationError", "days must be from 1 to 366."))
        now = self.clock()
        query = {
            "format": "csv",
            "from": _iso(now - days * 86400),
            "to": _iso(now),
            "granularity": request.query.get("granularity", "hour"),
        }
        for name in ("identity", "kind"):
            if request.query.get(name):
                query[name] = request.query[name]
        reply = await self.api.call_as(key, "GET", "/usage", query, {}, request.remote)
        if reply.text is None:
            return _json(reply.status, reply.body)
        return web.Response(status=reply.status, text=reply.text, headers=dict(reply.headers))

    async def _events(
        self, request: web.Request, session: Session, key: AccessKey
    ) -> web.StreamResponse:
        """The page's live parts as Server-Sent Events, every ``event_interval`` seconds,
        until the session ends or the page goes."""
        page_name = request.query.get("page", "")
        fragments = FRAGMENTS.get(page_name)
        if fragments is None:
            return _json(400, _error("ValidationError", "page must be overview, relays or hc."))
        if self.streams >= self.limits.max_streams:
            return _json(503, _error("TooManyStreams", "Too many live pages are open."))
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",
                **SECURITY_HEADERS,
            }
        )
        self.streams += 1
        cookie = request.cookies.get(COOKIE)
        try:
            await response.prepare(request)
            while True:
                current = self.sessions.find(cookie, self.api.service.state.keys, self.clock())
                if current is None:
                    await response.write(b"event: signedout\ndata: {}\n\n")
                    break
                key = self.api.service.state.keys.named(current.key_name)
                html = fragments(await self._live_data(key, page_name))
                await response.write(f"data: {json.dumps(html)}\n\n".encode())
                try:
                    await asyncio.wait_for(self._closing.wait(), self.limits.event_interval)
                    break  # the server is stopping
                except TimeoutError:
                    pass
        except ConnectionError:
            pass  # the page went away
        finally:
            self.streams -= 1
        return response

    def _static(self, name: str) -> web.Response:
        content_type = STATIC_FILES.get(name)
        if content_type is None:
            return web.Response(status=404, text="not found")
        data = importlib.resources.files("passage.console").joinpath("static", name).read_bytes()
        headers = {"Content-Type": content_type, "Cache-Control": "no-cache"}
        return web.Response(body=data, headers=headers)


# --- helpers ------------------------------------------------------------------------------


def _redirect(location: str, status: int = 303) -> web.Response:
    return web.Response(status=status, headers={"Location": location})


def _html(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text, content_type="text/html", charset="utf-8")


def _json(status: int, body: object) -> web.Response:
    return web.json_response(body, status=status)


def _error(code: str, message: str) -> dict[str, object]:
    return {"error": {"code": code, "message": message}}


def _iso(unix: float) -> str:
    return datetime.datetime.fromtimestamp(unix, datetime.UTC).isoformat().replace("+00:00", "Z")


def _same_origin(request: web.Request) -> bool:
    """True unless the browser says the request came from a page of another origin."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    return origin == f"{request.scheme}://{request.host}"


async def _form(request: web.Request) -> Mapping[str, str]:
    """An ``application/x-www-form-urlencoded`` body, at most 4 KB (more is no form of ours)."""
    raw = await read_body(request, MAX_FORM_BYTES)
    if raw is None:
        return {}
    try:
        pairs = urllib.parse.parse_qsl(raw.decode("utf-8"), max_num_fields=8)
    except (UnicodeDecodeError, ValueError):
        return {}
    return dict(pairs)
