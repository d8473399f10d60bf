"""How a running ``passage serve`` answers signals: SIGHUP reloads, SIGTERM drains, SIGINT stops.

SIGHUP (``passage reload --data-dir D`` sends it) re-reads the configuration
file and the certificate and key (:meth:`passage.app.Running.reload`), flushes
usage, and writes the outcome into ``DATA_DIR/server.json`` under
``last_reload`` (a sequence number, ok, the message), where ``passage reload``
reads it back to print it. A reload that fails keeps the running configuration
and logs one line; nothing a reload meets stops the server. Reloads do not
overlap: a SIGHUP during one runs another once it is done.

SIGTERM starts a drain (``running.drain``, :mod:`passage.drain`): new Allocates
get 300 Try Alternate (``--alternate-server``, ``--tls-alternate-server``) or 403;
signaling members are told to reconnect (1012); Hybrid Connections control
channels close with 1001 once their bridges are done; live allocations carry on.
The server stops when no allocation and no bridge is left, or when
``--drain-timeout`` has passed. A second SIGTERM, or SIGINT at any time, stops at
once. Usage is flushed when the drain starts and at the stop, as always.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from passage.addresses import format_address, parse_host_port
from passage.config import Config, ConfigError
from passage.runtime import RuntimeRecord, RuntimeRecordError, write_record
from passage.sdnotify import Notifier
from passage.tlsmaterial import TlsMaterialError, load_key_pair
from passage.turn.alternate import Alternate, Alternates

if TYPE_CHECKING:
    from passage.app import Running
    from passage.cluster.aio import ClusterLink

__all__ = ["LAST_RELOAD", "Lifecycle", "cluster_alternates"]

logger = logging.getLogger("passage")

LAST_RELOAD = "last_reload"
"""The key of ``server.json`` that holds the outcome of the latest reload."""

DRAIN_POLL = 0.25
"""Seconds between looks at what a drain still waits for."""

DRAIN_REPORT_INTERVAL = 60.0
"""Seconds between the log lines that say what a drain still waits for."""


class Lifecycle:
    """The signals of one ``passage serve`` process, from its start to its stop."""

    def __init__(
        self,
        running: Running,
        record: RuntimeRecord,
        reread: Callable[[], Config],
        *,
        clock: Callable[[], float] = time.time,
        notifier: Notifier | None = None,
    ) -> None:
        """``reread`` loads the configuration again as the process was started with it (its
        flags, its environment, the file they name); ``notifier`` tells systemd
        (:mod:`passage.sdnotify`; by default the ``NOTIFY_SOCKET`` of the environment)."""
        self.notifier = notifier if notifier is not None else Notifier()
        self.running = running
        self.record = record
        self.reread = reread
        self.clock = clock
        self.stopped = asyncio.Event()
        """Set when the process should stop: ``serve`` then shuts down and flushes usage."""
        self.reloads = 0
        self._reloading: asyncio.Task[None] | None = None
        self._reload_again = False
        self._draining: asyncio.Task[None] | None = None
        self._watchdog: asyncio.Task[None] | None = None

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        """Take SIGHUP, SIGINT and SIGTERM on ``loop``; tell systemd the server is ready, and
        keep its watchdog fed from this loop (a loop that hangs stops feeding it)."""
        self.notifier.ready(self._status())
        if self.notifier.watchdog_interval is not None:
            self._watchdog = loop.create_task(self._feed_watchdog(self.notifier.watchdog_interval))
        loop.add_signal_handler(signal.SIGHUP, self.request_reload)
        loop.add_signal_handler(signal.SIGTERM, self.request_drain)
        loop.add_signal_handler(signal.SIGINT, lambda: self.stop_now("SIGINT"))

    def stop_now(self, why: str) -> None:
        """Stop without waiting for anything (usage is still flushed)."""
        if not self.stopped.is_set():
            logger.info("%s: stopping now", why)
            self.notifier.stopping(f"stopping ({why})")
        self.stopped.set()

    async def _feed_watchdog(self, interval: float) -> None:
        while True:
            self.notifier.watchdog()
            await asyncio.sleep(interval)

    def _status(self) -> str:
        """One line for ``systemctl status``."""
        state = "draining" if self.running.drain.draining else "serving"
        return f"{state}: {self.running.allocations} allocations"

    async def close(self) -> None:
        """Before the server stops: let a reload under way finish, start none after it; end
        a drain's watch."""
        self._reload_again = False
        if self._reloading is not None:
            await self._reloading
        for task in (self._draining, self._watchdog):
            if task is not None and not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    # --- drain ------------------------------------------------------------------------------

    def request_drain(self) -> None:
        """SIGTERM: start draining; the second one stops at once."""
        if self.running.drain.draining:
            self.stop_now("second SIGTERM while draining")
            return
        self.running.drain.begin(self.clock(), self.running.config.drain_timeout)
        self.running.readiness.start_draining("SIGTERM")  # /readyz: 503 from now on
        self._draining = asyncio.get_running_loop().create_task(self.drain())

    async def drain(self) -> None:
        """Send new work elsewhere, let live work end, then set :attr:`stopped`."""
        running = self.running
        alternates = await resolve_alternates(running.config)
        if running.cluster is not None:
            await running.cluster.beat()  # the others stop handing this node out now
            if not alternates.plain and not alternates.tls:
                alternates = await cluster_alternates(running.cluster, running.config.region)
        running.start_draining(alternates)
        self.notifier.stopping(self._status())
        logger.warning(
            "draining (SIGTERM): %d allocations and %d Hybrid Connections listeners live; "
            "new Allocates get %s; stopping when they end, at the latest in %.0f s "
            "(SIGTERM again or SIGINT: stop now)",
            running.allocations, len(running.relay.channels), _describe(alternates),
            running.drain.remaining(self.clock()),
        )  # fmt: skip
        await running.flush_usage()
        await running.signaling.drain()
        hybrid = asyncio.create_task(running.relay.drain())
        try:
            await self._wait_until_drained(hybrid)
        finally:
            hybrid.cancel()
            await asyncio.gather(hybrid, return_exceptions=True)
        self.stopped.set()

    async def _wait_until_drained(self, hybrid: asyncio.Task[None]) -> None:
        running = self.running
        next_report = self.clock() + DRAIN_REPORT_INTERVAL
        while True:
            now = self.clock()
            if not running.allocations and hybrid.done():
                logger.info("drained: no allocation or bridge left")
                return
            if running.drain.overdue(now):
                logger.warning(
                    "drain timeout: stopping with %d allocations and %d bridges still live",
                    running.allocations, running.relay.bridges_in_flight,
                )  # fmt: skip
                return
            if now >= next_report:
                next_report = now + DRAIN_REPORT_INTERVAL
                self.notifier.status(self._status())
                logger.info(
                    "draining: %d allocations and %d bridges left; %.0f s to the deadline",
                    running.allocations, running.relay.bridges_in_flight,
                    running.drain.remaining(now),
                )  # fmt: skip
            await asyncio.sleep(DRAIN_POLL)

    # --- reload -----------------------------------------------------------------------------

    def request_reload(self) -> None:
        """SIGHUP: reload now, or once more after the reload under way (none once stopping)."""
        if self.stopped.is_set():
            return
        if self._reloading is not None and not self._reloading.done():
            self._reload_again = True
            return
        self._reloading = asyncio.get_running_loop().create_task(self._reload_until_current())

    async def _reload_until_current(self) -> None:
        while True:
            self._reload_again = False
            await self.reload()
            if not self._reload_again:
                return

    async def reload(self) -> bool:
        """Reload once; log and record the outcome. True if the new configuration runs."""
        self.notifier.reloading()
        try:
            plan = await self.running.reload(self.reread())
        except ConfigError as error:
            ok, message = False, f"reload failed, still running the previous configuration: {error}"
            logger.error("%s", message)
        except Exception:  # a reload never takes the server down
            ok, message = False, "reload failed (a bug: see the traceback in the log)"
            logger.exception("reload failed, still running the previous configuration")
        else:
            ok, message = True, f"reloaded the configuration ({plan.describe()}); {self._tls()}"
            logger.info("%s", message)
            await self._follow_reload_while_draining()
            if plan.needs_restart:
                restart = (
                    f"not applied until a restart (running values kept): "
                    f"{', '.join(plan.needs_restart)}"
                )
                logger.warning("reload: %s", restart)
                message += f"; {restart}"
        if not ok:  # a reload that applied flushed already; SIGHUP flushes usage either way
            await self._flush_usage()
        self.reloads += 1
        self.notifier.ready(f"{self._status()}; last reload {'applied' if ok else 'refused'}")
        self._record_outcome({"sequence": self.reloads, "at": self.clock(), "ok": ok,
                              "message": message})  # fmt: skip
        return ok

    async def _flush_usage(self) -> None:
        try:
            await self.running.flush_usage()
        except Exception:  # the ledger keeps what it could not write; never fatal here
            logger.exception("usage flush after a refused reload failed")

    async def _follow_reload_while_draining(self) -> None:
        """A drain under way takes a reloaded timeout and alternates."""
        running = self.running
        if running.drain.draining:
            running.drain.set_timeout(running.config.drain_timeout)
            alternates = await resolve_alternates(running.config)
            if running.cluster is not None and not alternates.plain and not alternates.tls:
                alternates = await cluster_alternates(running.cluster, running.config.region)
            running.start_draining(alternates)

    def _tls(self) -> str:
        """``TLS certificate server.pem (expires 2027-01-01)``: what new handshakes present."""
        contexts = self.running.tls_contexts
        try:
            chain, _ = load_key_pair(contexts.cert, contexts.key)
        except TlsMaterialError:
            return f"TLS certificate {contexts.cert}"
        expires = chain[0].not_valid_after_utc.strftime("%Y-%m-%d")
        return f"TLS certificate {contexts.cert} (expires {expires})"

    def _record_outcome(self, outcome: dict[str, Any]) -> None:
        self.record = dataclasses.replace(
            self.record, extra=self.record.extra | {LAST_RELOAD: outcome}
        )
        try:
            write_record(Path(self.running.datadir.path), self.record)
        except RuntimeRecordError as error:
            logger.warning("could not record the reload's outcome: %s", error)


async def resolve_alternates(config: Config) -> Alternates:
    """``--alternate-server`` and ``--tls-alternate-server`` as addresses: an IP as it is,
    a host name resolved now (every address of it, the name kept for ALTERNATE-DOMAIN).
    A name that does not resolve is left out, in one WARNING line."""
    plain = [a for text in config.alternate_servers for a in await _resolve(text)]
    tls = [a for text in config.tls_alternate_servers for a in await _resolve(text)]
    return Alternates(tuple(plain), tuple(tls))


async def cluster_alternates(link: ClusterLink, region: str) -> Alternates:
    """Cluster mode without ``--alternate-server``: the least loaded other live node that
    takes new allocations, of this node's ``region`` (``--region``) when one is, over
    UDP/TCP and (with its TLS port) TLS."""
    node = link.nodes.alternate(link.clock(), link.name, region)
    if node is None:
        return Alternates()
    plain = await _resolve(format_address((node.turn_host, node.turn_port)))
    tls = (
        await _resolve(format_address((node.turn_host, node.turns_port))) if node.turns_port else []
    )
    return Alternates(tuple(plain), tuple(tls))


async def _resolve(text: str) -> list[Alternate]:
    host, port = parse_host_port(text)  # checked when the configuration was read
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return [Alternate((host, port))]
    loop = asyncio.get_running_loop()
    try:
        found = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except OSError as error:
        logger.warning("alternate server %s: cannot resolve %s: %s", text, host, error)
        return []
    addresses = dict.fromkeys(str(info[4][0]) for info in found)
    return [Alternate((ip, port), host) for ip in addresses]


def _describe(alternates: Alternates) -> str:
    """``300 Try Alternate (192.0.2.2:3478; TLS: turn2.example.com)`` or ``403``."""
    parts = [", ".join(format_address(a.address) for a in alternates.plain)]
    if alternates.tls:
        parts.append("TLS: " + ", ".join(a.domain or format_address(a.address)
                                          for a in alternates.tls))  # fmt: skip
    if not alternates.plain and not alternates.tls:
        return "403 (no --alternate-server)"
    return f"300 Try Alternate ({'; '.join(p for p in parts if p)})"
