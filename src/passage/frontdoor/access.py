"""Every answered HTTP request: counted by route and status, timed, and (if asked) logged.

The front door's connection handler notes, per request, the product that
serves it (a product may narrow it to its operation with
:func:`~passage.frontdoor.guard.name_route`, as the API does) and when its
handler started; once aiohttp has sent the response whole,
:class:`AccessRecorder` counts it in a :class:`~passage.meters.RequestMeter`
and, with ``--access-log``, writes one line: method, target, status, bytes,
duration and client address. The target never carries a secret: the values
of query parameters that hold one (a SAS token, a signaling token, a
rendezvous id, which is a capability) are replaced by ``REDACTED``.
"""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import Callable

from aiohttp import web

from passage.meters import RequestMeter

__all__ = ["SECRET_PARAMETERS", "UNROUTED", "AccessRecorder", "redacted_target"]

SECRET_PARAMETERS = frozenset(
    {"sb-hc-token", "token", "access_token", "sb-hc-id", "sig", "signature", "code"}
)
"""Query parameters (compared in lower case) whose values are never written to a log."""

UNROUTED = "unrouted"
"""The route of a request that never reached a handler (the parser refused it)."""

MAX_TARGET = 512
"""Characters of a request target kept in a log line; a longer one is cut and marked."""

access_logger = logging.getLogger("passage.access")


def redacted_target(path: str, query: str) -> str:
    """``path?query`` as received (percent-encoded), with secret values replaced and
    cut at :data:`MAX_TARGET` characters."""
    if query:
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
        shown = [
            (name, "REDACTED" if name.lower() in SECRET_PARAMETERS else value)
            for name, value in pairs
        ]
        target = f"{path}?{urllib.parse.urlencode(shown, safe='/:,')}"
    else:
        target = path
    return target if len(target) <= MAX_TARGET else target[:MAX_TARGET] + "..."


class AccessRecorder:
    """Counts (and with :attr:`log` set, logs) every response a front door sends."""

    def __init__(self, clock: Callable[[], float], *, log: bool = False) -> None:
        self.clock = clock
        self.meter = RequestMeter()
        self.log = log

    def answered(
        self,
        request: web.BaseRequest,
        response: web.StreamResponse,
        route: str,
        started: float | None,
    ) -> None:
        """aiohttp sent ``response`` to ``request`` whole (or the client went away);
        ``route`` is what it is counted under, ``started`` when its handler started
        (None: no handler ran, the parser refused the request)."""
        seconds = self.clock() - started if started is not None else None
        status = response.status
        # A WebSocket's "request" lasts the session: its length is not a latency.
        self.meter.record(route, status, None if status == 101 else seconds)
        if self.log:
            self._write(request, response, route, seconds)

    def _write(
        self,
        request: web.BaseRequest,
        response: web.StreamResponse,
        route: str,
        seconds: float | None,
    ) -> None:
        target = redacted_target(request.rel_url.raw_path, request.rel_url.raw_query_string)
        size = response.body_length
        duration_ms = round(seconds * 1000, 1) if seconds is not None else None
        access_logger.info(
            "%s %s %d %d B %s ms from %s",
            request.method, target, response.status, size,
            "-" if duration_ms is None else duration_ms, request.remote,
            extra={"fields": {
                "method": request.method, "path": target, "status": response.status,
                "bytes": size, "duration_ms": duration_ms, "client": request.remote,
                "route": route,
            }},
        )  # fmt: skip
