"""The operators' listener: ``/metrics``, ``/healthz`` and ``/readyz`` over plain HTTP.

It is a front door of its own (:class:`~passage.frontdoor.FrontDoor`), off the
public ports (``--metrics-port``, on ``--metrics-ip``, loopback by default),
with the same guard as the API port but tighter caps
(:data:`OPERATOR_LIMITS`): a scraper, a load balancer's health check and an
operator's ``curl`` need a handful of connections, not thousands.

- ``/metrics``: the registry in the Prometheus text format (or OpenMetrics
  when the scraper asks for it), rendered by ``prometheus_client`` at scrape
  time from the services' plain counters;
- ``/healthz``: 200 whenever the process answers;
- ``/readyz``: 200 when every listener is bound, the store answers and the
  node is not draining; else 503, with a JSON body naming what is wrong.

Only ``GET`` and ``HEAD``; anything else is 405, an unknown path 404, both
with the JSON error body.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from passage.addresses import Address
from passage.frontdoor import FrontDoor, Paths, error_response
from passage.frontdoor.guard import describe
from passage.http_errors import HttpError
from passage.http_limits import HttpLimits
from passage.log_limit import RateLimitedLog
from passage.readiness import Readiness

__all__ = ["OPERATOR_LIMITS", "OPERATOR_PATHS", "STORE_TIMEOUT", "OperatorsListener"]

logger = logging.getLogger("passage.telemetry")

OPERATOR_LIMITS = HttpLimits(
    max_connections=64,
    max_connections_per_ip=16,
    idle_timeout=30.0,
    request_head_timeout=5.0,
    write_timeout=10.0,
    max_request_line=2048,
    max_header_size=4096,
    max_headers=50,
)
"""The operators' listener's bounds: a few scrapers and probes, never a crowd."""

STORE_TIMEOUT = 2.0
"""Seconds ``/readyz`` waits for the store's ``SELECT 1`` before calling it unreachable."""

OPERATOR_PATHS = Paths(
    frozenset({"metrics", "healthz", "readyz"}),
    lambda path: path in ("/metrics", "/healthz", "/readyz"),
    owner="the operators' listener",
)

StoreCheck = Callable[[], Awaitable[None]]
"""Returns if the store answers, raises otherwise (``Database.ping``)."""


class OperatorsListener:
    """``/metrics``, ``/healthz`` and ``/readyz`` for one process."""

    def __init__(
        self,
        registry: CollectorRegistry,
        readiness: Readiness,
        store_check: StoreCheck,
        *,
        limits: HttpLimits = OPERATOR_LIMITS,
        store_timeout: float = STORE_TIMEOUT,
    ) -> None:
        self.registry = registry
        self.readiness = readiness
        self.store_check = store_check
        self.store_timeout = store_timeout
        self.started = time.monotonic()
        self.door = FrontDoor(limits=limits)
        self.door.add(OPERATOR_PATHS, self._handle)
        self.door.set_fallback(OPERATOR_PATHS.owner, self._not_found)
        self.addresses: list[Address] = []
        self._store_log = RateLimitedLog(logger, rate=1.0, burst=5)

    async def listen(self, ip: str, port: int) -> Address:
        """Serve on ``ip:port`` (plain HTTP); the bound address."""
        address = await self.door.listen(ip, port, None)
        self.addresses.append(address)
        return address

    async def stop(self) -> None:
        await self.door.stop()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD"):
            error = HttpError(405, "MethodNotAllowed", f"{request.path} answers GET and HEAD only.",
                              headers={"Allow": "GET, HEAD"})  # fmt: skip
            return error_response(error)
        if request.path == "/metrics":
            return self._metrics(request)
        if request.path == "/healthz":
            uptime = round(time.monotonic() - self.started, 3)
            return web.json_response({"status": "ok", "pid": os.getpid(), "uptime": uptime})
        return await self._readyz()

    def _metrics(self, request: web.Request) -> web.Response:
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        response = web.Response(body=encoder(self.registry))
        response.headers["Content-Type"] = content_type
        return response

    async def _readyz(self) -> web.Response:
        problems = self.readiness.problems()
        store = await self._store_problem()
        if store is not None:
            problems["store"] = store
        degraded = {"degraded": self.readiness.degraded} if self.readiness.degraded else {}
        if problems:
            body = {"status": "not ready", "problems": problems, **degraded}
            return web.json_response(body, status=503)
        return web.json_response({"status": "ready", "problems": {}, **degraded})

    async def _store_problem(self) -> str | None:
        try:
            await asyncio.wait_for(self.store_check(), self.store_timeout)
        except TimeoutError:
            return f"the store did not answer within {self.store_timeout:g} s"
        except Exception as error:  # the driver's own: refused, auth, disk...
            self._store_log.warning(time.monotonic(), "readiness: the store is unreachable: %s",
                                    describe(error))  # fmt: skip
            return f"the store is unreachable ({type(error).__name__})"
        return None

    async def _not_found(self, request: web.Request) -> web.StreamResponse:
        error = HttpError(404, "NotFound", "This listener serves /metrics, /healthz and /readyz.")
        return error_response(error)
